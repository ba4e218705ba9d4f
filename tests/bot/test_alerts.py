"""Alerts in Slack: delivered from the outbox with buttons, updated in place, and delivered
exactly once after Slack was down or rate limiting."""

from __future__ import annotations

import time

from sqlmodel import col, select

from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import Alert, AlertStatus
from modeldeck.core.clock import FixedClock, utcnow
from modeldeck.core.notify.actions import ActionId
from modeldeck.core.notify.models import OutboxMessage, OutboxStatus
from modeldeck.core.rollouts.models import Deployment, DeploymentKind, DeploymentState
from tests.bot.conftest import ALERTS, DEPLOYER, RANDOM, VIEWER, Bot, drain, fire_alert
from tests.bot.slack import has_button
from tests.bot.test_approvals import click, posted, text_of
from tests.utils.servers import wait_until


def alert_row(bot: Bot, alert_id: int) -> Alert:
    with bot.session() as session:
        row = session.get(Alert, alert_id)
        assert row is not None
        return row


def rollbacks(bot: Bot) -> list[Deployment]:
    with bot.session() as session:
        return list(
            session.exec(
                select(Deployment)
                .where(Deployment.kind == DeploymentKind.rollback)
                .order_by(col(Deployment.id))
            ).all()
        )


def test_an_alert_explains_itself_and_offers_buttons(bot: Bot) -> None:
    alert_id = fire_alert(bot)
    drain(bot)
    message = posted(bot, ALERTS, f"alert #{alert_id}")
    text = text_of(message)
    assert ":rotating_light: CRITICAL: drift on fraud-detector (production)" in text
    assert "input drift on fraud-detector 1.1.0" in text
    for fact in (
        "*metric*: share of drifted columns",
        "*value*: 0.4",
        "*threshold*: 0.3",
        "*window*: 1h",
        "*drifted columns*: amount, merchant, country",
    ):
        assert fact in text
    rollback = next(
        e
        for b in message.blocks or []
        for e in b.get("elements", [])
        if e.get("action_id") == ActionId.rollback
    )
    assert rollback["style"] == "danger" and rollback["value"] == str(alert_id)
    assert "Roll back *fraud-detector* in *production*" in rollback["confirm"]["text"]["text"]
    assert "Snooze 1h" in text
    assert f"https://dash.example.org/alerts?alert={alert_id}" in text


def test_snooze_button_updates_the_alert_message(bot: Bot) -> None:
    alert_id = fire_alert(bot)
    drain(bot)
    message = posted(bot, ALERTS, f"alert #{alert_id}")
    before = bot.snapshot()
    viewer = click(bot, message, ActionId.snooze_1h, VIEWER)
    assert "snooze alerts needs the deployer role" in viewer.text()
    assert bot.snapshot() == before

    click(bot, message, ActionId.snooze_1h, DEPLOYER)
    wait_until(lambda: bot.fake.message(ALERTS, message.ts).updates >= 1, what="redrawn")
    text = text_of(bot.fake.message(ALERTS, message.ts))
    assert ":zzz: snoozed until" in text and "by <@U0CAROL>" in text
    assert "Snooze 1h" not in text and ActionId.rollback in text
    row = alert_row(bot, alert_id)
    assert row.status == AlertStatus.snoozed and row.snoozed_by == "slack:U0CAROL"


def test_roll_back_button_rechecks_role_channel_and_state(bot: Bot) -> None:
    alert_id = fire_alert(bot)
    drain(bot)
    message = posted(bot, ALERTS, f"alert #{alert_id}")
    before = bot.snapshot()
    viewer = click(bot, message, ActionId.rollback, VIEWER)
    assert "roll back models needs the deployer role" in viewer.text()
    elsewhere = bot.slack.click(
        ActionId.rollback, str(alert_id), user=DEPLOYER, channel=RANDOM, message_ts=message.ts
    )
    assert "production can only be changed from its bound Slack channels" in elsewhere.text()
    assert bot.snapshot() == before

    done = click(bot, message, ActionId.rollback, DEPLOYER)
    assert done.reply().args["response_type"] == "ephemeral"  # the channel sees the alert
    assert "Roll back fraud-detector in production to 1.0.0" in done.text()
    [rollback] = rollbacks(bot)
    assert rollback.state == DeploymentState.active
    assert rollback.requested_by == "slack:U0CAROL"
    assert rollback.reason.startswith(f"alert #{alert_id}: input drift")

    # The same button again: 1.1.0 no longer runs, so nothing is rolled back further.
    again = click(bot, message, ActionId.rollback, DEPLOYER)
    assert "fraud-detector 1.1.0 is no longer active in production (1.0.0 is)" in again.text()
    assert len(rollbacks(bot)) == 1


