"""`modeldeck alerts`, `snooze ALERT_ID 2h`, `resolve ALERT_ID`."""

from __future__ import annotations

from typing import Annotated

import typer

from modeldeck.core.alerts import service
from modeldeck.core.alerts.models import AlertPublic, AlertStatus
from modeldeck.core.cli import context, output


def alerts(
    ctx: typer.Context,
    status: Annotated[
        AlertStatus | None, typer.Option("--status", "-s", help="Only alerts in this state.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """List alerts, most recently seen first."""
    cli = context.get(ctx)
    with cli.session() as session:
        rows = service.list_alerts(session, status=status, model=model, limit=limit)
    if cli.json_output:
        output.emit_json(rows)
        return
    output.table(
        "alerts",
        ["id", "status", "severity", "rule", "where", "seen", "summary"],
        [
            (
                a.id,
                _status(a),
                a.severity,
                a.rule,
                _where(a),
                f"{a.count}× {output.ago(a.last_seen)}",
                a.summary,
            )
            for a in rows
        ],
        empty="no alerts",
    )


def _where(alert: AlertPublic) -> str:
    where = alert.model or "-"
    if alert.version:
        where += f" {alert.version}"
    return f"{where} @ {alert.environment}" if alert.environment else where


def _status(alert: AlertPublic) -> str:
    if alert.status == AlertStatus.snoozed and alert.snoozed_until:
        return f"snoozed→{alert.snoozed_until:%m-%d %H:%M}"
    return str(alert.status)


def snooze(
    ctx: typer.Context,
    alert_id: Annotated[int, typer.Argument(help="Alert id (see `modeldeck alerts`).")],
    duration: Annotated[str, typer.Argument(help="How long: 30m, 2h, 1d (at most 30d).")],
) -> None:
    """Silence an alert for a while; it notifies again afterwards if it still fires."""
    cli = context.get(ctx)
    delta = service.parse_duration(duration)
    with cli.session() as session:
        result = service.snooze(
            session, settings=cli.settings, alert_id=alert_id, duration=delta, actor=cli.actor
        )
    if cli.json_output:
        output.emit_json(result)
    else:
        until = f"{result.snoozed_until:%Y-%m-%d %H:%M} UTC" if result.snoozed_until else "-"
        output.success(f"alert {result.id} ({result.rule}) snoozed until {until}")


def resolve(
    ctx: typer.Context,
    alert_id: Annotated[int, typer.Argument(help="Alert id (see `modeldeck alerts`).")],
) -> None:
    """Mark an alert resolved (a new one opens if the problem persists)."""
    cli = context.get(ctx)
    with cli.session() as session:
        result = service.resolve_by(
            session, settings=cli.settings, alert_id=alert_id, actor=cli.actor
        )
    if cli.json_output:
        output.emit_json(result)
    else:
        output.success(f"alert {result.id} ({result.rule}) resolved")


def register_commands(app: typer.Typer) -> None:
    app.command("alerts")(alerts)
    app.command("snooze")(snooze)
    app.command("resolve")(resolve)
