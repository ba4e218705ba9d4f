from __future__ import annotations

import pytest
from sqlmodel import Session, select

from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from modeldeck.core.notify.models import OutboxMessage
from modeldeck.core.rollouts import queries
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import Deployment
from tests.core.rollouts.world import live, register, snapshot


@pytest.fixture(autouse=True)
def _registry(session: Session, admin: Actor) -> None:
    register(session, admin)


def test_promote_to_staging_is_active_at_once_on_the_instant_simulated_backend(
    session: Session, settings: Settings, deployer: Actor, clock: FixedClock
) -> None:
    dep = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=deployer,
        reason="first release",
        clock=clock,
    )
    assert dep.state == "active"
    assert dep.kind == "promote"
    assert dep.requested_by == "carol" and dep.requested_via == "cli"
    assert dep.activated_at == clock() and dep.applied_at == clock()
    assert dep.reason == "first release"
    actions = session.exec(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert [a for a in actions if a.startswith("deployment.")] == [
        "deployment.promote",
        "deployment.rollout",
        "deployment.active",
    ]
    running = queries.running_at(session, environment="staging", at=clock())
    assert [(d.model, d.version) for d in running] == [("fraud", "1.0.0")]


def test_environment_aliases_are_accepted(
    session: Session, settings: Settings, deployer: Actor, clock: FixedClock
) -> None:
    dep = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="STG",
        actor=deployer,
        clock=clock,
    )
    assert dep.environment == "staging"


def test_a_newer_version_supersedes_the_active_one_in_the_same_transaction(
    session: Session, settings: Settings, deployer: Actor, approver: Actor, clock: FixedClock
) -> None:
    first = live(session, settings, clock, deployer, approver, "1.0.0", "staging")
    second = live(session, settings, clock, deployer, approver, "1.1.0", "staging")
    old = session.get(Deployment, first.id)
    assert old is not None and old.state == "superseded"
    assert queries.to_public(session, [old])[0].finished_at == second.activated_at
    assert second.previous_deployment_id == first.id
    rows = queries.history(session, model="fraud", environment="staging").data
    assert [(d.version, d.state) for d in rows] == [("1.1.0", "active"), ("1.0.0", "superseded")]


def test_production_requires_approval_and_queues_a_slack_request(
    session: Session, settings: Settings, deployer: Actor, approver: Actor, clock: FixedClock
) -> None:
    live(session, settings, clock, deployer, approver, "1.0.0", "staging")
    dep = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="prod",
        actor=deployer,
        reason="staging looks good",
        clock=clock,
    )
    assert dep.state == "awaiting_approval" and dep.approvals_required == 1
    outbox = session.exec(select(OutboxMessage)).all()
    assert [(m.channel, m.kind, m.payload) for m in outbox] == [
        ("slack", "approval_request", {"deployment_id": dep.id})
    ]
    done = rollouts.approve(
        session,
        settings=settings,
        deployment_id=dep.id,
        actor=approver,
        comment="lgtm",
        clock=clock,
    )
    assert done.state == "active"
    assert [(a.approver, a.decision, a.comment) for a in done.approvals] == [
        ("bob", "approve", "lgtm")
    ]


def test_unknown_model_version_or_environment_is_refused_and_nothing_is_written(
    session: Session, settings: Settings, deployer: Actor, clock: FixedClock
) -> None:
    before = snapshot(session)
    with pytest.raises(NotFound, match="no model named 'fruad'"):
        rollouts.promote(
            session,
            settings=settings,
            model="fruad",
            version="1.0.0",
            environment="staging",
            actor=deployer,
            clock=clock,
        )
    with pytest.raises(NotFound, match="has no version '9.9.9'") as exc:
        rollouts.promote(
            session,
            settings=settings,
            model="fraud",
            version="9.9.9",
            environment="staging",
            actor=deployer,
            clock=clock,
        )
    assert exc.value.hint and "latest" in exc.value.hint
    with pytest.raises(NotFound, match="no environment named 'qa'"):
        rollouts.promote(
            session,
            settings=settings,
            model="fraud",
            version="1.0.0",
            environment="qa",
            actor=deployer,
            clock=clock,
        )
    assert snapshot(session) == before


