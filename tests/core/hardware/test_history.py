"""The stored history: what a backfill or a re-scrape may replace, one scrape at a time, and a
catch-up after an outage that recovers in bounded steps."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from modeldeck.core import scheduler
from modeldeck.core.alerts.models import OPEN, Alert
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.errors import Conflict
from modeldeck.core.hardware import jobs, lock, service
from modeldeck.core.hardware.models import GpuUsageHourly, HardwareScrape
from tests.core.hardware import world
from tests.core.hardware.conftest import History
from tests.core.hardware.test_faults import rows


def _old_row(hour: datetime, gpu: str = "GPU-OLD-0", **changes: Any) -> dict[str, Any]:
    """An aggregate stored long ago, from samples Prometheus has since dropped (retention)."""
    return {
        "hour": hour,
        "cluster": "gpu-a100",
        "gpu_uuid": gpu,
        "gpu_model": world.A100,
        "namespace": "ml-prod",
        "pod": "old-pod-1",
        "util_mean": 42.0,
        "gpu_seconds": 3600.0,
        "samples": 60,
    } | changes


def _store(session: Session, values: list[dict[str, Any]]) -> None:
    session.execute(insert(GpuUsageHourly), values)
    session.commit()


def test_a_backfill_past_retention_keeps_the_hours_prometheus_no_longer_has(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    """`gpu-scrape --hours N` reaching before Prometheus' oldest sample: the stored hours
    there stay; the hours Prometheus has are (re)stored."""
    old_hours = [history.t0 - timedelta(hours=h) for h in (12, 3, 2, 1)]
    _store(session, [_old_row(h) for h in old_hours])
    kept = rows(session)

    # Two chunks entirely before the history (nothing there), then one reaching into it.
    result = service.scrape(
        session,
        settings=settings,
        start=history.t0 - timedelta(hours=13),
        end=history.t0 + timedelta(hours=2),
        clock=clock,
    )
    assert result.chunks == 3 and result.rows > 0
    assert [r for r in rows(session) if r[1] == "GPU-OLD-0"] == kept
    hours = set(session.exec(select(GpuUsageHourly.hour)).all())
    assert len(hours) == len(old_hours) + 2  # + t0 and t0 + 1h from Prometheus


def test_a_rescrape_still_replaces_the_hours_prometheus_returns(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    """A row stored for an hour Prometheus has data for (here: a pod that attribution no
    longer produces) is replaced, as before: re-scraping after a fix is idempotent."""
    hour = history.t0 + timedelta(hours=1)
    _store(session, [_old_row(hour, gpu="GPU-A100-0", pod="wrongly-attributed")])
    service.scrape(
        session, settings=settings, start=hour, end=hour + timedelta(hours=1), clock=clock
    )
    pods = set(
        session.exec(select(GpuUsageHourly.pod).where(GpuUsageHourly.gpu_uuid == "GPU-A100-0"))
    )
    assert pods == {"fraud-detector-6d4cf-abcde"}


@pytest.mark.parametrize("version", ["attributed", "unattributed"])
def test_the_natural_key_is_unique_even_without_a_version(
    any_engine: Engine, settings: Settings, version: str
) -> None:
    """Two scrapes can never both store an hour: the database refuses the second row (NULL
    version ids included, which a plain unique index would let through)."""
    with Session(any_engine) as session:
        environments.sync(session, settings)
        row = _old_row(datetime(2026, 11, 1, 10, tzinfo=UTC))
        if version == "attributed":
            row["model_id"], row["version_id"] = world._version(session, "fraud-detector", "1.0")
        _store(session, [row])
        with pytest.raises(IntegrityError):
            _store(session, [row])
        session.rollback()
        _store(session, [row | {"pod": "other-pod-2"}])  # another pod of that GPU: fine
        assert session.exec(select(func.count()).select_from(GpuUsageHourly)).one() == 2


def test_a_scrape_while_another_runs_is_refused_and_changes_nothing(
    engine: Engine,
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    window = {"start": history.end - timedelta(hours=2), "end": history.end}
    service.scrape(session, settings=settings, clock=clock, **window)
    stored, runs = rows(session), len(session.exec(select(HardwareScrape)).all())
    with lock.scrape_lock(engine):  # the scheduler's scrape, say
        with pytest.raises(Conflict, match="another GPU scrape is running"):
            service.scrape(session, settings=settings, clock=clock, wait_seconds=0.3, **window)
    assert rows(session) == stored
    assert len(session.exec(select(HardwareScrape)).all()) == runs  # not a failed run
    assert service.status(session, clock=clock).available
    service.scrape(session, settings=settings, clock=clock, **window)  # free again
    assert rows(session) == stored


def _concurrent_scrapes(engine: Engine, settings: Settings, history: History) -> list[str]:
    """Two scrapes of the same hours at the same moment, each with its own session."""
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def one() -> None:
        clock = FixedClock(history.end + timedelta(minutes=5))
        with Session(engine, expire_on_commit=False) as session:
            barrier.wait(timeout=30)
            try:
                service.scrape(
                    session,
                    settings=settings,
                    start=history.end - timedelta(hours=2),
                    end=history.end,
                    clock=clock,
                    wait_seconds=60,
                )
                outcomes.append("ok")
            except Exception as exc:  # the assertion below names it
                outcomes.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return outcomes


@pytest.mark.postgres
def test_two_scrapes_at_once_on_postgres_count_each_hour_once(
    pg_engine: Engine, settings: Settings, history: History
) -> None:
    with Session(pg_engine) as session:
        environments.sync(session, settings)
        world.seed(session, history.t0)
    assert _concurrent_scrapes(pg_engine, settings, history) == ["ok", "ok"]
    with Session(pg_engine) as session:
        total = session.exec(select(func.sum(GpuUsageHourly.gpu_seconds))).one()
        gpus = session.exec(select(func.count(func.distinct(GpuUsageHourly.gpu_uuid)))).one()
    # 2 h of the 8 GPUs with a UUID (the time-sliced one counted once), not twice that.
    assert gpus == 8 and total == pytest.approx(2 * 3600 * gpus)


def test_two_scrapes_at_once_on_sqlite_count_each_hour_once(
    engine: Engine, session: Session, settings: Settings, history: History
) -> None:
    world.seed(session, history.t0)
    assert _concurrent_scrapes(engine, settings, history) == ["ok", "ok"]
    total = session.exec(select(func.sum(GpuUsageHourly.gpu_seconds))).one()
    assert total == pytest.approx(2 * 3600 * 8)


def test_catch_up_after_an_outage_is_bounded_and_progressive(
    engine: Engine,
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    """The last good scrape ended at t0 + 1 h (then the scheduler was down for two days):
    each run catches up one day, in 6-hour chunks, oldest first, and alerts only once it
    reaches the recent hours."""
    session.add(
        HardwareScrape(
            started_at=history.t0,
            window_start=history.t0,
            window_end=history.t0 + timedelta(hours=1),
            ok=True,
        )
    )
    session.commit()
    ctx = scheduler.JobContext(engine, settings, clock)
    windows = []
    for _ in range(3):
        result = jobs.scrape_job(ctx)
        assert result is not None
        assert result.max_points_per_query <= 6 * 60 + 1
        windows.append((result.window_start, result.window_end, result.chunks))
        if len(windows) == 1:  # a day ago and older: nothing pages about it
            assert not _open_gpu_alerts(session)
    day = timedelta(days=1)
    assert windows == [
        (history.t0, history.t0 + day, 4),
        (history.t0 + day - timedelta(hours=1), history.t0 + 2 * day - timedelta(hours=1), 4),
        (history.t0 + 2 * day - timedelta(hours=2), clock(), 1),  # up to now
    ]
    hours = session.exec(select(func.count(func.distinct(GpuUsageHourly.hour)))).one()
    assert hours == world.HOURS
    assert "gpu_idle" in {a.rule for a in _open_gpu_alerts(session)}


def _open_gpu_alerts(session: Session) -> list[Alert]:
    session.expire_all()
    return list(session.exec(select(Alert).where(col(Alert.status).in_(OPEN))).all())
