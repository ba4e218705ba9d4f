"""`modeldeck status` and `history`: what runs where, and what ran before."""

from __future__ import annotations

from typing import Annotated

import typer

from modeldeck.core.cli import context, output
from modeldeck.core.config import config_path
from modeldeck.core.rollouts import queries


def status(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
) -> None:
    """Show every model × environment: running version, since when, rollouts in flight.

    Example: modeldeck status fraud-detector
    """
    cli = context.get(ctx)
    with cli.session() as session:
        rows = queries.status(session, model=model)
    if cli.json_output:
        output.emit_json(rows)
        return
    if cli.settings.environments:
        empty = "no models yet (try `modeldeck register` or `modeldeck demo`)"
    else:  # models without environments have nowhere to run: no rows either
        file = config_path(cli.config_path) or "modeldeck.yaml"
        empty = (
            f"no environments configured: add `clusters:` and `environments:` to {file} "
            "(see deploy/modeldeck.example.yaml)"
        )
    output.table(
        "status",
        ["model", "environment", "version", "since", "by", "in flight"],
        [
            (
                r.model,
                r.environment,
                r.version,
                output.ago(r.since),
                r.promoted_by,
                f"{r.in_flight.version} ({r.in_flight.state})" if r.in_flight else None,
            )
            for r in rows
        ],
        empty=empty,
    )


def history(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    env: Annotated[str | None, typer.Option("--env", "-e", help="Only this environment.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 20,
) -> None:
    """Deployment history of a model, newest first: who moved it, from which version, why.

    Example: modeldeck history fraud-detector --env production
    """
    cli = context.get(ctx)
    with cli.session() as session:
        result = queries.history(session, model=model, environment=env, limit=limit)
    if cli.json_output:
        output.emit_json(result)
        return
    output.table(
        f"{model} history",
        ["id", "environment", "version", "kind", "state", "by", "via", "started", "reason"],
        [
            (
                d.id,
                d.environment,
                d.version,
                d.kind,
                d.state,
                d.requested_by,
                d.requested_via,
                output.ago(d.started_at),
                d.reason or d.message,
            )
            for d in result.data
        ],
        empty="never deployed",
    )


def register_commands(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("history")(history)
