"""The emergency path: the rollback to the previous good version never waits for anyone, a
rollback elsewhere is a request like a promote, and a confirmed rollback runs what was shown."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import Severity
from modeldeck.core.auth.models import Actor
from modeldeck.core.clock import FixedClock
from modeldeck.core.clusters import simulated
from modeldeck.core.config import Settings
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from modeldeck.core.notify.models import OutboxMessage
from modeldeck.core.registry.models import Model
from modeldeck.core.rollouts import queries
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import Deployment, DeploymentPublic, RollbackPlan
from tests.core.rollouts.world import live, live_everywhere, register, snapshot


@pytest.fixture(autouse=True)
def _registry(session: Session, admin: Actor) -> None:
    register(session, admin)


@pytest.fixture
def three(
    session: Session, settings: Settings, deployer: Actor, approver: Actor, clock: FixedClock
) -> list[DeploymentPublic]:
    """1.0.0, 1.1.0, then 1.2.0 went live in production; 2.0.0 is live in staging only."""
    done = [
        live_everywhere(session, settings, clock, deployer, approver, v)
        for v in ("1.0.0", "1.1.0", "1.2.0")
    ]
    live(session, settings, clock, deployer, approver, "2.0.0", "staging")
    return done


def _waiting(session: Session, settings: Settings, actor: Actor, clock: FixedClock) -> int:
    dep = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="2.0.0",
        environment="production",
        actor=actor,
        clock=clock,
    )
    assert dep.state == "awaiting_approval"
    return dep.id


def _rollback(
    session: Session, settings: Settings, actor: Actor, clock: FixedClock, **kwargs: object
) -> DeploymentPublic:
    return rollouts.rollback(
        session,
        settings=settings,
        model="fraud",
        environment="production",
        actor=actor,
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


def test_an_emergency_rollback_supersedes_a_request_awaiting_approval(
    session: Session,
    settings: Settings,
    deployer: Actor,
    approver: Actor,
    clock: FixedClock,
    three: list[DeploymentPublic],
) -> None:
    waiting = _waiting(session, settings, deployer, clock)
    back = _rollback(session, settings, Actor(name="erin", role=deployer.role), clock)
    assert (back.version, back.state) == ("1.1.0", "active")
    row = queries.get(session, waiting)
    assert (row.state, row.message) == ("rejected", f"superseded by rollback #{back.id}")
    # The approval message is redrawn (it no longer offers Approve), and approving is refused.
    kinds = [
        m.kind
        for m in session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        if m.payload.get("deployment_id") == waiting
    ]
    assert kinds == ["approval_request", "deployment_update"]
    before = snapshot(session)
    with pytest.raises(Conflict, match="is rejected; only a rollout awaiting approval"):
        rollouts.approve(
            session, settings=settings, deployment_id=waiting, actor=approver, clock=clock
        )
    assert snapshot(session) == before


def test_reconcile_checks_a_pair_with_a_waiting_request_but_not_one_rolling_out(
    session: Session,
    settings: Settings,
    deployer: Actor,
    clock: FixedClock,
    three: list[DeploymentPublic],
) -> None:
    _waiting(session, settings, deployer, clock)
    simulated.edit_by_hand(
        session, cluster="gpu-a100", namespace="ml-prod", name="fraud", version="hotfix"
    )
    [finding] = rollouts.reconcile(session, settings=settings, clock=clock)
    assert (finding.environment, finding.kind, finding.observed) == (
        "production",
        "version",
        "hotfix",
    )
    settings.clusters[0].rollout_seconds = 600
    simulated.edit_by_hand(
        session, cluster="gpu-l4", namespace="ml-staging", name="fraud", version="hotfix"
    )
    rolling = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.2.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    assert rolling.state == "rolling_out"
    assert [f.environment for f in rollouts.reconcile(session, settings=settings, clock=clock)] == [
        "production"
    ]


def test_a_rollback_past_the_previous_good_version_follows_the_approval_policy(
    session: Session,
    settings: Settings,
    deployer: Actor,
    approver: Actor,
    clock: FixedClock,
    three: list[DeploymentPublic],
) -> None:
    back = _rollback(session, settings, deployer, clock, to_version="1.0.0", reason="known good")
    assert (back.version, back.state, back.message) == (
        "1.0.0",
        "awaiting_approval",
        "waiting for 1 approval(s)",
    )
    request = session.exec(
        select(OutboxMessage).where(OutboxMessage.kind == "approval_request")
    ).all()[-1]
    assert request.payload["deployment_id"] == back.id
    with pytest.raises(Forbidden, match="two-person rule"):
        rollouts.approve(
            session,
            settings=settings,
            deployment_id=back.id,
            actor=Actor(name="carol", role=approver.role),
            clock=clock,
        )
    done = rollouts.approve(
        session, settings=settings, deployment_id=back.id, actor=approver, clock=clock
    )
    assert done.state == "active"
    assert queries.get(session, three[2].id).state == "rolled_back"


def test_naming_the_previous_good_version_is_the_emergency_path(
    session: Session,
    settings: Settings,
    deployer: Actor,
    clock: FixedClock,
    three: list[DeploymentPublic],
) -> None:
    back = _rollback(session, settings, deployer, clock, to_version="1.1.0")
    assert back.state == "active" and back.version == "1.1.0"


def test_a_non_emergency_rollback_is_refused_while_paused_or_while_a_request_waits(
    session: Session,
    settings: Settings,
    deployer: Actor,
    clock: FixedClock,
    three: list[DeploymentPublic],
) -> None:
    waiting = _waiting(session, settings, deployer, clock)
    before = snapshot(session)
    with pytest.raises(Conflict, match=f"already has a rollout in flight .*#{waiting}"):
        _rollback(session, settings, deployer, clock, to_version="1.0.0")
    assert snapshot(session) == before
    rollouts.reject(session, settings=settings, deployment_id=waiting, actor=deployer, clock=clock)
    model = session.exec(select(Model).where(Model.name == "fraud")).one()
    env = session.exec(select(Environment).where(Environment.name == "production")).one()
    alert = alerts.fire(
        session,
        settings=settings,
        rule="drift",
        severity=Severity.critical,
        summary="drift",
        details={},
        model_id=model.id,
        environment_id=env.id,
        pauses_promotions=True,
        clock=clock,
    )
    session.commit()
    before = snapshot(session)
    with pytest.raises(Conflict, match=f"paused by alert {alert.id}"):
        _rollback(session, settings, deployer, clock, to_version="1.0.0")
    assert snapshot(session) == before
    assert _rollback(session, settings, deployer, clock).state == "active"  # the remedy


def test_a_confirmed_rollback_refuses_when_the_active_deployment_changed(
    session: Session,
    settings: Settings,
    deployer: Actor,
    clock: FixedClock,
    three: list[DeploymentPublic],
) -> None:
    plan = rollouts.plan_rollback(
        session, settings=settings, model="fraud", environment="prod", actor=deployer
    )
    assert plan == RollbackPlan(
        model="fraud",
        environment="production",
        current_deployment_id=three[2].id,
        from_version="1.2.0",
        to_version="1.1.0",
        approvals_required=0,
    )
    _rollback(session, settings, Actor(name="erin", role=deployer.role), clock)  # someone else
    before = snapshot(session)
    with pytest.raises(Conflict, match="changed since you asked: deployment .*nothing changed"):
        _rollback(
            session,
            settings,
            deployer,
            clock,
            to_version=plan.to_version,
            expected_current_id=plan.current_deployment_id,
        )
    assert snapshot(session) == before


def test_planning_a_rollback_checks_like_the_rollback_and_changes_nothing(
    session: Session,
    settings: Settings,
    deployer: Actor,
    viewer: Actor,
    clock: FixedClock,
    three: list[DeploymentPublic],
) -> None:
    register(session, deployer, model="churn", versions=("1.0.0",))
    before = snapshot(session)

    def plan(actor: Actor = deployer, **kwargs: object) -> RollbackPlan:
        return rollouts.plan_rollback(
            session,
            settings=settings,
            model=str(kwargs.pop("model", "fraud")),
            environment=str(kwargs.pop("environment", "production")),
            actor=actor,
            **kwargs,  # type: ignore[arg-type]
        )

    assert plan(to_version="1.0.0").approvals_required == 1
    with pytest.raises(Forbidden, match="roll back models needs the deployer role"):
        plan(viewer)
    with pytest.raises(NotFound, match="has no version '9.9.9'"):
        plan(to_version="9.9.9")
    with pytest.raises(InvalidInput, match="never ran in production"):
        plan(to_version="2.0.0")
    with pytest.raises(Conflict, match="1.2.0 is already active"):
        plan(to_version="1.2.0")
    slack = Actor(name="slack:U1", role=deployer.role, via="slack")
    settings.environments[1].slack_channels = ["C0OPS"]
    with pytest.raises(Forbidden, match="can only be changed from its bound Slack channels"):
        plan(slack, slack_channel="C0RANDOM")
    with pytest.raises(Conflict, match="nothing is active for churn in production"):
        plan(model="churn")
    assert snapshot(session) == before


def test_a_failed_automatic_rollback_is_tried_again_a_few_times(
    session: Session, settings: Settings, clock: FixedClock, three: list[DeploymentPublic]
) -> None:
    model = session.exec(select(Model).where(Model.name == "fraud")).one()
    env = session.exec(select(Environment).where(Environment.name == "production")).one()
    assert model.id is not None and env.id is not None

    def attempt() -> DeploymentPublic | None:
        return rollouts.auto_rollback(
            session,
            settings=settings,
            model_id=model.id or 0,
            environment_id=env.id or 0,
            deployment_id=three[2].id,
            reason="drift check failed",
            clock=clock,
        )

    settings.clusters[1].failure_rate = 1.0  # production's cluster refuses every rollout
    first = attempt()
    assert first is not None and first.state == "failed"
    clock.advance(minutes=15)
    second = attempt()
    assert second is not None and second.state == "failed" and second.id != first.id
    settings.clusters[1].failure_rate = 0.0
    clock.advance(minutes=15)
    third = attempt()
    assert third is not None and (third.state, third.version) == ("active", "1.1.0")
    keys = session.exec(
        select(Deployment.idempotency_key).where(
            Deployment.requested_by == "modeldeck-auto-rollback"
        )
    ).all()
    assert keys == [
        f"auto-rollback:{three[2].id}",
        f"auto-rollback:{three[2].id}:2",
        f"auto-rollback:{three[2].id}:3",
    ]


def test_automatic_rollback_attempts_are_bounded(
    session: Session, settings: Settings, clock: FixedClock, three: list[DeploymentPublic]
) -> None:
    model = session.exec(select(Model).where(Model.name == "fraud")).one()
    env = session.exec(select(Environment).where(Environment.name == "production")).one()
    settings.clusters[1].failure_rate = 1.0
    results = []
    for _ in range(rollouts.AUTO_ROLLBACK_ATTEMPTS + 1):
        results.append(
            rollouts.auto_rollback(
                session,
                settings=settings,
                model_id=model.id or 0,
                environment_id=env.id or 0,
                deployment_id=three[2].id,
                reason="drift check failed",
                clock=clock,
            )
        )
    ids = [r.id for r in results if r is not None]
    assert len(set(ids)) == rollouts.AUTO_ROLLBACK_ATTEMPTS and ids[-1] == ids[-2]


def test_a_plan_names_the_request_it_supersedes_and_refuses_what_must_wait(
    session: Session,
    settings: Settings,
    deployer: Actor,
    clock: FixedClock,
    three: list[DeploymentPublic],
) -> None:
    waiting = _waiting(session, settings, deployer, clock)
    before = snapshot(session)
    plan = rollouts.plan_rollback(
        session, settings=settings, model="fraud", environment="production", actor=deployer
    )
    assert (plan.to_version, plan.supersedes) == ("1.1.0", waiting)
    with pytest.raises(Conflict, match=f"already has a rollout in flight .*#{waiting}"):
        rollouts.plan_rollback(
            session,
            settings=settings,
            model="fraud",
            environment="production",
            actor=deployer,
            to_version="1.0.0",
        )
    assert snapshot(session) == before
    settings.clusters[0].rollout_seconds = 600
    rolling = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.2.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    assert rolling.state == "rolling_out"
    with pytest.raises(Conflict, match=f"#{rolling.id} \\(1.2.0, rolling_out\\)"):
        rollouts.plan_rollback(
            session, settings=settings, model="fraud", environment="staging", actor=deployer
        )
