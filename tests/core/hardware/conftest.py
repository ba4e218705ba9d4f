"""One real Prometheus with 48 h of backfilled DCGM history, shared by the hardware tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from tests.conftest import make_settings
from tests.core.hardware import world
from tests.utils.prometheus import PrometheusServer


@dataclass
class History:
    server: PrometheusServer
    t0: datetime

    @property
    def end(self) -> datetime:
        return self.t0 + timedelta(hours=world.HOURS)


@pytest.fixture(scope="session")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    t0 = world.base_time()
    root = tmp_path_factory.mktemp("prometheus-history")
    with PrometheusServer(root, backfill=world.history(t0)) as server:
        yield History(server, t0)


@pytest.fixture
def settings(tmp_path: Path, history: History) -> Settings:
    return make_settings(tmp_path, prometheus={"url": history.server.url, "timeout_seconds": 10})


@pytest.fixture
def ids(session: Session, history: History) -> dict[str, tuple[int, int]]:
    return world.seed(session, history.t0)


@pytest.fixture
def clock(history: History) -> FixedClock:
    """Just after the history ends (the scrape never reads past `now`)."""
    return FixedClock(history.end + timedelta(minutes=5))
