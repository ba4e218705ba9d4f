"""`/modeldeck …`: ack at once, then parse and answer on the lazy pool.

Every verb calls the same core functions as the API and the CLI; roles, the two-person rule,
channel binding and state checks happen there, and their errors reach the person through the
one error handler (bot/errors.py).
"""

from __future__ import annotations

from functools import partial

from slack_bolt import App
from sqlmodel import Session

from modeldeck.bot import blocks
from modeldeck.bot.context import Turn, ack_first
from modeldeck.bot.ids import COMMAND
from modeldeck.bot.parser import (
    Alerts,
    Command,
    Drift,
    Help,
    History,
    Models,
    Promote,
    Rollback,
    Snooze,
    Status,
    Versions,
    WhoAmI,
    parse,
)
from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import AlertStatus
from modeldeck.core.alerts.snooze import short_duration
from modeldeck.core.auth.models import Role
from modeldeck.core.auth.service import require
from modeldeck.core.environments import service as environments
from modeldeck.core.monitoring import queries as monitoring
from modeldeck.core.notify import blocks as notify_blocks
from modeldeck.core.notify import kit
from modeldeck.core.registry import service as registry
from modeldeck.core.rollouts import queries as rollouts_queries
from modeldeck.core.rollouts import service as rollouts


def register(app: App) -> None:
    app.command(COMMAND)(run_command)


@ack_first("command")
def run_command(turn: Turn) -> None:
    text = str(turn.body.get("text") or "")
    command = parse(text, resolve_env=partial(environments.resolve_name, turn.settings))
    turn.audit_details["command"] = type(command).__name__.lower()
    if not isinstance(command, Help | WhoAmI):
        require(turn.actor, Role.viewer, "use /modeldeck")
    dispatch(turn, command)


def dispatch(turn: Turn, command: Command) -> None:
    match command:
        case Help(topic=topic):
            turn.reply(blocks.help_message(topic))
        case WhoAmI():
            groups = turn.deps.directory.groups_of(turn.user_id)
            turn.reply(blocks.whoami_message(turn.actor, turn.user_id, groups))
        case Models():
            show_models(turn)
        case Status(model=model):
            show_status(turn, model)
        case Versions(model=model):
            show_versions(turn, model)
        case History():
            show_history(turn, command)
        case Drift():
            show_drift(turn, command)
        case Alerts(include_resolved=include):
            show_alerts(turn, include)
        case Snooze():
            snooze(turn, command)
        case Promote():
            promote(turn, command)
        case Rollback():
            confirm_rollback(turn, command)


def show_models(turn: Turn) -> None:
    with turn.session() as session:
        models = registry.list_models(session, limit=blocks.MAX_ITEMS)
        rows = rollouts_queries.status(session)
    turn.reply(blocks.models_message(turn.settings, models, rows))


def show_status(turn: Turn, model: str | None) -> None:
    turn.audit_target = f"model:{model}" if model else ""
    with turn.session() as session:
        rows = rollouts_queries.status(session, model=model)
    turn.reply(blocks.status_message(turn.settings, rows, model))


def show_versions(turn: Turn, model: str) -> None:
    turn.audit_target = f"model:{model}"
    with turn.session() as session:
        versions = registry.list_versions(session, model, limit=blocks.MAX_ITEMS)
        rows = rollouts_queries.status(session, model=model)
    turn.reply(blocks.versions_message(turn.settings, model, versions, rows))


def show_history(turn: Turn, command: History) -> None:
    turn.audit_target = f"model:{command.model}"
    with turn.session() as session:
        history = rollouts_queries.history(
            session,
            model=command.model,
            environment=_known_env(session, command.environment),
            limit=blocks.MAX_ITEMS,
        )
    turn.reply(blocks.history_message(turn.settings, command.model, history, command.environment))


