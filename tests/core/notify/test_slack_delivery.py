"""Outbox → Slack over real HTTP (fake Web API): post, update, outages, 429, dead letters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session

from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import Alert, Severity
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.clock import FixedClock, as_utc
from modeldeck.core.config import Settings
from modeldeck.core.errors import InvalidInput
from modeldeck.core.notify import admin as admin_service
from modeldeck.core.notify import service as notify
from modeldeck.core.notify.models import DrainReport, OutboxStatus
from modeldeck.core.rollouts.models import Deployment, DeploymentState
from tests.core.alerts.world import outbox, snapshot
from tests.utils.fake_slack import FakeSlack


def _fire(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, rule: str = "gpu_idle"
) -> Alert:
    return alerts.fire(
        session,
        settings=settings,
        rule=rule,
        severity=Severity.warning,
        summary="GPU 0 idle for 6 h on gpu-a100",
        details={"metric": "gpu_util"},
        model_id=dep.model_id,
        version_id=dep.version_id,
        environment_id=dep.environment_id,
        clock=clock,
    )


def _drain(session: Session, settings: Settings, clock: FixedClock) -> DrainReport:
    return notify.drain(session, settings=settings, clock=clock)


def _resolve(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, rule: str = "gpu_idle"
) -> None:
    alerts.resolve(
        session,
        settings=settings,
        rule=rule,
        model_id=dep.model_id,
        version_id=dep.version_id,
        environment_id=dep.environment_id,
        clock=clock,
    )


def test_alert_is_posted_then_resolve_updates_the_same_message(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, slack: FakeSlack
) -> None:
    alert = _fire(session, settings, clock, dep)
    assert _drain(session, settings, clock) == DrainReport(sent=1)
    session.refresh(alert)
    assert alert.slack_channel == "C0ALERTS" and alert.slack_ts
    [post] = slack.calls_to("chat.postMessage")
    assert post.token == slack.token and post.args["channel"] == "C0ALERTS"
    assert "GPU 0 idle for 6 h" in post.args["text"] and post.args["blocks"]

    clock.advance(minutes=20)
    _resolve(session, settings, clock, dep)
    assert _drain(session, settings, clock) == DrainReport(sent=1)
    [update] = slack.calls_to("chat.update")
    assert update.args["ts"] == alert.slack_ts and update.args["channel"] == "C0ALERTS"
    posted = slack.message("C0ALERTS", alert.slack_ts)
    assert posted.updates == 1 and posted.text.startswith("[resolved]")
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert [m.status for m in outbox(session)] == [OutboxStatus.sent, OutboxStatus.sent]


@pytest.mark.parametrize("mode", ["refuse", "error"])
def test_slack_down_retries_with_backoff_and_delivers_exactly_once_after(
    session: Session,
    settings: Settings,
    clock: FixedClock,
    dep: Deployment,
    slack: FakeSlack,
    mode: str,
) -> None:
    _fire(session, settings, clock, dep)
    _fire(session, settings, clock, dep, rule="second")
    slack.go_down(mode)

    assert _drain(session, settings, clock) == DrainReport(retried=1, deferred=1)
    first, second = outbox(session)
    assert first.status == OutboxStatus.pending and first.attempts == 1
    assert as_utc(first.next_attempt_at) == clock() + timedelta(seconds=5)
    assert ("unreachable" if mode == "refuse" else "HTTP 500") in (first.error or "")
    assert second.attempts == 0  # the channel was down: no attempt spent on it

    clock.advance(seconds=5)
    assert _drain(session, settings, clock) == DrainReport(retried=1, deferred=1)
    clock.advance(seconds=4)
    # The first backs off (10 s after its second try); the second gets its first try.
    assert _drain(session, settings, clock) == DrainReport(retried=1)
    first, second = outbox(session)
    assert (first.attempts, second.attempts) == (2, 1)
    assert as_utc(first.next_attempt_at) == clock() + timedelta(seconds=6)

    slack.come_back()
    clock.advance(seconds=10)
    assert _drain(session, settings, clock) == DrainReport(sent=2)
    assert _drain(session, settings, clock) == DrainReport()
    assert len(slack.calls_to("chat.postMessage", ok_only=True)) == 2
    assert sorted(m.text.split(" — ")[0] for m in slack.messages) == [
        "[firing] warning: gpu_idle on fraud (production)",
        "[firing] warning: second on fraud (production)",
    ]
    assert all(m.status == OutboxStatus.sent and m.error is None for m in outbox(session))


def test_rate_limit_honours_retry_after_without_spending_attempts(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, slack: FakeSlack
) -> None:
    _fire(session, settings, clock, dep)
    slack.rate_limit(retry_after=30, times=1)
    assert _drain(session, settings, clock) == DrainReport(retried=1)
    [message] = outbox(session)
    assert message.attempts == 0 and "retry after 30s" in (message.error or "")
    assert as_utc(message.next_attempt_at) == clock() + timedelta(seconds=30)
    clock.advance(seconds=29)
    assert _drain(session, settings, clock) == DrainReport()
    clock.advance(seconds=1)
    assert _drain(session, settings, clock) == DrainReport(sent=1)
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 200]


def test_resolve_waits_for_the_post_it_edits(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, slack: FakeSlack
) -> None:
    _fire(session, settings, clock, dep)
    slack.go_down("error")
    _drain(session, settings, clock)
    clock.advance(seconds=2)
    _resolve(session, settings, clock, dep)  # queued while the post is still undelivered
    slack.come_back()
    assert _drain(session, settings, clock) == DrainReport(deferred=1)  # post still backing off
    clock.advance(seconds=3)
    assert _drain(session, settings, clock) == DrainReport(sent=2)
    assert [c.method for c in slack.calls if c.status == 200] == ["chat.postMessage", "chat.update"]
    [posted] = slack.messages
    assert posted.text.startswith("[resolved]")


def test_permanent_errors_dead_letter_at_once_and_can_be_requeued(
    session: Session,
    settings: Settings,
    clock: FixedClock,
    dep: Deployment,
    slack: FakeSlack,
    admin: Actor,
) -> None:
    _fire(session, settings, clock, dep)
    slack.fail_next("chat.postMessage", "channel_not_found")
    assert _drain(session, settings, clock) == DrainReport(dead=1)
    message = outbox(session)[0]
    assert message.status == OutboxStatus.dead
    assert message.error == "Slack refused chat_postMessage: channel_not_found"
    assert message.id is not None
    assert admin_service.requeue(session, actor=admin, message_ids=[message.id], clock=clock) == [
        message.id
    ]
    clock.advance(seconds=1)
    assert _drain(session, settings, clock).sent >= 1
    assert outbox(session)[0].status == OutboxStatus.sent


def test_a_rendering_failure_counts_attempts_and_dead_letters_after_max_attempts(
    session: Session, settings: Settings, clock: FixedClock, slack: FakeSlack
) -> None:
    """Not an outage (our own bug, here an alert that no longer exists): max_attempts (5 in
    these settings) applies, not the long give-up period."""
    notify.enqueue(session, channel="slack", kind="alert", payload={"alert_id": 4242}, clock=clock)
    session.commit()
    outcomes = []
    for _ in range(5):
        outcomes.append(_drain(session, settings, clock))
        clock.advance(seconds=60)
    assert outcomes[-1].dead == 1
    assert all(o == DrainReport(retried=1) for o in outcomes[:-1])
    message = outbox(session)[0]
    assert message.status == OutboxStatus.dead and message.attempts == 5
    assert message.error == "NotFound: no alert with id 4242"
    assert _drain(session, settings, clock) == DrainReport(sent=1)
    # nothing about alert 4242 reached Slack; only the alert saying a notification was lost
    assert [c.args["text"].split(" — ")[0] for c in slack.calls_to("chat.postMessage")] == [
        "[firing] critical: notification_dead"
    ]


def test_unconfigured_slack_skips_instead_of_retrying(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, slack: FakeSlack
) -> None:
    bare = settings.model_copy(
        update={"slack": settings.slack.model_copy(update={"bot_token": None})}
    )
    _fire(session, bare, clock, dep)
    assert _drain(session, bare, clock) == DrainReport(skipped=1)
    [message] = outbox(session)
    assert message.status == OutboxStatus.skipped
    assert message.error == "Slack is not configured (no slack.bot_token)"
    assert _drain(session, bare, clock) == DrainReport()
    assert slack.calls == []


def test_update_of_a_deleted_message_posts_a_new_one(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, slack: FakeSlack
) -> None:
    alert = _fire(session, settings, clock, dep)
    _drain(session, settings, clock)
    slack.reset()  # someone deleted the channel's messages
    _resolve(session, settings, clock, dep)
    assert _drain(session, settings, clock) == DrainReport(sent=1)
    assert [c.response.get("error") for c in slack.calls_to("chat.update")] == ["message_not_found"]
    session.refresh(alert)
    [posted] = slack.messages
    assert posted.ts == alert.slack_ts and posted.text.startswith("[resolved]")


def test_snooze_edits_the_posted_alert(
    session: Session,
    settings: Settings,
    clock: FixedClock,
    dep: Deployment,
    slack: FakeSlack,
    deployer: Actor,
) -> None:
    alert = _fire(session, settings, clock, dep)
    _drain(session, settings, clock)
    assert alert.id is not None
    alerts.snooze(
        session,
        settings=settings,
        alert_id=alert.id,
        duration=timedelta(hours=2),
        actor=deployer,
        clock=clock,
    )
    assert _drain(session, settings, clock) == DrainReport(sent=1)
    [posted] = slack.messages
    assert posted.updates == 1 and posted.text.startswith("[snoozed]")


def test_approval_request_posts_and_updates_the_deployment_message(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, slack: FakeSlack
) -> None:
    dep.state = DeploymentState.awaiting_approval
    session.add(dep)
    session.commit()
    notify.enqueue(
        session,
        channel="slack",
        kind="approval_request",
        payload={"deployment_id": dep.id},
        clock=clock,
    )
    session.commit()
    assert _drain(session, settings, clock) == DrainReport(sent=1)
    session.refresh(dep)
    assert dep.slack_channel == "C0APPROVE" and dep.slack_ts
    dep.state = DeploymentState.active
    session.add(dep)
    notify.enqueue(
        session,
        channel="slack",
        kind="deployment_update",
        payload={"deployment_id": dep.id},
        clock=clock,
    )
    session.commit()
    assert _drain(session, settings, clock) == DrainReport(sent=1)
    [update] = slack.calls_to("chat.update")
    assert update.args["ts"] == dep.slack_ts
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_enqueue_joins_the_callers_transaction(
    session: Session, settings: Settings, clock: FixedClock
) -> None:
    notify.enqueue(session, channel="slack", kind="text", payload={"text": "hi"}, clock=clock)
    session.rollback()
    assert outbox(session) == []
    before = snapshot(session)
    with pytest.raises(InvalidInput, match="channel must be 1-64 characters"):
        notify.enqueue(session, channel="", kind="alert", payload={}, clock=clock)
    with pytest.raises(InvalidInput, match="kind must be 1-64 characters"):
        notify.enqueue(session, channel="slack", kind="x" * 65, payload={}, clock=clock)
    session.commit()
    assert snapshot(session) == before


def test_message_for_an_unknown_channel_is_skipped(
    session: Session, settings: Settings, clock: FixedClock
) -> None:
    notify.enqueue(
        session, channel="webhook:gone", kind="alert", payload={"text": "x"}, clock=clock
    )
    session.commit()
    assert _drain(session, settings, clock) == DrainReport(skipped=1)
    [message] = outbox(session)
    assert message.error == "no channel 'webhook:gone' is configured"


@pytest.mark.parametrize(
    ("approval_channel", "expected"), [("C0APPROVE", "C0APPROVE"), (None, "C0ORIGIN")]
)
def test_approval_request_goes_to_the_approval_channel_else_where_it_was_asked(
    session: Session,
    settings: Settings,
    clock: FixedClock,
    slack: FakeSlack,
    approval_channel: str | None,
    expected: str,
) -> None:
    from modeldeck.core.rollouts import service as rollouts
    from tests.core.rollouts.world import register

    settings.slack.approval_channel = approval_channel
    actor = Actor(name="slack:U1", role=Role.deployer, via="slack")
    register(session, actor, model="ranker", versions=("1.0.0",))
    rollouts.promote(
        session,
        settings=settings,
        model="ranker",
        version="1.0.0",
        environment="staging",
        actor=actor,
        clock=clock,
    )
    dep = rollouts.promote(
        session,
        settings=settings,
        model="ranker",
        version="1.0.0",
        environment="production",
        actor=actor,
        slack_channel="C0ORIGIN",
        clock=clock,
    )
    assert dep.state == "awaiting_approval"
    _drain(session, settings, clock)
    [post] = [c for c in slack.calls_to("chat.postMessage") if "Approve" in str(c.args)]
    assert post.args["channel"] == expected
