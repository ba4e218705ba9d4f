"""Concurrent requests on the real PostgreSQL: the database keeps one rollout per pair."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.errors import Conflict
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import Approval, Deployment
from tests.core.rollouts.world import live, register

pytestmark = pytest.mark.postgres
CLIENTS = 20


def _race(engine: Engine, calls: list[Callable[[Session], Any]]) -> list[Any]:
    """Run each call in its own thread and session, all released at the same moment."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[Session], Any]) -> Any:
        with Session(engine, expire_on_commit=False) as session:
            barrier.wait(timeout=30)
            try:
                return call(session)
            except Conflict as exc:
                return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.fixture
def pg(pg_engine: Engine, settings: Settings, admin: Actor) -> Engine:
    with Session(pg_engine) as session:
        environments.sync(session, settings)
        register(session, admin)
    return pg_engine


def test_twenty_concurrent_promotions_give_one_rollout_and_nineteen_conflicts(
    pg: Engine, settings: Settings, clock: FixedClock
) -> None:
    actors = [Actor(name=f"user{i}", role=Role.deployer, via="api") for i in range(CLIENTS)]
    results = _race(
        pg,
        [
            partial(
                rollouts.promote,
                settings=settings,
                model="fraud",
                version="1.0.0",
                environment="staging",
                actor=a,
                clock=clock,
            )
            for a in actors
        ],
    )
    won = [r for r in results if not isinstance(r, Conflict)]
    lost = [r for r in results if isinstance(r, Conflict)]
    assert len(won) == 1 and won[0].state == "active"
    assert len(lost) == CLIENTS - 1
    for exc in lost:
        assert (
            "fraud 1.0.0 is already active in staging" in exc.message
            or "already has a rollout in flight in staging" in exc.message
        )
    with Session(pg) as session:
        assert len(session.exec(select(Deployment)).all()) == 1


def test_twenty_different_versions_at_once_still_one_in_flight(
    pg: Engine, settings: Settings, clock: FixedClock, admin: Actor
) -> None:
    """With approval pending nobody finishes, so every loser meets the in-flight rollout."""
    with Session(pg) as session:
        register(session, admin, model="ranker", versions=tuple(f"3.{i}.0" for i in range(20)))
        for i in range(CLIENTS):
            live(
                session,
                settings,
                clock,
                admin,
                Actor("bob", Role.approver),
                f"3.{i}.0",
                "staging",
                model="ranker",
            )
    results = _race(
        pg,
        [
            partial(
                rollouts.promote,
                settings=settings,
                model="ranker",
                version=f"3.{i}.0",
                environment="production",
                actor=Actor(name=f"user{i}", role=Role.deployer, via="api"),
                clock=clock,
            )
            for i in range(CLIENTS)
        ],
    )
    won = [r for r in results if not isinstance(r, Conflict)]
    assert len(won) == 1 and won[0].state == "awaiting_approval"
    assert all(
        "already has a rollout in flight in production" in r.message
        for r in results
        if isinstance(r, Conflict)
    )


def test_twenty_retries_with_one_idempotency_key_return_the_same_deployment(
    pg: Engine, settings: Settings, clock: FixedClock
) -> None:
    actor = Actor(name="slack:U1", role=Role.deployer, via="slack")
    results = _race(
        pg,
        [
            partial(
                rollouts.promote,
                settings=settings,
                model="fraud",
                version="1.0.0",
                environment="staging",
                actor=actor,
                idempotency_key="slack-trigger-1",
                clock=clock,
            )
            for _ in range(CLIENTS)
        ],
    )
    assert not [r for r in results if isinstance(r, Conflict)]
    assert {r.id for r in results} == {results[0].id}
    with Session(pg) as session:
        assert len(session.exec(select(Deployment)).all()) == 1


def test_two_approvers_at_once_both_count_and_the_rollout_goes_out_once(
    pg: Engine, tmp_path: Any, clock: FixedClock, admin: Actor
) -> None:
    from tests.conftest import make_settings

    settings = make_settings(tmp_path)
    settings.environments[1].approvals_required = 2
    with Session(pg) as session:
        environments.sync(session, settings)
        live(session, settings, clock, admin, Actor("bob", Role.approver), "1.0.0", "staging")
        dep = rollouts.promote(
            session,
            settings=settings,
            model="fraud",
            version="1.0.0",
            environment="production",
            actor=admin,
            clock=clock,
        )
    results = _race(
        pg,
        [
            partial(
                rollouts.approve,
                settings=settings,
                deployment_id=dep.id,
                actor=Actor(name=n, role=Role.approver),
                clock=clock,
            )
            for n in ("bob", "frank")
        ],
    )
    assert not [r for r in results if isinstance(r, Conflict)]
    with Session(pg) as session:
        row = session.get(Deployment, dep.id)
        assert row is not None and row.state == "active"
        assert (
            len(session.exec(select(Approval).where(Approval.deployment_id == dep.id)).all()) == 2
        )