def show_drift(turn: Turn, command: Drift) -> None:
    turn.audit_target = f"model:{command.model}"
    with turn.session() as session:
        checks = monitoring.latest_checks(
            session, model=command.model, environment=_known_env(session, command.environment)
        )
    turn.reply(blocks.drift_message(turn.settings, command.model, checks, command.environment))


def show_alerts(turn: Turn, include_resolved: bool) -> None:
    with turn.session() as session:
        found = alerts.list_alerts(session, limit=200)
    shown = [a for a in found if include_resolved or a.status != AlertStatus.resolved]
    turn.reply(blocks.alerts_message(turn.settings, shown, include_resolved))


def snooze(turn: Turn, command: Snooze) -> None:
    turn.audit_target = f"alert:{command.alert_id}"
    with turn.session() as session:
        alert = alerts.snooze(
            session,
            settings=turn.settings,
            alert_id=command.alert_id,
            duration=command.duration,
            actor=turn.actor,
            clock=turn.clock,
        )
    # Plain, without buttons: the alert's own message is redrawn in place (alert_update).
    turn.reply(
        blocks.snoozed_notice(turn.actor, alert, short_duration(command.duration)), public=True
    )


def promote(turn: Turn, command: Promote) -> None:
    turn.audit_target = f"model:{command.model}/env:{command.environment}"
    with turn.session() as session:
        deployment = rollouts.promote(
            session,
            settings=turn.settings,
            model=command.model,
            version=command.version,
            environment=command.environment,
            actor=turn.actor,
            reason=command.reason,
            idempotency_key=_key(turn, "promote"),
            slack_channel=turn.channel_id,
            clock=turn.clock,
        )
        message = notify_blocks.load_deployment_message(
            session, turn.settings, deployment.id, buttons=False
        )
    turn.audit_details["deployment_id"] = deployment.id
    if deployment.state == "awaiting_approval":
        where = turn.settings.slack.approval_channel
        message["blocks"].append(
            kit.context(
                f":raised_hand: Approval requested in <#{where}>."
                if where
                else ":raised_hand: Approval requested; an approver can decide on the request"
                " message."
            )
        )
    turn.reply(message, public=True)


def confirm_rollback(turn: Turn, command: Rollback) -> None:
    """A rollback is destructive: show what would happen and ask to confirm (DESIGN §10).

    Core plans it first (role, channel, target, something runs), so a refusal comes now, not
    after the click; the button carries the plan's active deployment, and the click refuses
    when that changed meanwhile.
    """
    turn.audit_target = f"model:{command.model}/env:{command.environment}"
    with turn.session() as session:
        plan = rollouts.plan_rollback(
            session,
            settings=turn.settings,
            model=command.model,
            environment=command.environment,
            actor=turn.actor,
            to_version=command.to_version,
            slack_channel=turn.channel_id,
        )
    request = {
        "m": plan.model,
        "e": plan.environment,
        "v": plan.to_version,
        "c": plan.current_deployment_id,
        "r": command.reason,
        "k": turn.trigger_id,
    }
    message = blocks.rollback_confirmation(
        plan.model, plan.environment, plan.from_version, plan.to_version, request
    )
    if plan.approvals_required:
        message["blocks"].insert(
            1,
            kit.context(
                f":raised_hand: {plan.to_version} is not the previous good version, so this "
                f"rollback needs {plan.approvals_required} approval(s) before it runs."
            ),
        )
    if plan.supersedes is not None:
        message["blocks"].insert(
            1,
            kit.context(
                f":warning: It supersedes request #{plan.supersedes}, which awaits approval "
                "(that request is rejected)."
            ),
        )
    turn.reply(message)


def _known_env(session: Session, name: str | None) -> str | None:
    """The environment's configured name (aliases resolved by the parser); NotFound if none."""
    return None if name is None else environments.get(session, name).name


def _key(turn: Turn, verb: str) -> str | None:
    """Slack's trigger id is unique per invocation: a replayed request changes nothing twice."""
    return f"slack:{verb}:{turn.trigger_id}" if turn.trigger_id else None