def test_production_before_staging_is_refused_with_the_way_forward(
    session: Session, settings: Settings, deployer: Actor, clock: FixedClock
) -> None:
    before = snapshot(session)
    with pytest.raises(Conflict, match="has not been active in staging") as exc:
        rollouts.promote(
            session,
            settings=settings,
            model="fraud",
            version="1.0.0",
            environment="production",
            actor=deployer,
            clock=clock,
        )
    assert exc.value.hint == "modeldeck promote fraud 1.0.0 --to staging"
    assert snapshot(session) == before


def test_a_version_that_failed_in_staging_still_may_not_reach_production(
    session: Session, settings: Settings, deployer: Actor, clock: FixedClock, tmp_path: object
) -> None:
    flaky = settings.model_copy(deep=True)
    flaky.clusters[0].failure_rate = 1.0  # gpu-l4 = staging
    dep = rollouts.promote(
        session,
        settings=flaky,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    assert dep.state == "failed"
    with pytest.raises(Conflict, match="has not been active in staging"):
        rollouts.promote(
            session,
            settings=flaky,
            model="fraud",
            version="1.0.0",
            environment="production",
            actor=deployer,
            clock=clock,
        )


def test_viewers_may_not_promote(
    session: Session, settings: Settings, viewer: Actor, clock: FixedClock
) -> None:
    before = snapshot(session)
    with pytest.raises(Forbidden, match="needs the deployer role; dave is viewer"):
        rollouts.promote(
            session,
            settings=settings,
            model="fraud",
            version="1.0.0",
            environment="staging",
            actor=viewer,
            clock=clock,
        )
    nobody = Actor(name="mallory", role=None, via="slack")
    with pytest.raises(Forbidden, match="no modeldeck role"):
        rollouts.promote(
            session,
            settings=settings,
            model="fraud",
            version="1.0.0",
            environment="staging",
            actor=nobody,
            clock=clock,
        )
    assert snapshot(session) == before


def test_promoting_the_active_version_again_is_a_conflict(
    session: Session, settings: Settings, deployer: Actor, approver: Actor, clock: FixedClock
) -> None:
    live(session, settings, clock, deployer, approver, "1.0.0", "staging")
    before = snapshot(session)
    with pytest.raises(Conflict, match="fraud 1.0.0 is already active in staging"):
        rollouts.promote(
            session,
            settings=settings,
            model="fraud",
            version="1.0.0",
            environment="staging",
            actor=deployer,
            clock=clock,
        )
    assert snapshot(session) == before


def test_one_rollout_in_flight_per_model_and_environment(
    session: Session, settings: Settings, deployer: Actor, approver: Actor, clock: FixedClock
) -> None:
    live(session, settings, clock, deployer, approver, "1.0.0", "staging")
    live(session, settings, clock, deployer, approver, "1.1.0", "staging")
    waiting = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="production",
        actor=deployer,
        clock=clock,
    )
    before = snapshot(session)
    with pytest.raises(
        Conflict,
        match=rf"rollout in flight in production: deployment "
        rf"#{waiting.id} \(1.0.0, awaiting_approval\)",
    ) as exc:
        rollouts.promote(
            session,
            settings=settings,
            model="fraud",
            version="1.1.0",
            environment="production",
            actor=deployer,
            clock=clock,
        )
    assert exc.value.hint and f"modeldeck reject {waiting.id}" in exc.value.hint
    assert snapshot(session) == before


def test_duplicate_idempotency_key_returns_the_first_result_without_a_second_rollout(
    session: Session, settings: Settings, deployer: Actor, clock: FixedClock
) -> None:
    first = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=deployer,
        idempotency_key="slack-42",
        clock=clock,
    )
    before = snapshot(session)
    again = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=deployer,
        idempotency_key="slack-42",
        clock=clock,
    )
    assert again == first
    assert snapshot(session) == before
    with pytest.raises(Conflict, match="idempotency key 'slack-42' was already used"):
        rollouts.promote(
            session,
            settings=settings,
            model="fraud",
            version="1.1.0",
            environment="staging",
            actor=deployer,
            idempotency_key="slack-42",
            clock=clock,
        )
    assert snapshot(session) == before


