from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.auth.models import Actor
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from modeldeck.core.notify.models import OutboxMessage
from modeldeck.core.registry.models import Model
from modeldeck.core.rollouts import queries
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import Deployment, DeploymentPublic
from tests.conftest import make_settings
from tests.core.rollouts.world import live, live_everywhere, register, snapshot


@pytest.fixture(autouse=True)
def _registry(session: Session, admin: Actor) -> None:
    register(session, admin)


@pytest.fixture
def three(
    session: Session, settings: Settings, deployer: Actor, approver: Actor, clock: FixedClock
) -> list[DeploymentPublic]:
    """1.0.0, 1.1.0, then 1.2.0 went live in production, an hour apart each."""
    return [
        live_everywhere(session, settings, clock, deployer, approver, v)
        for v in ("1.0.0", "1.1.0", "1.2.0")
    ]


def test_rollback_goes_to_the_previous_version_and_marks_the_bad_one_rolled_back(
    session: Session,
    settings: Settings,
    deployer: Actor,
    clock: FixedClock,
    three: list[DeploymentPublic],
) -> None:
    back = rollouts.rollback(
        session,
        settings=settings,
        model="fraud",
        environment="prod",
        actor=deployer,
        reason="p99 latency doubled",
        clock=clock,
    )
    assert (back.kind, back.version, back.state) == ("rollback", "1.1.0", "active")
    assert back.previous_deployment_id == three[2].id
    bad = session.get(Deployment, three[2].id)
    assert bad is not None and bad.state == "rolled_back"
    assert [
        (d.version, d.state)
        for d in queries.history(session, model="fraud", environment="production", limit=2).data
    ] == [("1.1.0", "active"), ("1.2.0", "rolled_back")]


def test_a_second_rollback_skips_the_rolled_back_version(
    session: Session,
    settings: Settings,
    deployer: Actor,
    clock: FixedClock,
    three: list[DeploymentPublic],
) -> None:
    rollouts.rollback(
        session,
        settings=settings,
        model="fraud",
        environment="production",
        actor=deployer,
        clock=clock,
    )
    clock.advance(minutes=5)
    again = rollouts.rollback(
        session,
        settings=settings,
        model="fraud",
        environment="production",
        actor=deployer,
        clock=clock,
    )
    assert again.version == "1.0.0"


def test_rollback_goes_back_in_time_to_any_version_from_the_history(
    session: Session,
    settings: Settings,
    deployer: Actor,
    approver: Actor,
    clock: FixedClock,
    three: list[DeploymentPublic],
) -> None:
    then = three[0].activated_at
    assert then is not None
    assert [d.version for d in queries.running_at(session, environment="production", at=then)] == [
        "1.0.0"
    ]
    back = rollouts.rollback(
        session,
        settings=settings,
        model="fraud",
        environment="production",
        actor=deployer,
        to_version="1.0.0",
        clock=clock,
    )
    # Past the previous good version (1.1.0) is not the emergency path: production's approval.
    assert back.version == "1.0.0" and back.state == "awaiting_approval"
    back = rollouts.approve(
        session, settings=settings, deployment_id=back.id, actor=approver, clock=clock
    )
    assert back.version == "1.0.0" and back.state == "active"
    assert [
        d.version for d in queries.running_at(session, environment="production", at=clock())
    ] == ["1.0.0"]


