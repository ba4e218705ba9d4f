"""The outbox through long outages and rate limits, dead letters (alert, /metrics, CLI)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import Alert, AlertStatus, Severity
from modeldeck.core.api.app import create_app
from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.auth.models import Actor
from modeldeck.core.cli.main import app as cli_app
from modeldeck.core.clock import FixedClock, as_utc
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.errors import Forbidden, InvalidInput, NotFound
from modeldeck.core.notify import admin as outbox_admin
from modeldeck.core.notify import service as notify
from modeldeck.core.notify.models import DrainReport, OutboxStatus
from modeldeck.core.rollouts.models import Deployment
from tests.conftest import make_settings
from tests.core.alerts.world import live_deployment, outbox, snapshot
from tests.core.notify.conftest import Receiver
from tests.utils.fake_slack import FakeSlack


def _fire(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, rule: str = "drift"
) -> Alert:
    return alerts.fire(
        session,
        settings=settings,
        rule=rule,
        severity=Severity.critical,
        summary=f"{rule} in fraud",
        details={"metric": "share"},
        model_id=dep.model_id,
        version_id=dep.version_id,
        environment_id=dep.environment_id,
        clock=clock,
    )


def _drain(session: Session, settings: Settings, clock: FixedClock) -> DrainReport:
    return notify.drain(session, settings=settings, clock=clock)


# --- a long outage ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["refuse", "error"])
def test_with_the_default_settings_an_alert_survives_a_day_long_slack_outage(
    tmp_path: Path,
    session: Session,
    clock: FixedClock,
    dep: Deployment,
    slack: FakeSlack,
    mode: str,
) -> None:
    """The defaults (20 attempts, backoff capped at 30 min) used to dead-letter after ~5.7 h."""
    settings = make_settings(
        tmp_path,
        slack={"bot_token": slack.token, "api_url": slack.url, "alert_channel": "C0ALERTS"},
    )
    assert settings.notify.give_up_after_hours == 72
    _fire(session, settings, clock, dep)
    slack.go_down(mode)
    start = clock()
    while clock() - start < timedelta(hours=30):
        assert _drain(session, settings, clock).dead == 0
        [message] = outbox(session)
        clock.now = as_utc(message.next_attempt_at)
    [message] = outbox(session)
    assert message.status == OutboxStatus.pending and message.attempts > 60
    gap = as_utc(message.next_attempt_at) - as_utc(message.last_attempt_at or start)
    assert gap == timedelta(seconds=1800)  # the backoff is capped, not the period
    slack.come_back()
    assert _drain(session, settings, clock) == DrainReport(sent=1)
    assert len(slack.calls_to("chat.postMessage", ok_only=True)) == 1


def test_after_give_up_after_hours_of_outage_the_message_is_dead_with_the_reason(
    tmp_path: Path, session: Session, clock: FixedClock, dep: Deployment, slack: FakeSlack
) -> None:
    settings = make_settings(
        tmp_path,
        slack={"bot_token": slack.token, "api_url": slack.url, "alert_channel": "C0ALERTS"},
        notify={"give_up_after_hours": 2, "max_attempts": 3, "max_backoff_seconds": 600},
    )
    _fire(session, settings, clock, dep)
    slack.go_down("error")
    start, reports = clock(), []
    while not (reports and reports[-1].dead):
        reports.append(_drain(session, settings, clock))
        clock.now = as_utc(outbox(session)[0].next_attempt_at)
    message = outbox(session)[0]
    assert message.status == OutboxStatus.dead and message.attempts > 3  # not max_attempts
    assert as_utc(message.last_attempt_at or start) - start >= timedelta(hours=2)
    assert message.error is not None
    assert message.error.startswith("gave up after 2.") and "HTTP 500" in message.error


# --- Retry-After holds the channel ----------------------------------------------------------


def test_a_429_holds_the_whole_channel_until_retry_after(
    any_engine: Engine, settings: Settings, clock: FixedClock, slack: FakeSlack
) -> None:
    session = Session(any_engine, expire_on_commit=False)
    environments.sync(session, settings)
    dep = live_deployment(session, at=clock() - timedelta(days=1))
    _fire(session, settings, clock, dep, rule="drift")
    _fire(session, settings, clock, dep, rule="quality")
    slack.rate_limit(retry_after=30, times=1)
    assert _drain(session, settings, clock) == DrainReport(retried=1)  # the other is held
    assert len(slack.calls) == 1
    for _ in range(5):  # the drain job runs every 5 s: nobody calls Slack before 30 s
        clock.advance(seconds=5)
        assert _drain(session, settings, clock) == DrainReport()
    clock.advance(seconds=4)
    assert _drain(session, settings, clock) == DrainReport()
    assert len(slack.calls) == 1
    clock.advance(seconds=1)
    assert _drain(session, settings, clock) == DrainReport(sent=2)
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 200, 200]
    assert _drain(session, settings, clock) == DrainReport()
    session.close()


# --- dead letters: the alert ------------------------------------------------------------------


def _hook_settings(tmp_path: Path, slack: FakeSlack, receiver: Receiver) -> Settings:
    return make_settings(
        tmp_path,
        slack={"bot_token": slack.token, "api_url": slack.url, "alert_channel": "C0ALERTS"},
        notify={"webhooks": [{"name": "pager", "url": receiver.url}]},
    )


def test_a_dead_letter_raises_one_alert_told_on_the_other_channels(
    tmp_path: Path,
    session: Session,
    clock: FixedClock,
    dep: Deployment,
    slack: FakeSlack,
    receiver: Receiver,
    admin: Actor,
) -> None:
    settings = _hook_settings(tmp_path, slack, receiver)
    _fire(session, settings, clock, dep, rule="drift")
    _fire(session, settings, clock, dep, rule="quality")
    slack.fail_next("chat.postMessage", "channel_not_found", times=2)
    assert _drain(session, settings, clock) == DrainReport(sent=2, dead=2)
    [dead_alert] = session.exec(select(Alert).where(Alert.rule == "notification_dead")).all()
    assert dead_alert.status == AlertStatus.firing and dead_alert.count == 2  # deduplicated
    assert dead_alert.key == "slack" and dead_alert.details["value"] == 2
    assert "channel_not_found" in dead_alert.summary
    told = [m for m in outbox(session) if m.payload.get("alert_id") == dead_alert.id]
    assert [m.channel for m in told] == ["webhook:pager"]  # not the channel that refuses
    assert _drain(session, settings, clock) == DrainReport(sent=1)
    assert receiver.requests[-1]["body"]["alert"]["rule"] == "notification_dead"

    # fixed: requeue both; once Slack has delivered them and nothing is dead, it resolves
    ids = outbox_admin.requeue(session, actor=admin, all_dead=True, clock=clock)
    assert len(ids) == 2
    assert _drain(session, settings, clock) == DrainReport(sent=2)
    session.refresh(dead_alert)
    assert dead_alert.status == AlertStatus.resolved
    assert _drain(session, settings, clock) == DrainReport(sent=1)  # the all-clear, by webhook
    assert receiver.requests[-1]["body"]["kind"] == "alert_resolved"
    assert not [c for c in slack.calls if "notification_dead" in str(c.args.get("text"))]


def test_a_dead_letter_without_other_channels_is_told_on_its_own_channel_once(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, slack: FakeSlack
) -> None:
    _fire(session, settings, clock, dep)
    slack.fail_next("chat.postMessage", "not_in_channel", times=2)
    assert _drain(session, settings, clock) == DrainReport(dead=1)
    # the alert about it is refused as well: it goes dead without raising another one
    assert _drain(session, settings, clock) == DrainReport(dead=1)
    assert _drain(session, settings, clock) == DrainReport()
    [dead_alert] = session.exec(select(Alert).where(Alert.rule == "notification_dead")).all()
    assert dead_alert.count == 1
    assert [m.status for m in outbox(session)] == [OutboxStatus.dead, OutboxStatus.dead]


# --- dead letters: /metrics -------------------------------------------------------------------


def test_metrics_count_pending_and_dead_messages_per_channel(
    settings: Settings,
    engine: Engine,
    session: Session,
    clock: FixedClock,
    dep: Deployment,
    slack: FakeSlack,
) -> None:
    _fire(session, settings, clock, dep, rule="drift")
    _fire(session, settings, clock, dep, rule="quality")
    slack.fail_next("chat.postMessage", "channel_not_found", times=3)
    _drain(session, settings, clock)  # two dead, and the alert about them waits
    with TestClient(create_app(settings, engine=engine, clock=clock)) as api:
        text = api.get("/metrics").text
    assert 'modeldeck_outbox_messages{channel="slack",status="dead"} 2.0' in text
    assert 'modeldeck_outbox_messages{channel="slack",status="pending"} 1.0' in text


# --- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path, settings: Settings) -> Path:
    path = tmp_path / "modeldeck.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database_url": settings.database_url,
                "clusters": [c.model_dump(mode="json") for c in settings.clusters],
                "environments": [e.model_dump(mode="json") for e in settings.environments],
            }
        )
    )
    return path


def _cli(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app, ["--config", str(config), *args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_cli_lists_waiting_and_dead_messages_and_requeues_them(
    config_file: Path,
    session: Session,
    settings: Settings,
    clock: FixedClock,
    dep: Deployment,
    slack: FakeSlack,
) -> None:
    alert = _fire(session, settings, clock, dep)
    slack.fail_next("chat.postMessage", "channel_not_found")
    _drain(session, settings, clock)
    dead, waiting = outbox(session)
    code, out, err = _cli(config_file, "--json", "outbox")
    assert code == 0, err
    listed = json.loads(out)
    assert [(m["id"], m["status"]) for m in listed] == [(dead.id, "dead"), (waiting.id, "pending")]
    assert listed[0]["error"] == "Slack refused chat_postMessage: channel_not_found"
    assert listed[0]["about"] == f"alert {alert.id}"
    code, out, _ = _cli(config_file, "outbox", "--status", "dead")
    assert code == 0 and "channel_not_found" in out and "pending" not in out

    code, out, err = _cli(config_file, "outbox", "requeue", str(dead.id))
    assert code == 0, err
    assert f"requeued 1 message(s): {dead.id}" in out
    assert outbox(session)[0].status == OutboxStatus.pending
    [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "outbox.requeue")).all()
    assert event.after == {"message_ids": [dead.id]} and event.via == "cli"
    code, out, _ = _cli(config_file, "outbox", "requeue", "--all-dead")
    assert code == 0 and "no dead message to requeue" in out


def test_cli_requeue_refusals_change_nothing(
    config_file: Path,
    session: Session,
    settings: Settings,
    clock: FixedClock,
    dep: Deployment,
    slack: FakeSlack,
) -> None:
    _fire(session, settings, clock, dep)
    slack.fail_next("chat.postMessage", "channel_not_found")
    _drain(session, settings, clock)
    dead, waiting = outbox(session)
    before = snapshot(session)
    code, _, err = _cli(config_file, "outbox", "requeue")
    assert code == 2 and "name the messages to requeue" in err
    code, _, err = _cli(config_file, "outbox", "requeue", str(dead.id), "--all-dead")
    assert code == 2 and "not both or neither" in err
    code, _, err = _cli(config_file, "outbox", "requeue", str(dead.id), "424242")
    assert code == 1 and "no outbox message with id 424242" in err
    code, _, err = _cli(config_file, "outbox", "requeue", str(dead.id), str(waiting.id))
    assert code == 1 and f"outbox message {waiting.id} is pending, not dead" in err
    code, _, err = _cli(config_file, "outbox", "requeue", "x")
    assert code == 2
    code, _, err = _cli(config_file, "outbox", "--status", "bogus")
    assert code == 2
    assert snapshot(session) == before


def test_requeue_needs_the_admin_role_and_names_what_it_refuses(
    session: Session, clock: FixedClock, deployer: Actor, admin: Actor
) -> None:
    before = snapshot(session)
    with pytest.raises(Forbidden, match="requeue notifications needs the admin role"):
        outbox_admin.requeue(session, actor=deployer, all_dead=True, clock=clock)
    with pytest.raises(InvalidInput, match="not both or neither"):
        outbox_admin.requeue(session, actor=admin, clock=clock)
    with pytest.raises(NotFound, match="no outbox message with id 7"):
        outbox_admin.requeue(session, actor=admin, message_ids=[7], clock=clock)
    assert snapshot(session) == before