def test_bad_text_inputs_are_refused(
    session: Session, settings: Settings, deployer: Actor, clock: FixedClock
) -> None:
    before = snapshot(session)
    with pytest.raises(InvalidInput, match="reason is 2001 characters"):
        rollouts.promote(
            session,
            settings=settings,
            model="fraud",
            version="1.0.0",
            environment="staging",
            actor=deployer,
            reason="x" * 2001,
            clock=clock,
        )
    with pytest.raises(InvalidInput, match="idempotency_key"):
        rollouts.promote(
            session,
            settings=settings,
            model="fraud",
            version="1.0.0",
            environment="staging",
            actor=deployer,
            idempotency_key="  ",
            clock=clock,
        )
    assert snapshot(session) == before


def test_environments_bound_to_slack_channels_refuse_other_channels(
    session: Session, tmp_path: object, deployer: Actor, clock: FixedClock
) -> None:
    from pathlib import Path

    from modeldeck.core.environments import service as environments
    from tests.conftest import make_settings

    settings = make_settings(Path(str(tmp_path)))
    settings.environments[0].slack_channels = ["C-STAGING"]
    environments.sync(session, settings)
    from_slack = Actor(name="slack:U1", role=Role.deployer, via="slack")
    before = snapshot(session)
    with pytest.raises(Forbidden, match="only be changed from its bound Slack channels"):
        rollouts.promote(
            session,
            settings=settings,
            model="fraud",
            version="1.0.0",
            environment="staging",
            actor=from_slack,
            slack_channel="C-RANDOM",
            clock=clock,
        )
    assert snapshot(session) == before
    ok = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=from_slack,
        slack_channel="C-STAGING",
        clock=clock,
    )
    assert ok.state == "active" and ok.requested_via == "slack"


def test_promote_works_with_a_past_clock(
    session: Session, settings: Settings, deployer: Actor
) -> None:
    from datetime import UTC, datetime

    past = FixedClock(datetime(2026, 8, 1, 9, 0, tzinfo=UTC))
    dep = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=deployer,
        clock=past,
    )
    assert dep.state == "active" and dep.started_at == past() == dep.activated_at


def test_an_open_pausing_alert_holds_promotions_but_not_rollbacks(
    session: Session, settings: Settings, deployer: Actor, clock: FixedClock
) -> None:
    from modeldeck.core.alerts import service as alerts
    from modeldeck.core.alerts.models import Severity
    from modeldeck.core.environments import service as environments
    from modeldeck.core.registry import service as registry

    for version in ("1.0.0", "1.1.0"):
        rollouts.promote(
            session,
            settings=settings,
            model="fraud",
            version=version,
            environment="staging",
            actor=deployer,
            clock=clock,
        )
    model = registry.get_model(session, "fraud")
    env = environments.get(session, "staging")
    alert = alerts.fire(
        session,
        settings=settings,
        rule="drift",
        severity=Severity.critical,
        summary="drift on amount",
        details={},
        model_id=model.id,
        environment_id=env.id,
        pauses_promotions=True,
        clock=clock,
    )
    session.commit()
    before = snapshot(session)
    with pytest.raises(Conflict, match=f"paused by alert {alert.id}"):
        rollouts.promote(
            session,
            settings=settings,
            model="fraud",
            version="1.2.0",
            environment="staging",
            actor=deployer,
            clock=clock,
        )
    assert snapshot(session) == before
    back = rollouts.rollback(
        session,
        settings=settings,
        model="fraud",
        environment="staging",
        actor=deployer,
        reason="drift",
        clock=clock,
    )
    assert back.version == "1.0.0" and back.state == "active"
