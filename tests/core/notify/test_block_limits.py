"""Block Kit limits: the fake refuses what Slack refuses, every outbox message fits at maximum
length, and a message Slack refuses as invalid_blocks still arrives as plain text."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import Session

from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import Alert, AlertStatus, Severity
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.notify import blocks
from modeldeck.core.notify import service as notify
from modeldeck.core.notify.models import DrainReport, OutboxMessage, OutboxStatus
from modeldeck.core.rollouts.models import (
    Approval,
    Decision,
    Deployment,
    DeploymentKind,
    DeploymentState,
)
from tests.conftest import make_settings
from tests.core.alerts.world import live_deployment, outbox
from tests.utils.fake_slack import FakeSlack

NASTY = "<&>" * 700  # each character grows when escaped for mrkdwn (&lt; &amp; &gt;)
LONG_NAME = "m" + "-x" * 31 + "9"  # a 64-character slug
LONG_VERSION = "1." + "9" * 60 + "+b"  # a 64-character version


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _button(text: str = "Go", action_id: str = "a") -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id}


BROKEN: dict[str, list[dict[str, Any]]] = {
    "more than 50 blocks": [_section("x")] * 51,
    "section text over 3000": [_section("x" * 3001)],
    "more than 10 fields": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
    "field text over 2000": [
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}
    ],
    "button text over 75": [{"type": "actions", "elements": [_button("b" * 76)]}],
    "action_id over 255": [{"type": "actions", "elements": [_button(action_id="a" * 256)]}],
    "block_id over 255": [{**_section("x"), "block_id": "b" * 256}],
    "header text over 150": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
    "duplicate block_id": [
        {**_section("x"), "block_id": "same"},
        {**_section("y"), "block_id": "same"},
    ],
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_the_fake_refuses_blocks_that_break_slacks_limits(slack: FakeSlack, case: str) -> None:
    client = WebClient(token=slack.token, base_url=slack.url)
    with pytest.raises(SlackApiError) as refused:
        client.chat_postMessage(channel="C1", text="t", blocks=BROKEN[case])
    assert refused.value.response["error"] == "invalid_blocks"
    assert "json-pointer:/blocks" in refused.value.response["errors"][0]
    # at the limit is fine
    at_limit = [
        _section("x" * 3000),
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 150}},
    ]
    assert client.chat_postMessage(channel="C1", text="t", blocks=at_limit)["ok"]


@pytest.fixture
def long_settings(tmp_path: Path, slack: FakeSlack) -> Settings:
    """Everything a message shows at its maximum length, names included."""
    env = "e" + "-y" * 31 + "9"
    return make_settings(
        tmp_path,
        slack={"bot_token": slack.token, "api_url": slack.url, "alert_channel": "C0ALERTS"},
        clusters=[{"name": "c" * 64, "backend": "simulated", "gpu_model": "A100"}],
        environments=[{"name": env, "cluster": "c" * 64, "namespace": "n" * 63}],
        dashboard_url="https://dashboard.example.com/" + "p" * 200,
    )


def _longest_world(session: Session, settings: Settings, at: datetime) -> tuple[Alert, Deployment]:
    environments.sync(session, settings)
    env = settings.environments[0].name
    dep = live_deployment(session, model=LONG_NAME, version=LONG_VERSION, environment=env, at=at)
    dep.reason = NASTY[:2000]
    dep.requested_by = "slack:U" + "X" * 192
    dep.message = NASTY + "x" * (4000 - len(NASTY))
    session.add(dep)
    session.add_all(
        Approval(
            deployment_id=dep.id or 0,
            approver=f"slack:U{i:0>198}",
            decision=Decision.approve if i % 2 else Decision.reject,
            comment=NASTY[:2000],
            at=at,
        )
        for i in range(12)
    )
    rollback = Deployment(
        model_id=dep.model_id,
        environment_id=dep.environment_id,
        version_id=dep.version_id,
        kind=DeploymentKind.rollback,
        state=DeploymentState.failed,
        reason=NASTY[:2000],
        requested_by="u" * 200,
        message=NASTY[:4000],
        started_at=at + timedelta(minutes=1),
    )
    session.add(rollback)
    session.commit()
    details: dict[str, Any] = {f"{'k' * 90}{i}": NASTY for i in range(30)}
    details["top_features"] = [NASTY] * 50
    details["score"] = 1.23456789e300
    alert = alerts.fire(
        session,
        settings=settings,
        rule="r" * 100,
        severity=Severity.critical,
        summary=NASTY[:2000],
        details=details,
        model_id=dep.model_id,
        version_id=dep.version_id,
        environment_id=dep.environment_id,
        key="k" * 200,
        clock=lambda: at,
    )
    return alert, dep


def _variants(session: Session, alert: Alert, dep: Deployment) -> list[OutboxMessage]:
    """Every message the outbox renders, in every state that changes what it shows."""
    messages = []
    for status in (AlertStatus.firing, AlertStatus.snoozed, AlertStatus.resolved):
        alert.status = status
        alert.snoozed_by = alert.resolved_by = "slack:U" + "Z" * 192
        alert.snoozed_until = alert.resolved_at = alert.last_seen
        alert.count = 10**9
        session.add(alert)
        session.commit()
        for kind in ("alert", "alert_update", "alert_resolved"):
            messages.append(
                OutboxMessage(channel="slack", kind=kind, payload={"alert_id": alert.id})
            )
    for state in (
        DeploymentState.awaiting_approval,
        DeploymentState.active,
        DeploymentState.failed,
    ):
        for kind in (DeploymentKind.promote, DeploymentKind.rollback):
            dep.state, dep.kind = state, kind
            session.add(dep)
            session.commit()
            for message_kind in ("approval_request", "deployment_update"):
                payload = {"deployment_id": dep.id}
                messages.append(OutboxMessage(channel="slack", kind=message_kind, payload=payload))
    messages.append(OutboxMessage(channel="slack", kind="text", payload={"text": NASTY * 10}))
    return messages


def test_every_outbox_message_at_maximum_length_is_accepted_by_slack(
    session: Session, long_settings: Settings, clock: FixedClock, slack: FakeSlack
) -> None:
    alert, dep = _longest_world(session, long_settings, clock() - timedelta(days=1))
    client = WebClient(token=slack.token, base_url=slack.url)
    variants = _variants(session, alert, dep)
    for message in variants:
        snapshot = {"status": alert.status, "state": dep.state, "kind": dep.kind}
        rendered = blocks.render(session, long_settings, message)
        response = client.chat_postMessage(channel="C1", **rendered)
        assert response["ok"], (message.kind, snapshot)
    assert len(slack.calls_to("chat.postMessage", ok_only=True)) == len(variants) == 22


# --- invalid_blocks: send it again as plain text -----------------------------------------------


def _fire(session: Session, settings: Settings, clock: FixedClock, dep: Deployment) -> Alert:
    return alerts.fire(
        session,
        settings=settings,
        rule="quality",
        severity=Severity.critical,
        summary="country 38% missing",
        details={"metric": "missing share"},
        model_id=dep.model_id,
        version_id=dep.version_id,
        environment_id=dep.environment_id,
        clock=clock,
    )


def test_invalid_blocks_posts_the_alert_again_as_plain_text_with_the_dashboard_link(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, slack: FakeSlack
) -> None:
    alert = _fire(session, settings, clock, dep)
    slack.fail_next("chat.postMessage", "invalid_blocks")
    assert notify.drain(session, settings=settings, clock=clock) == DrainReport(sent=1)
    refused, plain = slack.calls_to("chat.postMessage")
    assert refused.args["blocks"] and refused.response["error"] == "invalid_blocks"
    assert "blocks" not in plain.args and plain.response["ok"]
    assert plain.args["text"] == (
        "[firing] critical: quality on fraud (production) — country 38% missing\n"
        f"<http://127.0.0.1:8501/alerts?alert={alert.id}|Open dashboard>"
    )
    session.refresh(alert)
    assert alert.slack_ts == plain.response["ts"]  # a resolve will edit this message
    [message] = outbox(session)
    assert message.status == OutboxStatus.sent and message.error is None


def test_invalid_blocks_on_an_update_replaces_the_old_blocks_with_plain_text(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, slack: FakeSlack
) -> None:
    alert = _fire(session, settings, clock, dep)
    notify.drain(session, settings=settings, clock=clock)
    alerts.resolve(
        session,
        settings=settings,
        rule="quality",
        model_id=dep.model_id,
        version_id=dep.version_id,
        environment_id=dep.environment_id,
        clock=clock,
    )
    slack.fail_next("chat.update", "invalid_blocks")
    assert notify.drain(session, settings=settings, clock=clock) == DrainReport(sent=1)
    session.refresh(alert)
    assert alert.slack_ts is not None
    posted = slack.message("C0ALERTS", alert.slack_ts)
    assert posted.blocks == [] and posted.text.startswith("[resolved] critical: quality")
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_invalid_blocks_is_retried_once_only(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, slack: FakeSlack
) -> None:
    _fire(session, settings, clock, dep)
    slack.fail_next("chat.postMessage", "invalid_blocks", times=2)
    assert notify.drain(session, settings=settings, clock=clock) == DrainReport(dead=1)
    assert len(slack.calls_to("chat.postMessage")) == 2
    assert outbox(session)[0].error == "Slack refused chat_postMessage: invalid_blocks"
