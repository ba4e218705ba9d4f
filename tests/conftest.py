"""Shared fixtures: settings, databases (SQLite and PostgreSQL), actors, clock, API client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from tests.utils import db as testdb


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Two simulated clusters; staging, then production with one approval."""
    data: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path}/modeldeck.db",
        "data_dir": str(tmp_path / "data"),
        "clusters": [
            {"name": "gpu-l4", "backend": "simulated", "gpu_model": "L4"},
            {"name": "gpu-a100", "backend": "simulated", "gpu_model": "A100"},
        ],
        "environments": [
            {"name": "staging", "cluster": "gpu-l4", "namespace": "ml-staging", "aliases": ["stg"]},
            {
                "name": "production",
                "cluster": "gpu-a100",
                "namespace": "ml-prod",
                "aliases": ["prod"],
                "requires_previous": "staging",
                "approvals_required": 1,
                "auto_rollback": True,
            },
        ],
    }
    data.update(overrides)
    return Settings(**data)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return testdb.sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture
def sqlite_engine(sqlite_template: Path, tmp_path: Path) -> Iterator[Engine]:
    engine = testdb.sqlite_engine(sqlite_template, tmp_path / "modeldeck.db")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _pg_schema() -> Iterator[str]:
    testdb.require_postgres()
    from modeldeck.core import db

    url, schema = testdb.postgres_schema_url()
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    yield url
    testdb.drop_schema(schema)


@pytest.fixture
def pg_engine(_pg_schema: str) -> Iterator[Engine]:
    from modeldeck.core import db

    engine = db.make_engine(_pg_schema)
    testdb.truncate_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_engine(request: pytest.FixtureRequest) -> Engine:
    """The same test on SQLite and on the real PostgreSQL."""
    name = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    engine: Engine = request.getfixturevalue(name)
    return engine


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    return sqlite_engine


@pytest.fixture
def session(engine: Engine, settings: Settings) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        environments.sync(s, settings)
        yield s


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def admin() -> Actor:
    return Actor(name="alice", role=Role.admin, via="cli")


@pytest.fixture
def approver() -> Actor:
    return Actor(name="bob", role=Role.approver, via="cli")


@pytest.fixture
def deployer() -> Actor:
    return Actor(name="carol", role=Role.deployer, via="cli")


@pytest.fixture
def viewer() -> Actor:
    return Actor(name="dave", role=Role.viewer, via="cli")