def test_rollback_refusals_leave_the_database_unchanged(
    session: Session,
    settings: Settings,
    deployer: Actor,
    viewer: Actor,
    clock: FixedClock,
    three: list[DeploymentPublic],
) -> None:
    before = snapshot(session)
    with pytest.raises(InvalidInput, match="fraud 2.0.0 never ran in production"):
        rollouts.rollback(
            session,
            settings=settings,
            model="fraud",
            environment="production",
            actor=deployer,
            to_version="2.0.0",
            clock=clock,
        )
    with pytest.raises(NotFound, match="has no version '0.1.0'"):
        rollouts.rollback(
            session,
            settings=settings,
            model="fraud",
            environment="production",
            actor=deployer,
            to_version="0.1.0",
            clock=clock,
        )
    with pytest.raises(Conflict, match="fraud 1.2.0 is already active in production"):
        rollouts.rollback(
            session,
            settings=settings,
            model="fraud",
            environment="production",
            actor=deployer,
            to_version="1.2.0",
            clock=clock,
        )
    with pytest.raises(Forbidden, match="needs the deployer role"):
        rollouts.rollback(
            session,
            settings=settings,
            model="fraud",
            environment="production",
            actor=viewer,
            clock=clock,
        )
    assert snapshot(session) == before


def test_rollback_with_no_earlier_version_is_refused(
    session: Session, settings: Settings, deployer: Actor, approver: Actor, clock: FixedClock
) -> None:
    before = snapshot(session)
    with pytest.raises(Conflict, match="nothing is active for fraud in staging"):
        rollouts.rollback(
            session,
            settings=settings,
            model="fraud",
            environment="staging",
            actor=deployer,
            clock=clock,
        )
    assert snapshot(session) == before
    live(session, settings, clock, deployer, approver, "1.0.0", "staging")
    before = snapshot(session)
    with pytest.raises(Conflict, match="fraud has no earlier version in staging"):
        rollouts.rollback(
            session,
            settings=settings,
            model="fraud",
            environment="staging",
            actor=deployer,
            clock=clock,
        )
    assert snapshot(session) == before


def test_rollback_idempotency_key(
    session: Session,
    settings: Settings,
    deployer: Actor,
    clock: FixedClock,
    three: list[DeploymentPublic],
) -> None:
    first = rollouts.rollback(
        session,
        settings=settings,
        model="fraud",
        environment="production",
        actor=deployer,
        idempotency_key="btn-7",
        clock=clock,
    )
    before = snapshot(session)
    again = rollouts.rollback(
        session,
        settings=settings,
        model="fraud",
        environment="production",
        actor=deployer,
        idempotency_key="btn-7",
        clock=clock,
    )
    assert again.id == first.id and snapshot(session) == before


def _ids(session: Session) -> tuple[int, int]:
    model = session.exec(select(Model).where(Model.name == "fraud")).one()
    env = session.exec(select(Environment).where(Environment.name == "production")).one()
    assert model.id is not None and env.id is not None
    return model.id, env.id


def test_auto_rollback_rolls_back_as_the_automation_identity_and_says_why(
    session: Session, settings: Settings, clock: FixedClock, three: list[DeploymentPublic]
) -> None:
    model_id, env_id = _ids(session)
    back = rollouts.auto_rollback(
        session,
        settings=settings,
        model_id=model_id,
        environment_id=env_id,
        deployment_id=three[2].id,
        reason="drift check failed: 7 of 12 columns drifted",
        clock=clock,
    )
    assert back is not None
    assert (back.version, back.state, back.requested_via) == ("1.1.0", "active", "auto")
    assert back.requested_by == "modeldeck-auto-rollback"
    assert back.reason == "automatic rollback: drift check failed: 7 of 12 columns drifted"
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "deployment.rollback")).one()
    assert (event.actor, event.via) == ("modeldeck-auto-rollback", "auto")
    assert (
        session.exec(select(OutboxMessage).where(OutboxMessage.kind == "deployment_update")).first()
        is not None
    )
    # The same alert again: the judged deployment is no longer active, nothing more happens.
    before = snapshot(session)
    assert (
        rollouts.auto_rollback(
            session,
            settings=settings,
            model_id=model_id,
            environment_id=env_id,
            deployment_id=three[2].id,
            reason="drift check failed",
            clock=clock,
        )
        is None
    )
    assert snapshot(session) == before


