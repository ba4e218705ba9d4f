"""A monitored world: a classifier with reference data, deployed to production."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from modeldeck.core.auth.models import Actor
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.environments.models import Environment
from modeldeck.core.monitoring import service
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import ModelCreate, ModelVersionCreate, TaskType
from modeldeck.core.rollouts.models import Deployment, DeploymentState
from tests.conftest import make_settings
from tests.core.monitoring import synth

MODEL = "fraud"
VERSION = "1.0.0"
ENV = "production"


@dataclass
class World:
    session: Session
    settings: Settings
    clock: FixedClock
    admin: Actor
    deployment_id: int

    def ingest(self, frame: Any, **kwargs: Any) -> Any:
        args = {"model": MODEL, "version": VERSION, "environment": ENV} | kwargs
        return service.ingest_predictions(
            self.session,
            settings=self.settings,
            frame=frame,
            actor=self.admin,
            clock=self.clock,
            **args,
        )

    def window_start(self) -> Any:
        """Start of the default (60-minute) window ending now."""
        return self.clock() - timedelta(minutes=60)


def deploy(
    session: Session,
    *,
    model: str,
    version: str,
    environment: str,
    state: DeploymentState = DeploymentState.active,
) -> int:
    """A deployment row as rollouts would leave it (rollouts is another domain's service)."""
    model_row = registry.get_model(session, model)
    version_row = registry.get_version(session, model_row, version)
    env = session.exec(select(Environment).where(Environment.name == environment)).one()
    assert model_row.id and version_row.id and env.id
    row = Deployment(
        model_id=model_row.id,
        environment_id=env.id,
        version_id=version_row.id,
        state=state,
        requested_by="alice",
    )
    session.add(row)
    session.commit()
    assert row.id is not None
    return row.id


def register(
    session: Session,
    admin: Actor,
    *,
    model: str = MODEL,
    version: str = VERSION,
    task: TaskType = TaskType.classification,
    metrics: dict[str, float] | None = None,
) -> None:
    registry.register_version(
        session,
        model_name=model,
        actor=admin,
        data=ModelVersionCreate(version=version, image=f"img:{version}", metrics=metrics or {}),
        create_model_if_missing=ModelCreate(name=model, task_type=task),
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, checks={"min_rows": 30})


@contextmanager
def make_world(
    engine: Engine, settings: Settings, clock: FixedClock, admin: Actor
) -> Iterator[World]:
    with Session(engine, expire_on_commit=False) as session:
        environments.sync(session, settings)
        register(session, admin, metrics={"accuracy": 0.8, "auc": 0.85})
        service.set_reference(
            session,
            settings=settings,
            model=MODEL,
            version=VERSION,
            frame=synth.reference(),
            actor=admin,
            clock=clock,
        )
        dep = deploy(session, model=MODEL, version=VERSION, environment=ENV)
        yield World(session=session, settings=settings, clock=clock, admin=admin, deployment_id=dep)


@pytest.fixture
def world(engine: Engine, settings: Settings, clock: FixedClock, admin: Actor) -> Iterator[World]:
    with make_world(engine, settings, clock, admin) as built:
        yield built


@pytest.fixture
def any_world(
    any_engine: Engine, settings: Settings, clock: FixedClock, admin: Actor
) -> Iterator[World]:
    """The same world on SQLite and on the real PostgreSQL."""
    with make_world(any_engine, settings, clock, admin) as built:
        yield built
