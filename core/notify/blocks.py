"""Slack Block Kit for outbox messages (alerts, approval requests, rollout updates).

Rendered at delivery time from the current database state, so a message delivered late after
a Slack outage shows the truth, not what was true when it was queued. The bot reuses the same
builders for its replies and for updating a message in place after a click.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from modeldeck.core import db
from modeldeck.core.alerts.models import Alert, AlertPublic, AlertStatus
from modeldeck.core.alerts.public import to_public as alerts_public
from modeldeck.core.config import Settings
from modeldeck.core.errors import NotFound
from modeldeck.core.notify import kit
from modeldeck.core.notify.actions import ActionId, BlockId
from modeldeck.core.notify.models import OutboxMessage
from modeldeck.core.rollouts import queries as rollouts
from modeldeck.core.rollouts.models import (
    Decision,
    Deployment,
    DeploymentKind,
    DeploymentPublic,
    DeploymentState,
)

Message = dict[str, Any]
ALERT_KINDS = ("alert", "alert_resolved", "alert_update")
DEPLOYMENT_KINDS = ("approval_request", "deployment_update", "rollout_update")
HIDDEN_DETAILS = {"dashboard_url", "deployment_id"}  # shown as a button, or internal
REASON_LIMIT = kit.SECTION_LIMIT - len("*Reason*\n>")
ROLLBACK_FAILED = (DeploymentState.failed, DeploymentState.rejected)


def render(session: Session, settings: Settings, message: OutboxMessage) -> Message:
    """Return {"text": fallback, "blocks": [...]} for a queued message, from current state."""
    payload = message.payload
    if message.kind in ALERT_KINDS and "alert_id" in payload:
        return load_alert_message(session, settings, int(payload["alert_id"]))
    if message.kind in DEPLOYMENT_KINDS and "deployment_id" in payload:
        return load_deployment_message(session, settings, int(payload["deployment_id"]))
    text = str(payload.get("text") or f"modeldeck {message.kind}")
    return kit.message(text, [kit.section(kit.escape_clip(text, kit.SECTION_LIMIT))])


# --- deployments (approval requests, rollout updates, replies to promote/rollback) ---------


def load_deployment_message(
    session: Session, settings: Settings, deployment_id: int, *, buttons: bool = True
) -> Message:
    """The message for one deployment as it is now (buttons only while awaiting approval)."""
    dep = rollouts.to_public(session, [rollouts.get(session, deployment_id)])[0]
    previous = None
    if dep.previous_deployment_id is not None:
        prev_row = rollouts.get(session, dep.previous_deployment_id)
        previous = rollouts.to_public(session, [prev_row])[0].version
    return deployment_message(settings, dep, previous_version=previous, buttons=buttons)


def deployment_title(dep: DeploymentPublic) -> str:
    if dep.kind == DeploymentKind.rollback:
        return f"Roll back {dep.model} in {dep.environment} to {dep.version}"
    return f"Promote {dep.model} {dep.version} → {dep.environment}"


def deployment_message(
    settings: Settings,
    dep: DeploymentPublic,
    *,
    previous_version: str | None = None,
    buttons: bool = True,
) -> Message:
    """A deployment: what, where, who, when, state, reason, approvals, and the buttons
    (Approve / Reject while it awaits approval, unless `buttons` is False)."""
    waiting = dep.state == DeploymentState.awaiting_approval
    title = deployment_title(dep)
    prefix = ":raised_hand: Approval needed: " if waiting else ""
    version = (
        dep.version if previous_version is None else f"{dep.version} (from {previous_version})"
    )
    blocks = [
        kit.header(prefix + title),
        kit.fields(
            [
                ("Model", dep.model),
                ("Version", version),
                ("Environment", dep.environment),
                ("State", kit.state_label(dep.state)),
                ("Requested by", f"{kit.mention(dep.requested_by)} via {dep.requested_via}"),
                ("When", kit.slack_date(dep.started_at)),
            ]
        ),
    ]
    reason = dep.reason.strip()
    blocks.append(
        kit.section(
            f"*Reason*\n>{kit.escape_clip(reason, REASON_LIMIT)}"
            if reason
            else "*Reason*\n_none given_"
        )
    )
    if dep.approvals_required or dep.approvals:
        blocks.append(kit.section(_approvals_text(dep, dep.approvals_required)))
    if dep.message:
        blocks.append(kit.context(kit.escape_clip(dep.message, 1900)))
    url = kit.dashboard_url(settings, "model", model=dep.model, env=dep.environment)
    elements = [kit.link_button("Open dashboard", url)]
    if waiting and buttons:
        value = str(dep.id)
        elements = [
            kit.button("Approve", ActionId.approve, value, style="primary"),
            kit.button(
                "Reject",
                ActionId.reject,
                value,
                style="danger",
                confirm=kit.confirm(
                    "Reject this request?", f"{kit.escape(title)} will not happen.", "Reject"
                ),
            ),
            *elements,
        ]
    blocks.append(kit.actions(BlockId.approval_actions, elements))
    blocks.append(kit.context(f"deployment #{dep.id}"))
    text = (
        f"{title}: {dep.state.value.replace('_', ' ')} (requested by "
        f"{kit.mention(dep.requested_by)})"
    )
    return kit.message(text, blocks)


def _approvals_text(dep: DeploymentPublic, required: int) -> str:
    approved = sum(1 for a in dep.approvals if a.decision == Decision.approve)
    lines = [f"*Approvals* {approved} of {required}"]
    for a in dep.approvals:
        icon = ":white_check_mark:" if a.decision == Decision.approve else ":no_entry:"
        verb = "approved" if a.decision == Decision.approve else "rejected"
        comment = f" — {kit.escape_clip(a.comment, 1000)}" if a.comment else ""
        lines.append(f"{icon} {kit.mention(a.approver)} {verb} {kit.slack_date(a.at)}{comment}")
    if dep.state == DeploymentState.awaiting_approval:
        lines.append("_The requester cannot approve their own request._")
    return "\n".join(lines)


# --- alerts --------------------------------------------------------------------------------


def load_alert_message(session: Session, settings: Settings, alert_id: int) -> Message:
    row = db.get_by_id(session, Alert, alert_id)
    if row is None:
        raise NotFound(f"no alert with id {alert_id}")
    return alert_message(
        settings, alerts_public(session, [row])[0], rollback=rollback_since(session, row)
    )


def rollback_since(session: Session, alert: Alert) -> DeploymentPublic | None:
    """The latest rollback of the alert's model in its environment since the alert opened
    (from its Roll back button, a command or the automation): the alert message names it."""
    if alert.model_id is None or alert.environment_id is None:
        return None
    row = session.exec(
        select(Deployment)
        .where(
            Deployment.model_id == alert.model_id,
            Deployment.environment_id == alert.environment_id,
            Deployment.kind == DeploymentKind.rollback,
            col(Deployment.started_at) >= alert.first_seen,
        )
        .order_by(col(Deployment.id).desc())
    ).first()
    return rollouts.to_public(session, [row])[0] if row is not None else None


def alert_title(alert: AlertPublic) -> str:
    where = f" on {alert.model}" if alert.model else ""
    env = f" ({alert.environment})" if alert.environment else ""
    return f"{alert.rule}{where}{env}"


def alert_message(
    settings: Settings, alert: AlertPublic, *, rollback: DeploymentPublic | None = None
) -> Message:
    """An alert that explains itself: what, where, since when, the numbers, and what to do.

    With `rollback` (see `rollback_since`) it says who rolled back, and offers no second
    Roll back unless that one failed."""
    icon = (
        kit.SEVERITY_ICON[alert.severity]
        if alert.status == AlertStatus.firing
        else kit.ALERT_ICON[alert.status]
    )
    title = alert_title(alert)
    blocks = [kit.header(f"{icon} {alert.severity.value.upper()}: {title}")]
    if alert.summary:
        blocks.append(kit.section(kit.escape_clip(alert.summary, kit.SECTION_LIMIT)))
    blocks.append(
        kit.fields(
            [
                ("Model", alert.model or "-"),
                ("Version", alert.version or "-"),
                ("Environment", alert.environment or "-"),
                ("Status", _alert_status(alert)),
                ("First seen", kit.slack_date(alert.first_seen)),
                ("Last seen", f"{kit.slack_date(alert.last_seen)} ({alert.count}×)"),
            ]
        )
    )
    if facts := _facts(alert.details):
        blocks.append(kit.section(facts))
    url = str(
        alert.details.get("dashboard_url") or kit.dashboard_url(settings, "alerts", alert=alert.id)
    )
    rolled_back = rollback is not None and rollback.state not in ROLLBACK_FAILED
    if rollback is not None:
        blocks.append(kit.context(_rollback_note(rollback)))
    buttons = []
    if (
        alert.status != AlertStatus.resolved
        and alert.model
        and alert.environment
        and not rolled_back
    ):
        buttons.append(
            kit.button(
                "Roll back",
                ActionId.rollback,
                str(alert.id),
                style="danger",
                confirm=kit.confirm(
                    "Roll back?",
                    f"Roll back *{alert.model}* in "
                    f"*{alert.environment}* to the version that ran before "
                    f"{alert.version or 'this one'}?",
                    "Roll back",
                ),
            )
        )
    if alert.status == AlertStatus.firing:
        buttons.append(kit.button("Snooze 1h", ActionId.snooze_1h, str(alert.id)))
    buttons.append(kit.link_button("Open dashboard", url))
    blocks.append(kit.actions(BlockId.alert_actions, buttons))
    blocks.append(kit.context(f"alert #{alert.id} · `{alert.fingerprint[:12]}`"))
    text = f"[{alert.status.value}] {alert.severity.value}: {title}"
    if alert.summary:
        text += f" — {alert.summary}"
    return kit.message(text, blocks)


def _rollback_note(dep: DeploymentPublic) -> str:
    return (
        f":leftwards_arrow_with_hook: rollback #{dep.id} to `{dep.version}` by "
        f"{kit.mention(dep.requested_by)} {kit.slack_date(dep.started_at)}: "
        f"{dep.state.value.replace('_', ' ')}"
    )


def _alert_status(alert: AlertPublic) -> str:
    label = f"{kit.ALERT_ICON[alert.status]} {alert.status.value}"
    if alert.status == AlertStatus.snoozed:
        return (
            f"{label} until {kit.slack_date(alert.snoozed_until)} by "
            f"{kit.mention(alert.snoozed_by)}"
        )
    if alert.status == AlertStatus.resolved:
        by = f" by {kit.mention(alert.resolved_by)}" if alert.resolved_by else ""
        return f"{label} {kit.slack_date(alert.resolved_at)}{by}"
    return label


def _facts(details: dict[str, Any]) -> str:
    """Metric, value, threshold, window, top features: whatever the rule recorded."""
    lines = []
    for key, value in list(details.items())[:12]:
        if isinstance(value, dict) or key in HIDDEN_DETAILS:
            continue  # per-column breakdowns belong on the dashboard
        if isinstance(value, list | tuple):
            shown = ", ".join(str(v) for v in value[:8]) + (" …" if len(value) > 8 else "")
        elif isinstance(value, float):
            shown = f"{value:.4g}"
        else:
            shown = str(value)
        lines.append(
            f"*{kit.escape_clip(key.replace('_', ' '), 80)}*: {kit.escape_clip(shown, 500)}"
        )
    return "\n".join(lines)
