"""Block Kit replies to `/modeldeck` commands. Deployments and alerts reuse core/notify/blocks.py
so a reply, an outbox message and an in-place update always look the same."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from modeldeck.bot import pending
from modeldeck.bot.parser import USAGE
from modeldeck.core.alerts.models import AlertPublic
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.config import Settings
from modeldeck.core.monitoring.queries import CheckSummary
from modeldeck.core.notify import kit
from modeldeck.core.notify.actions import ActionId, BlockId
from modeldeck.core.notify.blocks import alert_title
from modeldeck.core.registry.models import ModelsPublic, ModelVersionsPublic
from modeldeck.core.rollouts.models import DeploymentsPublic
from modeldeck.core.rollouts.queries import StatusRow

Message = dict[str, Any]
MAX_ITEMS = 20  # a reply stays readable on a phone; the dashboard has the rest
DASHBOARD_BLOCK = "modeldeck.dashboard_link"  # the actions block of a reply's "Open dashboard"
CAN = {
    Role.viewer: "read status, versions, history, drift and alerts",
    Role.deployer: "also promote, roll back and snooze alerts",
    Role.approver: "also approve or reject promotions (not your own)",
    Role.admin: "everything",
}


def notice(text: str) -> Message:
    return kit.message(text, [kit.section(text)])


def help_message(topic: str | None = None) -> Message:
    verbs = [topic] if topic else list(USAGE)
    lines = [
        f"`/modeldeck {USAGE[v].syntax}`\n      {USAGE[v].summary} — e.g. "
        f"`/modeldeck {USAGE[v].example}`"
        for v in verbs
    ]
    blocks = [
        kit.header("modeldeck commands" if topic is None else f"/modeldeck {topic}"),
        kit.section("\n".join(lines)),
        kit.context(
            "Environments take aliases (`prod`). Buttons on alerts and approval "
            "requests re-check your role when clicked."
        ),
    ]
    return kit.message("modeldeck commands: " + ", ".join(verbs), blocks)


def whoami_message(actor: Actor, user_id: str, groups: Sequence[str]) -> Message:
    role = actor.role
    can = (
        CAN[role]
        if role
        else "nothing yet: ask an admin to map you to a role (roles: in modeldeck.yaml)"
    )
    text = f"You are <@{user_id}> (`{actor.name}`), role *{role or 'none'}*: you can {can}."
    blocks = [kit.section(text)]
    if groups:
        blocks.append(
            kit.context("via user groups: " + ", ".join(f"<!subteam^{g}>" for g in groups))
        )
    return kit.message(text, blocks)


def models_message(settings: Settings, models: ModelsPublic, rows: Sequence[StatusRow]) -> Message:
    if not models.data:
        return notice("No models are registered yet (`modeldeck register MODEL VERSION`).")
    running: dict[str, list[str]] = {}
    for r in rows:
        if r.version:
            running.setdefault(r.model, []).append(f"{r.environment} `{r.version}`")
    blocks = [kit.header(f"Models ({models.count})")]
    for m in models.data[:MAX_ITEMS]:
        where = " · ".join(running.get(m.name, [])) or "_not deployed_"
        team = f" · {kit.escape(m.team)}" if m.team else ""
        blocks.append(_linked(settings, f"*{m.name}*{team}\n{where}", m.name))
    blocks.extend(_more(settings, models.count))
    return kit.message(f"{models.count} models", blocks)


def status_message(settings: Settings, rows: Sequence[StatusRow], model: str | None) -> Message:
    if not rows:
        return notice("No models or environments yet.")
    by_model: dict[str, list[StatusRow]] = {}
    for r in rows:
        by_model.setdefault(r.model, []).append(r)
    blocks = [kit.header(f"Status of {model}" if model else "Status")]
    for name, cells in list(by_model.items())[:MAX_ITEMS]:
        lines = [f"*{name}*"] + [_status_line(c) for c in cells]
        blocks.append(_linked(settings, "\n".join(lines), name))
    blocks.extend(_more(settings, len(by_model)))
    first = rows[0]
    text = (
        f"{first.model} in {first.environment}: {first.version or 'nothing'}"
        if model
        else f"status of {len(by_model)} models"
    )
    return kit.message(text, blocks)


def _status_line(cell: StatusRow) -> str:
    if cell.version:
        line = (
            f"• *{cell.environment}* `{cell.version}` since {kit.slack_date(cell.since)} "
            f"by {kit.mention(cell.promoted_by)}"
        )
    else:
        line = f"• *{cell.environment}* _nothing running_"
    if cell.in_flight is not None:
        flying = cell.in_flight
        line += f"\n      {kit.state_label(flying.state)} `{flying.version}` (#{flying.id})"
    return line


def versions_message(
    settings: Settings, model: str, versions: ModelVersionsPublic, rows: Sequence[StatusRow]
) -> Message:
    if not versions.data:
        return notice(f"{model} has no versions yet.")
    where: dict[str, list[str]] = {}
    for r in rows:
        if r.version:
            where.setdefault(r.version, []).append(r.environment)
    blocks = [kit.header(f"{model}: {versions.count} versions")]
    for v in versions.data[:MAX_ITEMS]:
        metrics = ", ".join(f"{k} {val:.4g}" for k, val in list(v.metrics.items())[:4])
        envs = ", ".join(where.get(v.version, []))
        line = f"*{v.version}*" + (f" — running in {envs}" if envs else "")
        line += f"\nregistered {kit.slack_date(v.created_at)} by {kit.mention(v.created_by)}"
        if metrics:
            line += f"\n{metrics}"
        blocks.append(kit.section(line))
    blocks.extend(_more(settings, versions.count, model=model))
    blocks.append(_open_dashboard(settings, "model", model=model))
    return kit.message(f"{model}: {versions.count} versions", blocks)


def history_message(
    settings: Settings, model: str, history: DeploymentsPublic, environment: str | None
) -> Message:
    where = f" in {environment}" if environment else ""
    if not history.data:
        return notice(f"{model} was never deployed{where}.")
    blocks = [kit.header(f"History of {model}{where}")]
    for d in history.data[:MAX_ITEMS]:
        verb = "rollback to" if d.kind == "rollback" else "promote"
        line = (
            f"*#{d.id}* {verb} `{d.version}` → *{d.environment}* "
            f"{kit.state_label(d.state)}\n{kit.slack_date(d.started_at)} by "
            f"{kit.mention(d.requested_by)} via {d.requested_via}"
        )
        if d.reason:
            line += f"\n>{kit.escape_clip(d.reason, 200)}"
        blocks.append(kit.section(line))
    blocks.extend(_more(settings, history.count, model=model))
    blocks.append(_open_dashboard(settings, "model", model=model, env=environment))
    return kit.message(f"{model}: {history.count} deployments{where}", blocks)


def drift_message(
    settings: Settings, model: str, checks: Sequence[CheckSummary], environment: str | None
) -> Message:
    where = f" in {environment}" if environment else ""
    if not checks:
        return notice(f"No drift check has run for {model}{where} yet.")
    blocks = [kit.header(f"Drift of {model}{where}")]
    for c in checks:
        drifted = ", ".join(c.drifted_columns[:8]) or "none"
        score = "-" if c.score is None else f"{c.score:.3g}"
        blocks.append(
            kit.section(
                f"*{c.environment}* `{c.version}` — {_check_icon(c.status)} {c.status}\n"
                f"share drifted {score} · window ending {kit.slack_date(c.window_end)} "
                f"({c.rows} rows)\ndrifted columns: {kit.escape(drifted)}"
            )
        )
    url = kit.dashboard_url(settings, "drift", model=model, env=environment)
    blocks.append(kit.actions(BlockId.alert_actions, [kit.link_button("Open drift page", url)]))
    return kit.message(f"drift of {model}{where}", blocks)


def _check_icon(status: str) -> str:
    return {
        "ok": ":large_green_circle:",
        "warn": ":large_yellow_circle:",
        "fail": ":red_circle:",
    }.get(status, ":white_circle:")


def alerts_message(
    settings: Settings, alerts: Sequence[AlertPublic], include_resolved: bool
) -> Message:
    if not alerts:
        return notice("No open alerts. :tada:" if not include_resolved else "No alerts.")
    blocks = [kit.header(f"Alerts ({len(alerts)})")]
    for a in alerts[:MAX_ITEMS]:
        icon = kit.SEVERITY_ICON[a.severity] if a.status == "firing" else kit.ALERT_ICON[a.status]
        line = (
            f"{icon} *#{a.id}* {kit.escape(alert_title(a))} — {a.status}\n"
            f"{kit.escape_clip(a.summary, 200)}\nlast seen "
            f"{kit.slack_date(a.last_seen)} ({a.count}×)"
        )
        blocks.append(kit.section(line))
    blocks.append(kit.context("Snooze one with `/modeldeck snooze ID 2h`."))
    blocks.append(_open_dashboard(settings, "alerts"))
    return kit.message(f"{len(alerts)} alerts", blocks)


def snoozed_notice(actor: Actor, alert: AlertPublic, duration: str) -> Message:
    """The answer to `/modeldeck snooze`: who, which alert, until when. No buttons: the
    alert's own message is redrawn in place."""
    text = (
        f":zzz: {kit.mention(actor.name)} snoozed alert *#{alert.id}* "
        f"{kit.escape(alert_title(alert))} for {duration}, until "
        f"{kit.slack_date(alert.snoozed_until)}."
    )
    return kit.message(text, [kit.section(text)])


