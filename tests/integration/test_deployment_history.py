"""'What ran in ENV at time T', the history and the status grid, on SQLite and PostgreSQL.

The rows are inserted directly (as the rollouts service will write them), so these tests pin
the read side independently of how rollouts get there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core.auth.models import Actor
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.errors import NotFound
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import ModelCreate, ModelVersionCreate
from modeldeck.core.rollouts import queries
from modeldeck.core.rollouts.models import Deployment, DeploymentKind, DeploymentState, Via

T0 = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=10)
T2 = T1 + timedelta(days=5)


@dataclass
class World:
    session: Session
    ids: dict[str, int]


@pytest.fixture
def world(any_engine: Engine, settings: Settings, admin: Actor) -> Iterator[World]:
    """fraud in production: 1.0 (T0..T1), 2.0 (T1..T2, rolled back), 3.0 failed in between,
    then 1.0 again from T2 (a rollback); churn 1.0 active in staging since T0, 1.1 rolling
    out there now."""
    with Session(any_engine, expire_on_commit=False) as session:
        environments.sync(session, settings)
        for model, versions in (("fraud", ["1.0", "2.0", "3.0"]), ("churn", ["1.0", "1.1"])):
            for version in versions:
                registry.register_version(
                    session,
                    model_name=model,
                    data=ModelVersionCreate(version=version, image=f"img:{version}"),
                    actor=admin,
                    create_model_if_missing=ModelCreate(name=model),
                )
        ids: dict[str, int] = {}

        def version_id(model: str, version: str) -> int:
            row = registry.get_version(session, registry.get_model(session, model), version)
            assert row.id is not None
            return row.id

        def add(
            key: str,
            model: str,
            env: str,
            version: str,
            state: DeploymentState,
            started: datetime,
            activated: datetime | None,
            finished: datetime | None,
            kind: DeploymentKind = DeploymentKind.promote,
        ) -> None:
            model_row = registry.get_model(session, model)
            assert model_row.id is not None
            env_row = environments.get(session, env)
            assert env_row.id is not None
            row = Deployment(
                model_id=model_row.id,
                environment_id=env_row.id,
                version_id=version_id(model, version),
                kind=kind,
                state=state,
                requested_by="alice",
                requested_via=Via.cli,
                started_at=started,
                activated_at=activated,
                finished_at=finished,
                reason=f"{key} reason",
            )
            session.add(row)
            session.commit()
            assert row.id is not None
            ids[key] = row.id

        add("f1", "fraud", "production", "1.0", DeploymentState.superseded, T0, T0, T1)
        add(
            "f3",
            "fraud",
            "production",
            "3.0",
            DeploymentState.failed,
            T0 + timedelta(days=2),
            None,
            T0 + timedelta(days=2, hours=1),
        )
        add("f2", "fraud", "production", "2.0", DeploymentState.rolled_back, T1, T1, T2)
        add(
            "f1b",
            "fraud",
            "production",
            "1.0",
            DeploymentState.active,
            T2,
            T2,
            None,
            kind=DeploymentKind.rollback,
        )
        add("c1", "churn", "staging", "1.0", DeploymentState.active, T0, T0, None)
        add(
            "c2",
            "churn",
            "staging",
            "1.1",
            DeploymentState.rolling_out,
            T2 + timedelta(days=1),
            None,
            None,
        )
        yield World(session, ids)


def versions_at(
    world: World, env: str, at: datetime, model: str | None = None
) -> list[tuple[str, str]]:
    rows = queries.running_at(world.session, environment=env, at=at, model=model)
    return [(d.model, d.version) for d in rows]


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (T0 - timedelta(seconds=1), []),
        (T0, [("fraud", "1.0")]),  # activation instant included
        (T0 + timedelta(days=2, minutes=30), [("fraud", "1.0")]),  # 3.0 failed: never ran
        (T1 - timedelta(microseconds=1), [("fraud", "1.0")]),
        (T1, [("fraud", "2.0")]),  # the end instant belongs to the next version
        (T2 - timedelta(seconds=1), [("fraud", "2.0")]),
        (T2 + timedelta(days=30), [("fraud", "1.0")]),  # rolled back to 1.0
    ],
)
def test_running_at_walks_the_production_timeline(
    world: World, at: datetime, expected: list[tuple[str, str]]
) -> None:
    assert versions_at(world, "production", at) == expected


def test_running_at_means_the_same_instant_in_any_timezone(world: World) -> None:
    tokyo = timezone(timedelta(hours=9))
    just_before_t1 = (T1 - timedelta(minutes=1)).astimezone(tokyo)
    assert versions_at(world, "production", just_before_t1) == [("fraud", "1.0")]
    assert versions_at(world, "production", T1.astimezone(tokyo)) == [("fraud", "2.0")]


def test_running_at_one_model_and_other_environments(world: World) -> None:
    later = T2 + timedelta(days=2)
    assert versions_at(world, "staging", later) == [("churn", "1.0")]  # 1.1 still rolling out
    assert versions_at(world, "production", later, model="churn") == []
    (dep,) = queries.running_at(world.session, environment="production", at=later, model="fraud")
    assert dep.id == world.ids["f1b"] and dep.kind == DeploymentKind.rollback
    assert dep.activated_at == T2 and dep.finished_at is None


def test_running_at_unknown_names(world: World) -> None:
    with pytest.raises(NotFound, match="no environment named 'qa'"):
        queries.running_at(world.session, environment="qa", at=T1)
    with pytest.raises(NotFound, match="no model named 'nope'"):
        queries.running_at(world.session, environment="production", at=T1, model="nope")


def test_history_is_newest_first_and_filters(world: World) -> None:
    history = queries.history(world.session, model="fraud")
    assert [d.id for d in history.data] == [world.ids[k] for k in ("f1b", "f2", "f3", "f1")]
    assert history.count == 4 and history.data[0].reason == "f1b reason"
    failed = queries.history(world.session, states=[DeploymentState.failed])
    assert [(d.model, d.version) for d in failed.data] == [("fraud", "3.0")]
    staging = queries.history(world.session, environment="staging", limit=1)
    assert staging.count == 2 and [d.version for d in staging.data] == ["1.1"]
    with pytest.raises(NotFound):
        queries.history(world.session, environment="qa")


def test_status_grid_shows_active_and_in_flight(world: World) -> None:
    grid = {(r.model, r.environment): r for r in queries.status(world.session)}
    assert set(grid) == {(m, e) for m in ("churn", "fraud") for e in ("staging", "production")}
    assert grid[("fraud", "production")].version == "1.0"
    assert grid[("fraud", "production")].since == T2
    assert grid[("fraud", "staging")].version is None
    churn = grid[("churn", "staging")]
    assert churn.version == "1.0" and churn.in_flight is not None
    assert churn.in_flight.version == "1.1" and churn.in_flight.state == "rolling_out"
    only = queries.status(world.session, model="churn")
    assert {r.model for r in only} == {"churn"}