def test_a_resolved_alert_updates_its_message_and_its_buttons_go_stale(bot: Bot) -> None:
    alert_id = fire_alert(bot)
    drain(bot)
    message = posted(bot, ALERTS, f"alert #{alert_id}")
    row = alert_row(bot, alert_id)
    with bot.session() as session:
        alerts.resolve(
            session,
            settings=bot.settings,
            rule="drift",
            model_id=row.model_id,
            version_id=row.version_id,
            environment_id=row.environment_id,
        )
    drain(bot)
    current = bot.fake.message(ALERTS, message.ts)
    assert current.updates == 1
    text = text_of(current)
    assert ":white_check_mark: resolved" in text
    assert ActionId.rollback not in text and "Snooze 1h" not in text
    assert len([m for m in bot.fake.messages if f"alert #{alert_id}" in text_of(m)]) == 1

    before = bot.snapshot()
    stale = click(bot, message, ActionId.rollback, DEPLOYER)
    assert f"alert #{alert_id} is resolved; nothing was rolled back" in stale.text()
    assert bot.snapshot() == before


def alert_posts(bot: Bot, alert_id: int) -> list[object]:
    """Posts of the alert itself (its footer), not messages quoting it (a rollback reason)."""
    return [
        c
        for c in bot.fake.calls_to("chat.postMessage", ok_only=True)
        if f"alert #{alert_id} · " in str(c.args.get("blocks"))
    ]


def outbox_of(bot: Bot, alert_id: int) -> OutboxMessage:
    with bot.session() as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "alert")).all()
    return next(m for m in rows if m.payload.get("alert_id") == alert_id)


def test_slack_down_when_an_alert_is_due_delivers_it_later_once(bot: Bot) -> None:
    clock = FixedClock(utcnow())
    drain(bot, clock)  # what the seeded world queued: only the alert is due below
    alert_id = fire_alert(bot, clock=clock)
    bot.fake.go_down("error")
    assert drain(bot, clock).retried >= 1
    assert alert_posts(bot, alert_id) == []
    assert outbox_of(bot, alert_id).status == OutboxStatus.pending
    bot.fake.come_back()
    clock.advance(seconds=1)
    assert drain(bot, clock).sent == 0  # still backing off
    clock.advance(minutes=31)
    drain(bot, clock)
    clock.advance(hours=1)
    drain(bot, clock)
    assert len(alert_posts(bot, alert_id)) == 1
    assert outbox_of(bot, alert_id).status == OutboxStatus.sent


def test_rate_limited_when_an_alert_is_due_honours_retry_after_and_delivers_once(bot: Bot) -> None:
    clock = FixedClock(utcnow())
    drain(bot, clock)
    alert_id = fire_alert(bot, clock=clock)
    bot.fake.rate_limit(retry_after=30, times=1)
    drain(bot, clock)
    assert alert_posts(bot, alert_id) == []
    pending = outbox_of(bot, alert_id)
    assert "retry after 30s" in (pending.error or "")
    clock.advance(seconds=20)
    drain(bot, clock)
    assert alert_posts(bot, alert_id) == []  # Retry-After not over yet: not even tried
    clock.advance(seconds=11)
    drain(bot, clock)
    clock.advance(minutes=5)
    drain(bot, clock)
    assert len(alert_posts(bot, alert_id)) == 1
    assert outbox_of(bot, alert_id).status == OutboxStatus.sent


def test_roll_back_redraws_the_alert_in_place(bot: Bot) -> None:
    """No second message and no live Roll back button: the alert itself says who rolled
    back, right after the click and again when the outbox delivers the alert_update."""
    alert_id = fire_alert(bot)
    drain(bot)
    message = posted(bot, ALERTS, f"alert #{alert_id}")
    done = click(bot, message, ActionId.rollback, DEPLOYER)
    done.reply()
    [rollback] = rollbacks(bot)
    wait_until(lambda: bot.fake.message(ALERTS, message.ts).updates >= 1, what="redrawn")
    redrawn = bot.fake.message(ALERTS, message.ts)
    text = text_of(redrawn)
    assert f"rollback #{rollback.id} to `1.0.0` by <@U0CAROL>" in text
    assert not has_button(redrawn.blocks, ActionId.rollback)
    assert has_button(redrawn.blocks, ActionId.snooze_1h)  # still firing: it can be snoozed
    updates = redrawn.updates
    drain(bot)  # the durable path: an alert_update edits the same message
    again = bot.fake.message(ALERTS, message.ts)
    assert again.updates == updates + 1
    assert f"rollback #{rollback.id}" in text_of(again)
    assert len(alert_posts(bot, alert_id)) == 1  # never posted twice