def rollback_confirmation(
    model: str, environment: str, current: str | None, target: str | None, request: dict[str, Any]
) -> Message:
    """The confirmation step before a rollback asked by slash command (DESIGN §10).

    The button carries ids only; the reason waits in bot/pending.py until the click."""
    to = f"`{target}`" if target else "the previous version"
    now = f"`{current}`" if current else "nothing"
    text = f"Roll back *{model}* in *{environment}* from {now} to {to}?"
    value = json.dumps(pending.without_text(request), separators=(",", ":"))
    blocks = [
        kit.section(text),
        kit.actions(
            BlockId.rollback_actions,
            [
                kit.button("Roll back", ActionId.confirm_rollback, value, style="danger"),
                kit.button("Cancel", ActionId.cancel, "cancel"),
            ],
        ),
        kit.context("Only you can see this. The rollback starts when you confirm."),
    ]
    return kit.message(text.replace("*", ""), blocks)


def _open_dashboard(settings: Settings, page: str, **params: str | None) -> dict[str, Any]:
    """The "Open dashboard" button under a list: the page that shows all of it."""
    url = kit.dashboard_url(settings, page, **params)
    return kit.actions(DASHBOARD_BLOCK, [kit.link_button("Open dashboard", url)])


def _linked(settings: Settings, text: str, model: str) -> dict[str, Any]:
    block = kit.section(text)
    url = kit.dashboard_url(settings, "model", model=model)
    block["accessory"] = kit.link_button("Open", url).to_dict()
    return block


def _more(settings: Settings, total: int, model: str | None = None) -> list[dict[str, Any]]:
    if total <= MAX_ITEMS:
        return []
    url = kit.dashboard_url(settings, "model" if model else "overview", model=model)
    return [kit.context(f"…and {total - MAX_ITEMS} more on <{url}|the dashboard>.")]
