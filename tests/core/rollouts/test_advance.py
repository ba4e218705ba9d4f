"""Rollouts that take time on the simulated backend: followed with a fake clock, no sleeping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.auth.models import Actor
from modeldeck.core.clock import FixedClock
from modeldeck.core.clusters import connect, simulated
from modeldeck.core.clusters.backend import Target
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.rollouts import queries
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import Deployment
from tests.conftest import make_settings
from tests.core.rollouts.world import live, register


@pytest.fixture
def slow(tmp_path: Path, session: Session, admin: Actor) -> Settings:
    """Staging's cluster takes 90 s per rollout."""
    settings = make_settings(tmp_path)
    settings.clusters[0].rollout_seconds = 90
    settings.clusters[0].rollout_timeout_seconds = 300
    environments.sync(session, settings)
    register(session, admin)
    return settings


def test_a_slow_rollout_is_rolling_out_until_the_cluster_says_available(
    session: Session, slow: Settings, deployer: Actor, clock: FixedClock
) -> None:
    dep = rollouts.promote(
        session,
        settings=slow,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    assert dep.state == "rolling_out"
    assert "about 90s left" in dep.message
    clock.advance(seconds=60)
    dep = rollouts.advance(session, settings=slow, deployment_id=dep.id, clock=clock)
    assert dep.state == "rolling_out" and "about 30s left" in dep.message
    clock.advance(seconds=31)
    dep = rollouts.advance(session, settings=slow, deployment_id=dep.id, clock=clock)
    assert dep.state == "active" and dep.activated_at == clock()


def test_the_old_version_serves_until_the_new_one_is_ready(
    session: Session, slow: Settings, deployer: Actor, approver: Actor, clock: FixedClock
) -> None:
    first = rollouts.promote(
        session,
        settings=slow,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    clock.advance(seconds=100)
    rollouts.advance(session, settings=slow, deployment_id=first.id, clock=clock)
    second = rollouts.promote(
        session,
        settings=slow,
        model="fraud",
        version="1.1.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    status = {r.environment: r for r in queries.status(session, model="fraud")}["staging"]
    assert status.version == "1.0.0"
    assert status.in_flight is not None and status.in_flight.id == second.id


def test_a_failing_rollout_fails_with_the_clusters_reason_and_keeps_the_old_version(
    session: Session, slow: Settings, deployer: Actor, clock: FixedClock
) -> None:
    first = rollouts.promote(
        session,
        settings=slow,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    clock.advance(seconds=100)
    rollouts.advance(session, settings=slow, deployment_id=first.id, clock=clock)
    slow.clusters[0].failure_rate = 1.0
    bad = rollouts.promote(
        session,
        settings=slow,
        model="fraud",
        version="1.1.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    clock.advance(seconds=100)
    bad = rollouts.advance(session, settings=slow, deployment_id=bad.id, clock=clock)
    assert bad.state == "failed"
    assert bad.message.startswith("rollout of 1.1.0 failed: ")
    assert bad.finished_at == clock()
    assert queries.get(session, first.id).state == "active"


def test_a_rollout_that_never_finishes_times_out(
    session: Session, tmp_path: Path, admin: Actor, deployer: Actor, clock: FixedClock
) -> None:
    settings = make_settings(tmp_path)
    settings.clusters[0].rollout_seconds = 3600
    settings.clusters[0].rollout_timeout_seconds = 600
    environments.sync(session, settings)
    register(session, admin)
    dep = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    clock.advance(seconds=601)
    dep = rollouts.advance(session, settings=settings, deployment_id=dep.id, clock=clock)
    assert dep.state == "failed"
    assert dep.message.startswith("not available within 600s: waiting for 1.0.0")


def test_a_rollout_changed_by_hand_while_rolling_out_fails(
    session: Session, slow: Settings, deployer: Actor, clock: FixedClock
) -> None:
    dep = rollouts.promote(
        session,
        settings=slow,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    simulated.edit_by_hand(
        session,
        cluster="gpu-l4",
        namespace="ml-staging",
        name="fraud",
        version="0.9-hotfix",
        clock=clock,
    )
    dep = rollouts.advance(session, settings=slow, deployment_id=dep.id, clock=clock)
    assert dep.state == "failed" and "changed by someone else" in dep.message


def test_advance_in_flight_moves_every_rollout_and_leaves_finished_ones(
    session: Session, slow: Settings, deployer: Actor, approver: Actor, clock: FixedClock
) -> None:
    register(session, deployer, model="churn", versions=("3.0.0",))
    a = rollouts.promote(
        session,
        settings=slow,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    b = rollouts.promote(
        session,
        settings=slow,
        model="churn",
        version="3.0.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    clock.advance(seconds=91)
    moved = rollouts.advance_in_flight(session, settings=slow, clock=clock)
    assert sorted((d.id, d.state) for d in moved) == [(a.id, "active"), (b.id, "active")]
    assert rollouts.advance_in_flight(session, settings=slow, clock=clock) == []
    # advance on a finished deployment changes nothing
    assert (
        rollouts.advance(session, settings=slow, deployment_id=a.id, clock=clock).state == "active"
    )


def stray_pending(session: Session, clock: FixedClock, **fields: Any) -> Deployment:
    """A `pending` request for fraud 1.1.0 in staging that no launch followed (as a process
    that died between its commit and the cluster leaves it)."""
    active = queries.history(session, environment="staging").data[0]
    row = Deployment(
        model_id=1,
        environment_id=queries.get(session, active.id).environment_id,
        version_id=2,
        kind="promote",
        state="pending",
        requested_by="carol",
        requested_via="cli",
        started_at=clock(),
        **fields,
    )
    session.add(row)
    session.commit()
    assert row.id is not None
    return row


def test_a_pending_row_left_by_a_crash_is_sent_again(
    session: Session,
    settings: Settings,
    admin: Actor,
    deployer: Actor,
    approver: Actor,
    clock: FixedClock,
) -> None:
    register(session, admin)
    live(session, settings, clock, deployer, approver, "1.0.0", "staging")
    # A process recorded the request, then died before talking to the cluster.
    row = stray_pending(session, clock)
    young = rollouts.advance(session, settings=settings, deployment_id=row.id, clock=clock)
    assert young.state == "pending"  # might still be launching: left alone
    clock.advance(minutes=1)
    done = rollouts.advance(session, settings=settings, deployment_id=row.id, clock=clock)
    assert done.state == "active" and done.version == "1.1.0"


def test_a_pending_row_older_than_the_rollout_timeout_is_failed_not_sent(
    session: Session,
    settings: Settings,
    admin: Actor,
    deployer: Actor,
    approver: Actor,
    clock: FixedClock,
) -> None:
    register(session, admin)
    live(session, settings, clock, deployer, approver, "1.0.0", "staging")
    # Recorded, then nothing advanced it for longer than a rollout may take (no scheduler, or
    # every launch crashed); it used to stay `pending` and block every later request.
    row = stray_pending(session, clock, pending_since=clock())
    timeout = settings.clusters[0].rollout_timeout_seconds
    clock.advance(seconds=30 + timeout + 1)  # PENDING_GRACE + the cluster's rollout timeout
    dep = rollouts.advance(session, settings=settings, deployment_id=row.id, clock=clock)
    assert (dep.state, dep.finished_at) == ("failed", clock())
    assert dep.message == (
        f"gave up after {30 + timeout + 1:.0f}s pending: it was never confirmed on cluster gpu-l4 "
        f"within its {timeout:g}s rollout timeout; nothing was sent now, request it again if it "
        "is still wanted"
    )
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "deployment.failed")).one()
    assert event.target.endswith(f"deployment:{row.id}") and event.actor == "modeldeck"
    assert simulated_version(session, settings, clock) == "1.0.0"  # nothing was sent
    again = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.1.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    assert again.state == "active"


def simulated_version(session: Session, settings: Settings, clock: FixedClock) -> str | None:
    """What staging's simulated cluster serves for fraud."""
    backend = connect.backend_for(settings, "gpu-l4", session=session, clock=clock)
    target = Target("gpu-l4", "ml-staging", "fraud", "fraud", "staging")
    running = backend.running(target)
    return running.version if running else None
