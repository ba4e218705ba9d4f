"""`modeldeck outbox` (notifications waiting or given up) and `outbox requeue ID…|--all-dead`."""

from __future__ import annotations

from typing import Annotated

import typer

from modeldeck.core.cli import context, output
from modeldeck.core.notify import admin
from modeldeck.core.notify.models import OutboxStatus

outbox_app = typer.Typer(
    help="Notifications waiting for delivery or given up (dead letters).",
    invoke_without_command=True,
)


@outbox_app.callback()
def outbox(
    ctx: typer.Context,
    status: Annotated[
        OutboxStatus | None,
        typer.Option("--status", "-s", help="Only this state (default: pending and dead)."),
    ] = None,
    channel: Annotated[
        str | None, typer.Option("--channel", help="Only this channel: slack, webhook:<name>.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 200,
) -> None:
    """List notifications still waiting or given up, oldest first, with their last error.

    Example: modeldeck outbox --status dead
    """
    if ctx.invoked_subcommand is not None:
        return
    cli = context.get(ctx)
    statuses = [status] if status else [OutboxStatus.pending, OutboxStatus.dead]
    with cli.session() as session:
        rows = admin.list_messages(session, statuses=statuses, channel=channel, limit=limit)
    if cli.json_output:
        output.emit_json(rows)
        return
    output.table(
        "outbox",
        ["id", "status", "channel", "kind", "about", "attempts", "queued", "next try", "error"],
        [
            (
                m.id,
                m.status,
                m.channel,
                m.kind,
                m.about,
                m.attempts,
                output.ago(m.created_at),
                f"{m.next_attempt_at:%m-%d %H:%M:%S}" if m.status == OutboxStatus.pending else "",
                m.error,
            )
            for m in rows
        ],
        empty="no notification is waiting or dead",
    )


@outbox_app.command("requeue")
def requeue(
    ctx: typer.Context,
    message_ids: Annotated[
        list[int] | None, typer.Argument(help="Ids of dead messages (see `modeldeck outbox`).")
    ] = None,
    all_dead: Annotated[
        bool, typer.Option("--all-dead", help="Requeue every dead message.")
    ] = False,
) -> None:
    """Deliver dead letters again (after fixing the cause: token, channel, webhook URL).

    Example: modeldeck outbox requeue --all-dead
    """
    cli = context.get(ctx)
    with cli.session() as session:
        ids = admin.requeue(
            session, actor=cli.actor, message_ids=message_ids or [], all_dead=all_dead
        )
    if cli.json_output:
        output.emit_json({"requeued": ids})
    elif ids:
        output.success(f"requeued {len(ids)} message(s): {', '.join(map(str, ids))}")
    else:
        output.success("no dead message to requeue")


def register_commands(app: typer.Typer) -> None:
    app.add_typer(outbox_app, name="outbox")