def test_snooze_by_command_redraws_the_alert_and_answers_plainly(bot: Bot) -> None:
    alert_id = fire_alert(bot)
    drain(bot)
    message = posted(bot, ALERTS, f"alert #{alert_id}")
    sent = bot.slack.command(f"snooze {alert_id} 2h", user=DEPLOYER, channel=RANDOM)
    reply = sent.reply()
    assert reply.args["response_type"] == "in_channel"
    assert f"<@U0CAROL> snoozed alert *#{alert_id}*" in sent.text()
    assert not any(
        b["type"] == "actions" for b in reply.args.get("blocks") or []
    )  # no live buttons in the answer
    drain(bot)
    redrawn = bot.fake.message(ALERTS, message.ts)
    assert redrawn.updates == 1
    text = text_of(redrawn)
    assert ":zzz: snoozed until" in text and "by <@U0CAROL>" in text
    assert not has_button(redrawn.blocks, ActionId.snooze_1h)
    assert len(alert_posts(bot, alert_id)) == 1


def test_open_dashboard_clicks_are_audited(bot: Bot) -> None:
    alert_id = fire_alert(bot)
    drain(bot)
    message = posted(bot, ALERTS, f"alert #{alert_id}")
    url = f"https://dash.example.org/alerts?alert={alert_id}"
    sent = bot.slack.click(
        ActionId.open_dashboard, "", user=VIEWER, channel=ALERTS, message_ts=message.ts, url=url
    )
    assert sent.status == 200
    [event] = wait_until(
        lambda: [e for e in bot.audit("slack.action") if e.request_id == sent.trigger_id],
        what="the click in the audit log",
    )
    assert event.actor == "slack:U0DAVE" and event.via == "slack"
    assert event.after is not None
    assert event.after["action_id"] == ActionId.open_dashboard
    assert event.after["url"] == url and event.after["outcome"] == "ok"
    assert sent.replies() == []  # nothing to answer: the browser opened the page


def test_a_long_retry_after_fails_the_redraw_instead_of_holding_a_worker(bot: Bot) -> None:
    """A 429 with Retry-After 60 s is not slept on (a lazy worker would be gone for minutes):
    the click is done at once, the redraw is given up; a short Retry-After is still waited."""
    alert_id = fire_alert(bot)
    drain(bot)
    message = posted(bot, ALERTS, f"alert #{alert_id}")
    updates = bot.fake.message(ALERTS, message.ts).updates
    earlier = len(bot.fake.calls_to("chat.update"))
    bot.fake.rate_limit(retry_after=60, method="chat.update")  # every chat.update, for now
    start = time.monotonic()
    sent = click(bot, message, ActionId.snooze_1h, DEPLOYER)
    [event] = wait_until(
        lambda: [e for e in bot.audit("slack.action") if e.request_id == sent.trigger_id],
        timeout=20,
        what="the click done (its audit event)",
    )
    assert time.monotonic() - start < 20  # generous; the old handler slept 2 × 60 s
    assert event.after is not None and event.after["outcome"] == "ok"
    assert alert_row(bot, alert_id).status == AlertStatus.snoozed  # the snooze itself happened
    refused = bot.fake.calls_to("chat.update")[earlier:]
    assert [c.status for c in refused] == [429]  # tried once, not retried after 60 s
    assert bot.fake.message(ALERTS, message.ts).updates == updates

    bot.fake.rate_limit(retry_after=1, times=1, method="chat.update")
    click(bot, message, ActionId.snooze_1h, DEPLOYER)  # snoozing again is allowed
    wait_until(
        lambda: bot.fake.message(ALERTS, message.ts).updates == updates + 1, what="the redraw"
    )
    assert [c.status for c in bot.fake.calls_to("chat.update")[earlier:]] == [429, 429, 200]
