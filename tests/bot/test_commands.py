"""`/modeldeck …` end to end: signed HTTP in, replies at the fake Slack, rows in the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from modeldeck.core.alerts.models import Alert, AlertStatus
from modeldeck.core.clock import as_utc
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.notify.actions import ActionId
from modeldeck.core.notify.models import OutboxMessage
from modeldeck.core.rollouts.models import Deployment, DeploymentState
from tests.bot.conftest import (
    ADMIN,
    DEPLOYER,
    GROUPIE,
    NOBODY,
    OPS,
    RANDOM,
    VIEWER,
    Bot,
    deploy,
    fire_alert,
)
from tests.bot.slack import Sent, button
from tests.utils.servers import wait_until


def refused(bot: Bot, sent: Sent, before: dict[str, Any], *phrases: str) -> str:
    """The person gets a private, clear answer; nothing in the database changed; the attempt
    is in the audit log."""
    assert sent.status == 200
    text = sent.text()
    assert sent.reply().args["response_type"] == "ephemeral"
    for phrase in phrases:
        assert phrase in text, f"{phrase!r} not in {text[:600]}"
    assert bot.snapshot() == before
    [event] = wait_until(
        lambda: [e for e in bot.audit("slack.command") if e.request_id == sent.trigger_id],
        what="this command in the audit log",
    )
    assert event.after is not None and event.after["outcome"] == "refused"
    assert event.actor.startswith("slack:U0") and event.via == "slack"
    return text


def deployments(bot: Bot) -> list[Deployment]:
    with bot.session() as session:
        return list(session.exec(select(Deployment).order_by(col(Deployment.id))).all())


# --- reading ------------------------------------------------------------------------------


def test_help_lists_every_verb_with_an_example(bot: Bot) -> None:
    text = bot.slack.command("", user=NOBODY).text()
    for verb in (
        "models",
        "status",
        "versions",
        "promote",
        "rollback",
        "history",
        "drift",
        "alerts",
        "snooze",
        "whoami",
    ):
        assert f"/modeldeck {verb}" in text
    assert "e.g. `/modeldeck promote fraud-detector 1.4.0 to prod" in text


def test_models_and_status_and_versions_and_history(bot: Bot) -> None:
    models = bot.slack.command("models", user=VIEWER).text()
    assert "fraud-detector" in models and "production `1.1.0`" in models
    assert "churn-model" in models and "_not deployed_" in models

    status = bot.slack.command("status fraud-detector", user=VIEWER).text()
    assert "*production* `1.1.0`" in status and "*staging* `1.2.0`" in status
    assert "https://dash.example.org/model?model=fraud-detector" in status
    assert "<!date^" in status  # dates render in the reader's time zone

    versions = bot.slack.command("versions fraud-detector", user=VIEWER).text()
    assert "*1.3.0*" in versions and "*1.1.0* — running in production" in versions
    assert '"url": "https://dash.example.org/model?model=fraud-detector"' in versions
    assert "Open dashboard" in versions

    history = bot.slack.command("history fraud-detector in prod", user=VIEWER).text()
    assert "History of fraud-detector in production" in history
    assert "promote `1.1.0`" in history and "superseded" in history
    assert '"url": "https://dash.example.org/model?model=fraud-detector&env=production"' in history
    everywhere = bot.slack.command("history fraud-detector", user=VIEWER).text()
    assert '"url": "https://dash.example.org/model?model=fraud-detector"' in everywhere


def test_whoami_shows_role_from_user_or_group(bot: Bot) -> None:
    assert "role *admin*" in bot.slack.command("whoami", user=ADMIN).text()
    grouped = bot.slack.command("whoami", user=GROUPIE).text()
    assert "role *approver*" in grouped and "S0APPROVERS" in grouped
    assert "role *none*" in bot.slack.command("whoami", user=NOBODY).text()


def test_drift_shows_the_latest_check_per_environment(bot: Bot) -> None:
    prod = next(
        d for d in deployments(bot) if d.state == DeploymentState.active and d.environment_id == 2
    )
    now = datetime.now(UTC)
    with bot.session() as session:
        for hours, status, columns in (
            (2, CheckStatus.ok, {}),
            (
                1,
                CheckStatus.fail,
                {
                    "amount": {"drift_detected": True, "drift_score": 0.4},
                    "country": {"drift_detected": True, "drift_score": 0.9},
                    "age": {"drift_detected": False},
                },
            ),
        ):
            assert prod.id is not None
            session.add(
                CheckResult(
                    deployment_id=prod.id,
                    kind=CheckKind.drift,
                    window_start=now - timedelta(hours=hours + 1),
                    window_end=now - timedelta(hours=hours),
                    status=status,
                    score=0.67,
                    details={"columns": columns},
                    rows=5000,
                )
            )
        session.commit()
    text = bot.slack.command("drift fraud-detector prod", user=VIEWER).text()
    assert "*production* `1.1.0`" in text and "fail" in text
    drifted = text.split("drifted columns: ")[1].split('"')[0]
    assert sorted(drifted.split(", ")) == ["amount", "country"]
    assert "dash.example.org/drift?model=fraud-detector" in text
    empty = bot.slack.command("drift churn-model", user=VIEWER).text()
    assert "No drift check has run for churn-model yet" in empty


def test_alerts_lists_open_alerts(bot: Bot) -> None:
    assert "No open alerts" in bot.slack.command("alerts", user=VIEWER).text()
    alert_id = fire_alert(bot)
    text = bot.slack.command("alerts", user=VIEWER).text()
    assert f"*#{alert_id}* drift on fraud-detector (production)" in text
    assert '"url": "https://dash.example.org/alerts"' in text and "Open dashboard" in text


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, phrases",
    [
        ("frobnicate everything", ["I don't know the command `frobnicate`", "/modeldeck help"]),
        ("promte fraud-detector 1.3.0 to staging", ["did you mean `promote`"]),
        (
            "promote fraud-detector",
            ["`promote` needs a version", "/modeldeck promote MODEL VERSION to ENV"],
        ),
        ("rollback", ["`rollback` needs a model name", "rollback MODEL in ENV"]),
        ("snooze 12", ["`snooze` needs a duration", "2h"]),
        ("status fraud", ["no model named 'fraud'", "did you mean fraud-detector?"]),
        ("promote fraud-detector 9.9.9 to staging", ["has no version '9.9.9'", "latest: 1.3.0"]),
        (
            "promote fraud-detector 1.3.0 to moon",
            ["no environment named 'moon'", "known: production, staging"],
        ),
        ("history fraud-detector in moon", ["no environment named 'moon'"]),
        ("snooze 4242 2h", ["no alert with id 4242", "`/modeldeck alerts` lists them"]),
        ("status zzz", ["no model named 'zzz'", "`/modeldeck models` shows all"]),
        ("snooze 99999999999999999999999 2h", ["`99999999999999999999999` is not an alert"]),
        ("snooze 12 30s", ["'30s' is not a duration", "minutes, hours, days or weeks"]),
        ("snooze 12 5w", ["longer than the 30-day maximum"]),
        (
            "rollback fraud-detector in prod 1.0.0",
            ["looks like a version: did you mean `to 1.0.0`?", "in production to 1.0.0"],
        ),
    ],
)
def test_bad_input_is_explained_and_changes_nothing(
    bot: Bot, text: str, phrases: list[str]
) -> None:
    before = bot.snapshot()
    answer = refused(bot, bot.slack.command(text, user=ADMIN), before, *phrases)
    assert "`modeldeck " not in answer  # Slack advice, not the CLI's
    assert "Something went wrong" not in answer


def test_a_user_without_a_role_can_only_ask_for_help(bot: Bot) -> None:
    before = bot.snapshot()
    refused(
        bot,
        bot.slack.command("status", user=NOBODY),
        before,
        "slack:U0ERIN has no modeldeck role",
        "ask an admin",
    )
    refused(
        bot,
        bot.slack.command("promote fraud-detector 1.3.0 to staging", user=NOBODY),
        before,
        "has no modeldeck role",
    )


def test_a_viewer_cannot_promote(bot: Bot) -> None:
    before = bot.snapshot()
    refused(
        bot,
        bot.slack.command("promote fraud-detector 1.3.0 to staging", user=VIEWER),
        before,
        ":no_entry:",
        "promote models needs the deployer role",
        "is viewer",
    )


def test_a_promote_from_an_unbound_channel_is_refused_with_the_reason(bot: Bot) -> None:
    before = bot.snapshot()
    refused(
        bot,
        bot.slack.command("promote fraud-detector 1.2.0 to prod", user=DEPLOYER, channel=RANDOM),
        before,
        "production can only be changed from its bound Slack channels",
        f"<#{OPS}>",
    )


# --- changing -----------------------------------------------------------------------------


def test_promote_without_approval_goes_live_and_tells_the_channel(bot: Bot) -> None:
    sent = bot.slack.command(
        "promote fraud-detector 1.3.0 to stg because new features", user=DEPLOYER, channel=RANDOM
    )
    reply = sent.reply()
    assert reply.args["response_type"] == "in_channel"
    text = sent.text()
    assert "Promote fraud-detector 1.3.0 → staging" in text and "(from 1.2.0)" in text
    assert "active" in text and "<@U0CAROL>" in text and "new features" in text
    latest = deployments(bot)[-1]
    assert (latest.state, latest.requested_by, latest.requested_via) == (
        DeploymentState.active,
        "slack:U0CAROL",
        "slack",
    )
    event = wait_until(lambda: bot.audit("slack.command")[-1:], what="audit")[0]
    assert event.actor == "slack:U0CAROL" and event.after["outcome"] == "ok"
    assert event.after["deployment_id"] == latest.id
    assert event.after["text"].startswith("promote fraud-detector 1.3.0")


def test_promote_needing_approval_queues_the_request_with_the_reason(bot: Bot) -> None:
    sent = bot.slack.command(
        "promote fraud-detector 1.2.0 to prod because recall +4%", user=DEPLOYER
    )
    text = sent.text()
    assert "Approval needed: Promote fraud-detector 1.2.0 → production" in text
    assert "Approval requested in <#C0APPROVALS>" in text and "recall +4%" in text
    assert ActionId.approve not in text  # the buttons are on the approval request only
    latest = deployments(bot)[-1]
    assert latest.state == DeploymentState.awaiting_approval and latest.reason == "recall +4%"
    with bot.session() as session:
        queued = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "approval_request")
        ).all()
    assert [m.payload["deployment_id"] for m in queued].count(latest.id) == 1


def test_a_retried_slash_command_promotes_once(bot: Bot) -> None:
    first = bot.slack.command(
        "promote fraud-detector 1.3.0 to staging", user=DEPLOYER, trigger_id="trig.same"
    )
    again = bot.slack.command(
        "promote fraud-detector 1.3.0 to staging", user=DEPLOYER, trigger_id="trig.same"
    )
    answers = first.text(), again.text()
    promoted = [d for d in deployments(bot) if d.idempotency_key == "slack:promote:trig.same"]
    assert len(promoted) == 1
    # Both answers describe that one deployment (the replay may see it still rolling out).
    assert all(f"deployment #{promoted[0].id}" in answer for answer in answers)


def test_rollback_asks_for_confirmation_then_rolls_back(bot: Bot) -> None:
    before = bot.snapshot()
    sent = bot.slack.command(
        "rollback fraud-detector in prod because p99 latency doubled", user=DEPLOYER
    )
    ask = sent.reply()
    assert ask.args["response_type"] == "ephemeral"
    assert "Roll back *fraud-detector* in *production* from `1.1.0` to `1.0.0`?" in sent.text()
    assert bot.snapshot() == before  # nothing happens before the confirmation
    confirm = button(ask.args, ActionId.confirm_rollback)
    click = bot.slack.click(
        ActionId.confirm_rollback,
        confirm["value"],
        user=DEPLOYER,
        channel=OPS,
        message_ts="1700000000.000001",
        ephemeral=True,
    )
    assert click.status == 200
    assert click.reply(1).args.get("delete_original") is True
    done = click.reply(2)
    assert done.args["response_type"] == "in_channel"
    assert "Roll back fraud-detector in production to 1.0.0" in click.text(2)
    latest = deployments(bot)[-1]
    assert (latest.kind, latest.state, latest.reason) == (
        "rollback",
        DeploymentState.active,
        "p99 latency doubled",
    )
    # The same confirmation clicked again (a double click) does not roll back twice.
    again = bot.slack.click(
        ActionId.confirm_rollback,
        confirm["value"],
        user=DEPLOYER,
        channel=OPS,
        message_ts="1700000000.000001",
        ephemeral=True,
    )
    again.reply(2)
    assert len([d for d in deployments(bot) if d.kind == "rollback"]) == 1


def test_rollback_cancel_and_viewer_confirmation_change_nothing(bot: Bot) -> None:
    before = bot.snapshot()
    ask = bot.slack.command("rollback fraud-detector in prod", user=DEPLOYER).reply()
    cancel = bot.slack.click(
        ActionId.cancel,
        "cancel",
        user=DEPLOYER,
        channel=OPS,
        message_ts="1700000000.000002",
        ephemeral=True,
    )
    assert "Cancelled; nothing changed." in cancel.text()
    # A viewer who gets hold of the button is refused when clicking it.
    confirm = button(ask.args, ActionId.confirm_rollback)
    click = bot.slack.click(
        ActionId.confirm_rollback,
        confirm["value"],
        user=VIEWER,
        channel=OPS,
        message_ts="1700000000.000002",
        ephemeral=True,
    )
    assert "roll back models needs the deployer role" in click.text()
    assert click.reply().args["response_type"] == "ephemeral"
    assert bot.snapshot() == before


@pytest.mark.parametrize(
    ("text", "user", "phrases"),
    [
        ("rollback fraud-detector in prod", VIEWER, ["roll back models needs the deployer role"]),
        ("rollback fraud-detector in prod to 9.9.9", DEPLOYER, ["has no version '9.9.9'"]),
        ("rollback fraud-detector in prod to 1.3.0", DEPLOYER, ["1.3.0 never ran in production"]),
        ("rollback churn-model in prod", DEPLOYER, ["nothing is active for churn-model"]),
    ],
)
def test_a_rollback_that_cannot_happen_is_refused_before_any_confirmation(
    bot: Bot, text: str, user: str, phrases: list[str]
) -> None:
    before = bot.snapshot()
    sent = bot.slack.command(text, user=user)
    answer = refused(bot, sent, before, *phrases)
    assert "Roll back" not in answer  # no confirmation dialog
    assert ActionId.confirm_rollback.value not in answer


def test_a_rollback_from_an_unbound_channel_is_refused_before_any_confirmation(bot: Bot) -> None:
    before = bot.snapshot()
    sent = bot.slack.command("rollback fraud-detector in prod", user=DEPLOYER, channel=RANDOM)
    refused(bot, sent, before, "production can only be changed from its bound Slack channels")


def test_a_stale_rollback_confirmation_changes_nothing(bot: Bot) -> None:
    ask = bot.slack.command("rollback fraud-detector in staging", user=DEPLOYER)
    assert "from `1.2.0` to `1.1.0`?" in ask.text()
    confirm = button(ask.reply().args, ActionId.confirm_rollback)
    # Meanwhile someone else rolls staging back: 1.1.0 runs now. The old button must not
    # roll back again from whatever runs now (to 1.0.0).
    other = bot.slack.command("rollback fraud-detector in staging", user=ADMIN).reply()
    done = bot.slack.click(
        ActionId.confirm_rollback,
        button(other.args, ActionId.confirm_rollback)["value"],
        user=ADMIN,
        channel=OPS,
        message_ts="1700000000.000003",
        ephemeral=True,
    )
    assert "Roll back fraud-detector in staging to 1.1.0" in done.text(2)
    before = bot.snapshot()
    click = bot.slack.click(
        ActionId.confirm_rollback,
        confirm["value"],
        user=DEPLOYER,
        channel=OPS,
        message_ts="1700000000.000004",
        ephemeral=True,
    )
    text = click.text()
    assert "changed since you asked" in text and "nothing changed" in text
    assert click.reply().args["response_type"] == "ephemeral"
    assert bot.snapshot() == before


def test_a_rollback_past_the_previous_good_version_says_it_needs_approval(bot: Bot) -> None:
    with bot.session() as session:
        deploy(session, bot.settings, "fraud-detector", "1.2.0", "production")
    sent = bot.slack.command("rollback fraud-detector in prod to 1.0.0", user=DEPLOYER)
    text = sent.text()
    assert "from `1.2.0` to `1.0.0`?" in text
    assert "1.0.0 is not the previous good version, so this rollback needs 1 approval(s)" in text
    emergency = bot.slack.command("rollback fraud-detector in prod", user=DEPLOYER).text()
    assert "from `1.2.0` to `1.1.0`?" in emergency and "approval" not in emergency


def test_snooze_by_command(bot: Bot) -> None:
    alert_id = fire_alert(bot)
    before = bot.snapshot()
    refused(
        bot,
        bot.slack.command(f"snooze {alert_id} 2h", user=VIEWER),
        before,
        "snooze alerts needs the deployer role",
    )
    refused(
        bot,
        bot.slack.command(f"snooze {alert_id} 45d", user=DEPLOYER),
        before,
        "longer than the 30-day maximum",
    )
    sent = bot.slack.command(f"snooze #{alert_id} for 2 hours", user=DEPLOYER)
    assert f"<@U0CAROL> snoozed alert *#{alert_id}* drift on fraud-detector" in sent.text()
    assert "for 2h, until <!date^" in sent.text()
    with bot.session() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None and alert.status == AlertStatus.snoozed
        assert alert.snoozed_by == "slack:U0CAROL"
    # Weeks are a unit everywhere (core's parser): what the bot's parser lets through, core takes.
    week = bot.slack.command(f"snooze {alert_id} 1w", user=DEPLOYER)
    assert "for 1w, until <!date^" in week.text()
    with bot.session() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None and alert.snoozed_until is not None
        left = as_utc(alert.snoozed_until) - datetime.now(UTC)
        assert timedelta(days=6, hours=23) < left <= timedelta(days=7)