def test_auto_rollback_does_nothing_where_it_is_off_or_impossible(
    session: Session, settings: Settings, deployer: Actor, approver: Actor, clock: FixedClock
) -> None:
    live(session, settings, clock, deployer, approver, "1.0.0", "staging")
    live(session, settings, clock, deployer, approver, "1.1.0", "staging")
    model_id, _ = _ids(session)
    staging = session.exec(select(Environment).where(Environment.name == "staging")).one()
    assert staging.id is not None and not staging.auto_rollback
    before = snapshot(session)
    assert (
        rollouts.auto_rollback(
            session,
            settings=settings,
            model_id=model_id,
            environment_id=staging.id,
            reason="x",
            clock=clock,
        )
        is None
    )
    live(session, settings, clock, deployer, approver, "1.0.0", "production")
    _, prod_id = _ids(session)
    before = snapshot(session)
    assert (
        rollouts.auto_rollback(
            session,
            settings=settings,
            model_id=model_id,
            environment_id=prod_id,
            reason="x",
            clock=clock,
        )
        is None
    )
    assert snapshot(session) == before


def test_auto_rollback_supersedes_a_request_awaiting_approval(
    session: Session,
    settings: Settings,
    deployer: Actor,
    approver: Actor,
    clock: FixedClock,
    three: list[DeploymentPublic],
) -> None:
    live(session, settings, clock, deployer, approver, "2.0.0", "staging")
    waiting = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="2.0.0",
        environment="production",
        actor=deployer,
        clock=clock,
    )
    assert waiting.state == "awaiting_approval"
    model_id, env_id = _ids(session)
    back = rollouts.auto_rollback(
        session,
        settings=settings,
        model_id=model_id,
        environment_id=env_id,
        deployment_id=three[2].id,
        reason="quality failed",
        clock=clock,
    )
    assert back is not None and (back.version, back.state) == ("1.1.0", "active")
    superseded = queries.get(session, waiting.id)
    assert (superseded.state, superseded.message) == (
        "rejected",
        f"superseded by rollback #{back.id}",
    )
    assert superseded.finished_at is not None
    event = session.exec(
        select(AuditEvent).where(
            AuditEvent.action == "deployment.reject",
            AuditEvent.target.endswith(f"deployment:{waiting.id}"),  # type: ignore[attr-defined]
        )
    ).one()
    assert event.actor == "modeldeck-auto-rollback"
    assert event.after is not None and event.after["superseded_by"] == back.id
    updates = session.exec(
        select(OutboxMessage).where(OutboxMessage.kind == "deployment_update")
    ).all()
    assert any(m.payload.get("deployment_id") == waiting.id for m in updates)
    assert not session.exec(
        select(AuditEvent).where(AuditEvent.action == "deployment.auto_rollback_skipped")
    ).first()


def test_auto_rollback_while_a_rollout_is_on_its_way_is_skipped_and_audited(
    session: Session,
    tmp_path: Path,
    admin: Actor,
    deployer: Actor,
    approver: Actor,
    clock: FixedClock,
) -> None:
    settings = make_settings(tmp_path)
    environments.sync(session, settings)
    for v in ("1.0.0", "1.1.0"):
        live_everywhere(session, settings, clock, deployer, approver, v)
    live(session, settings, clock, deployer, approver, "1.2.0", "staging")
    settings.clusters[1].rollout_seconds = 600  # production's cluster is slow now
    sent = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.2.0",
        environment="production",
        actor=deployer,
        clock=clock,
    )
    sent = rollouts.approve(
        session, settings=settings, deployment_id=sent.id, actor=approver, clock=clock
    )
    assert sent.state == "rolling_out"
    model_id, env_id = _ids(session)
    assert (
        rollouts.auto_rollback(
            session,
            settings=settings,
            model_id=model_id,
            environment_id=env_id,
            reason="quality failed",
            clock=clock,
        )
        is None
    )
    skipped = session.exec(
        select(AuditEvent).where(AuditEvent.action == "deployment.auto_rollback_skipped")
    ).one()
    assert skipped.after is not None and f"#{sent.id} is in flight" in skipped.after["why"]
    assert queries.get(session, sent.id).state == "rolling_out"
