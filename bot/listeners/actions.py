"""Buttons: Approve / Reject on approval requests, Roll back / Snooze on alerts, the rollback
confirmation of the slash command. Each click acks at once, then re-checks the clicker's role
and the current state in core (a stale button answers so) and updates its message in place.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from slack_bolt import App
from slack_sdk.errors import SlackApiError

from modeldeck.bot import pending
from modeldeck.bot.context import Message, Turn, ack_first, log
from modeldeck.bot.ids import ActionId
from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import AlertStatus
from modeldeck.core.errors import BackendUnavailable, Conflict, InvalidInput
from modeldeck.core.notify import blocks as notify_blocks
from modeldeck.core.notify import kit
from modeldeck.core.notify import service as notify
from modeldeck.core.rollouts import queries as rollouts_queries
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import Decision, DeploymentPublic, DeploymentState


def register(app: App) -> None:
    app.action(ActionId.approve.value)(approve)
    app.action(ActionId.reject.value)(reject)
    app.action(ActionId.rollback.value)(rollback_from_alert)
    app.action(ActionId.confirm_rollback.value)(confirm_rollback)
    app.action(ActionId.cancel.value)(cancel)
    app.action(ActionId.snooze_1h.value)(snooze_1h)
    # A link button opens the dashboard in the browser; Slack still sends the click.
    app.action(ActionId.open_dashboard.value)(open_dashboard)


@ack_first("action")
def approve(turn: Turn) -> None:
    decide(turn, Decision.approve)


@ack_first("action")
def reject(turn: Turn) -> None:
    decide(turn, Decision.reject)


def decide(turn: Turn, decision: Decision) -> None:
    """Approve or reject in core, then redraw the request message from the database."""
    deployment_id = _int_value(turn)
    turn.audit_target = f"deployment:{deployment_id}"
    decide_in_core = rollouts.approve if decision == Decision.approve else rollouts.reject
    try:
        with turn.session() as session:
            decide_in_core(
                session,
                settings=turn.settings,
                deployment_id=deployment_id,
                actor=turn.actor,
                clock=turn.clock,
            )
    except Conflict as exc:
        current = _refresh_deployment(turn, deployment_id)
        if current is not None and current.state != DeploymentState.awaiting_approval:
            raise _already_decided(current) from exc
        raise
    except BackendUnavailable:
        _refresh_deployment(turn, deployment_id)  # approved, but the cluster refused: failed
        raise
    _refresh_deployment(turn, deployment_id)


def _already_decided(dep: DeploymentPublic) -> Conflict:
    verbs = {Decision.approve: "approved", Decision.reject: "rejected"}
    by = ", ".join(f"{kit.mention(a.approver)} {verbs[a.decision]}" for a in dep.approvals)
    return Conflict(
        f"This request was already decided{f' ({by})' if by else ''}: deployment "
        f"#{dep.id} is {dep.state.value.replace('_', ' ')} now. Nothing changed."
    )


@ack_first("action")
def open_dashboard(turn: Turn) -> None:
    """Nothing to do but the audit event (who opened what, from which message)."""
    action = (turn.body.get("actions") or [{}])[0]
    if action.get("url"):
        turn.audit_details["url"] = str(action["url"])[:500]
    if ts := _message_ts(turn):
        turn.audit_details["message_ts"] = ts


@ack_first("action")
def rollback_from_alert(turn: Turn) -> None:
    """Roll back the version an alert is about; refused if that version no longer runs.

    The alert message is redrawn in place ("rollback #N by …", no second Roll back), now and
    through the outbox (alert_update); the clicker gets the rollout privately."""
    alert_id = _int_value(turn)
    turn.audit_target = f"alert:{alert_id}"
    with turn.session() as session:
        alert = alerts.get_alert(session, alert_id)
        if alert.status == AlertStatus.resolved:
            raise Conflict(
                f"alert #{alert_id} is resolved; nothing was rolled back",
                hint="use `/modeldeck rollback MODEL in ENV` if you still want to",
            )
        if not alert.model or not alert.environment:
            raise InvalidInput(f"alert #{alert_id} is not about a deployed model")
        cell = next(
            (
                r
                for r in rollouts_queries.status(session, model=alert.model)
                if r.environment == alert.environment
            ),
            None,
        )
        running = cell.version if cell is not None else None
        if alert.version and running != alert.version:
            raise Conflict(
                f"{alert.model} {alert.version} is no longer active in "
                f"{alert.environment} ({running or 'nothing'} is); nothing was "
                "rolled back"
            )
        deployment = rollouts.rollback(
            session,
            settings=turn.settings,
            model=alert.model,
            environment=alert.environment,
            actor=turn.actor,
            reason=kit.clip(f"alert #{alert_id}: {alert.summary}", 2000),
            idempotency_key=f"slack:alert-rollback:{alert_id}:{_message_ts(turn)}",
            slack_channel=turn.channel_id,
            clock=turn.clock,
        )
        message = notify_blocks.load_deployment_message(
            session, turn.settings, deployment.id, buttons=False
        )
        notify.publish(
            session,
            settings=turn.settings,
            kind="alert_update",
            payload={"alert_id": alert_id, "text": f"rollback #{deployment.id}"},
            clock=turn.clock,
        )
        session.commit()
    turn.audit_details["deployment_id"] = deployment.id
    _refresh_alert(turn, alert_id)
    turn.reply(message)


@ack_first("action")
def confirm_rollback(turn: Turn) -> None:
    """The slash command's confirmation: run the rollback it described, from the deployment
    it described (Conflict, nothing changed, when another change came first)."""
    request = _json_value(turn)
    model, env = str(request.get("m") or ""), str(request.get("e") or "")
    current = request.get("c")
    if not model or not env or not isinstance(current, int) or isinstance(current, bool):
        raise InvalidInput("this confirmation button is damaged; run the rollback command again")
    turn.audit_target = f"model:{model}/env:{env}"
    key = f"slack:rollback:{request.get('k')}" if request.get("k") else None
    with turn.session() as session:
        deployment = rollouts.rollback(
            session,
            settings=turn.settings,
            model=model,
            environment=env,
            actor=turn.actor,
            to_version=str(request.get("v") or "") or None,
            reason=str(request.get("r") or ""),
            idempotency_key=key,
            slack_channel=turn.channel_id,
            expected_current_id=current,
            clock=turn.clock,
        )
        message = notify_blocks.load_deployment_message(
            session, turn.settings, deployment.id, buttons=False
        )
    turn.audit_details["deployment_id"] = deployment.id
    turn.respond(delete_original=True)
    turn.reply(message, public=True)


@ack_first("action")
def cancel(turn: Turn) -> None:
    turn.respond(text="Cancelled; nothing changed.", replace_original=True)


@ack_first("action")
def snooze_1h(turn: Turn) -> None:
    alert_id = _int_value(turn)
    turn.audit_target = f"alert:{alert_id}"
    try:
        with turn.session() as session:
            alerts.snooze(
                session,
                settings=turn.settings,
                alert_id=alert_id,
                duration=timedelta(hours=1),
                actor=turn.actor,
                clock=turn.clock,
            )
    except Conflict:
        _refresh_alert(turn, alert_id)
        raise
    _refresh_alert(turn, alert_id)


def _refresh_deployment(turn: Turn, deployment_id: int) -> DeploymentPublic | None:
    with turn.session() as session:
        row = rollouts_queries.get(session, deployment_id)
        current = rollouts_queries.to_public(session, [row])[0]
        message = notify_blocks.load_deployment_message(session, turn.settings, deployment_id)
    _update_message(turn, message)
    return current


def _refresh_alert(turn: Turn, alert_id: int) -> None:
    with turn.session() as session:
        message = notify_blocks.load_alert_message(session, turn.settings, alert_id)
    _update_message(turn, message)


def _update_message(turn: Turn, message: Message) -> None:
    """Redraw the message the button was on: chat.update for channel messages (the bot
    posted them), the response_url for ephemeral ones. A failure only costs the redraw."""
    container = turn.body.get("container") or {}
    channel, ts = turn.channel_id, _message_ts(turn)
    try:
        if channel and ts and not container.get("is_ephemeral"):
            turn.client.chat_update(
                channel=channel, ts=ts, text=message["text"], blocks=message["blocks"]
            )
        else:
            turn.respond(text=message["text"], blocks=message["blocks"], replace_original=True)
    except (SlackApiError, OSError) as exc:
        log.warning("slack.update_failed", channel=channel, ts=ts, error=repr(exc))


def _message_ts(turn: Turn) -> str | None:
    container = turn.body.get("container") or {}
    ts = container.get("message_ts") or (turn.body.get("message") or {}).get("ts")
    return str(ts) if ts else None


def _raw_value(turn: Turn) -> str:
    actions = turn.body.get("actions") or [{}]
    return str(actions[0].get("value") or "")


def _int_value(turn: Turn) -> int:
    raw = _raw_value(turn)
    if not raw.isdigit() or len(raw) > 12:
        raise InvalidInput("this button is damaged (its value is not an id); nothing changed")
    return int(raw)


def _json_value(turn: Turn) -> dict[str, Any]:
    try:
        value = json.loads(_raw_value(turn))
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidInput("this button is damaged (its value is not readable); nothing changed")
    return pending.with_text(value)  # the reason, kept in the bot (bot/pending.py)
