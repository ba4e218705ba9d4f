"""`modeldeck promote`, `rollback`, `approve`, `reject`: the rollout verbs.

`--wait` follows a rollout to its end by calling `advance` every `--interval` seconds; exit
code 1 when it failed (or did not finish within `--timeout`), so scripts can stop a pipeline.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from sqlmodel import Session

from modeldeck.core.cli import context, output
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import DeploymentPublic, DeploymentState

S = DeploymentState
Reason = Annotated[str, typer.Option("--reason", "-r", help="Why (shown to approvers).")]
Wait = Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the rollout to its end.")]
Timeout = Annotated[float, typer.Option(min=1, help="Seconds --wait waits at most.")]
Interval = Annotated[float, typer.Option(min=0.05, help="Seconds between checks with --wait.")]
Key = Annotated[
    str | None,
    typer.Option("--idempotency-key", help="Retries with the same key return the first result."),
]


def promote(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version to run.")],
    to: Annotated[str, typer.Option("--to", "-t", help="Environment (name or alias).")],
    reason: Reason = "",
    wait: Wait = False,
    timeout: Timeout = 600,
    interval: Interval = 2,
    idempotency_key: Key = None,
) -> None:
    """Promote a version to an environment (it may wait for approval).

    Example: modeldeck promote fraud-detector 1.3.0 --to prod -r "better recall" --wait
    """
    cli = context.get(ctx)
    with cli.session() as session:
        dep = rollouts.promote(
            session,
            settings=cli.settings,
            model=model,
            version=version,
            environment=to,
            actor=cli.actor,
            reason=reason,
            idempotency_key=idempotency_key,
        )
        if wait:
            dep = _follow(session, cli, dep, timeout=timeout, interval=interval)
    _report(cli, dep, waited=wait)


def rollback(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    env: Annotated[str, typer.Option("--env", "-e", help="Environment (name or alias).")],
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="A version that ran there before (default: the previous good one, which "
            "skips approvals; any other follows the approval policy).",
        ),
    ] = None,
    reason: Reason = "",
    wait: Wait = False,
    timeout: Timeout = 600,
    interval: Interval = 2,
    idempotency_key: Key = None,
) -> None:
    """Roll back to the previous good version at once, or to any version from the history
    (--to); a --to other than the previous good version needs the environment's approvals."""
    cli = context.get(ctx)
    with cli.session() as session:
        dep = rollouts.rollback(
            session,
            settings=cli.settings,
            model=model,
            environment=env,
            actor=cli.actor,
            to_version=to,
            reason=reason,
            idempotency_key=idempotency_key,
        )
        if wait:
            dep = _follow(session, cli, dep, timeout=timeout, interval=interval)
    _report(cli, dep, waited=wait)


def approve(
    ctx: typer.Context,
    deployment_id: Annotated[int, typer.Argument(help="Deployment id (see `history`).", min=1)],
    comment: Annotated[str, typer.Option("--comment", "-m", help="Note for the log.")] = "",
    wait: Wait = False,
    timeout: Timeout = 600,
    interval: Interval = 2,
) -> None:
    """Approve a rollout awaiting approval (not your own: two-person rule)."""
    cli = context.get(ctx)
    with cli.session() as session:
        dep = rollouts.approve(
            session,
            settings=cli.settings,
            deployment_id=deployment_id,
            actor=cli.actor,
            comment=comment,
        )
        if wait:
            dep = _follow(session, cli, dep, timeout=timeout, interval=interval)
    _report(cli, dep, waited=wait)


def reject(
    ctx: typer.Context,
    deployment_id: Annotated[int, typer.Argument(help="Deployment id.", min=1)],
    comment: Annotated[str, typer.Option("--comment", "-m", help="Why.")] = "",
) -> None:
    """Reject a rollout awaiting approval (or withdraw your own request)."""
    cli = context.get(ctx)
    with cli.session() as session:
        dep = rollouts.reject(
            session,
            settings=cli.settings,
            deployment_id=deployment_id,
            actor=cli.actor,
            comment=comment,
        )
    _report(cli, dep)


def _follow(
    session: Session,
    cli: context.CliContext,
    dep: DeploymentPublic,
    *,
    timeout: float,
    interval: float,
) -> DeploymentPublic:
    """Poll `advance` until the rollout ends (or needs a person: awaiting approval)."""
    deadline = time.monotonic() + timeout
    while dep.state in (S.pending, S.rolling_out) and time.monotonic() < deadline:
        time.sleep(interval)
        dep = rollouts.advance(session, settings=cli.settings, deployment_id=dep.id)
        if not cli.json_output:
            output.console.print(f"[dim]… {dep.state}: {dep.message}[/dim]")
    return dep


def _report(cli: context.CliContext, dep: DeploymentPublic, *, waited: bool = False) -> None:
    """One line for people (or JSON); exit 1 for a failed rollout, or one --wait gave up on."""
    if cli.json_output:
        output.emit_json(dep)
    else:
        what = f"{dep.model} {dep.version} → {dep.environment} (deployment #{dep.id})"
        if dep.state == S.active:
            output.success(f"{what}: active")
        elif dep.state == S.awaiting_approval:
            given = sum(1 for a in dep.approvals if a.decision == "approve")
            output.console.print(
                f"[yellow]…[/yellow] {what}: awaiting approval "
                f"({given} of {dep.approvals_required}); an approver runs "
                f"`modeldeck approve {dep.id}`"
            )
        elif dep.state in (S.pending, S.rolling_out):
            output.console.print(
                f"[yellow]…[/yellow] {what}: {dep.state} {dep.message}"
                f" (follow with `modeldeck history {dep.model}`)"
            )
        elif dep.state == S.rejected:
            output.console.print(f"[yellow]✗[/yellow] {what}: {dep.message}")
        else:
            output.error(f"{what}: {dep.state}: {dep.message}")
    if dep.state == S.failed or (waited and dep.state in (S.pending, S.rolling_out)):
        raise typer.Exit(1)


def register_commands(app: typer.Typer) -> None:
    app.command("promote")(promote)
    app.command("rollback")(rollback)
    app.command("approve")(approve)
    app.command("reject")(reject)
