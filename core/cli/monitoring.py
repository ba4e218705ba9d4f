"""`modeldeck check MODEL --env ENV` and `modeldeck ingest FILE`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from sqlmodel import Session

from modeldeck.core.cli import context, output
from modeldeck.core.errors import InvalidInput
from modeldeck.core.monitoring import flows, service, store
from modeldeck.core.monitoring.models import (
    CheckKind,
    CheckResult,
    CheckResultPublic,
    CheckStatus,
)

COLOURS = {
    CheckStatus.ok: "green",
    CheckStatus.warn: "yellow",
    CheckStatus.fail: "red",
    CheckStatus.error: "red",
    CheckStatus.no_data: "dim",
}


class RunnableKind(StrEnum):
    """The kinds `check` runs (service.DATA_KINDS); hardware findings come from the scrape."""

    drift = "drift"
    quality = "quality"
    decay = "decay"


class IngestKind(StrEnum):
    predictions = "predictions"
    labels = "labels"
    reference = "reference"


def check(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    env: Annotated[str, typer.Option("--env", "-e", help="Environment (or alias).")],
    kind: Annotated[
        list[RunnableKind] | None,
        typer.Option(
            "--kind", "-k", help="Only these checks (repeatable); default drift, quality, decay."
        ),
    ] = None,
    window_end: Annotated[
        datetime | None, typer.Option(help="End of the window (ISO 8601, UTC); default now.")
    ] = None,
) -> None:
    """Run drift, data-quality and decay checks on the version running in ENV now, store
    the results and alert on them as the scheduler does. Exit code 1 when a check fails or
    errors (usable as a gate in scripts).

    Example: modeldeck check fraud-detector --env production
    """
    cli = context.get(ctx)
    kinds = tuple(CheckKind(k) for k in kind) if kind else service.DATA_KINDS
    with cli.session() as session:
        deployment = service.active_deployment(
            session, settings=cli.settings, model=model, environment=env
        )
        assert deployment.id is not None
        results = _run_with_progress(
            session, cli, deployment.id, kinds, window_end, quiet=cli.json_output
        )
        public = service.to_public(session, results)
    if cli.json_output:
        output.emit_json(public)
    else:
        _print(public)
        output.console.print(
            f"[dim]reports: GET /api/v1/reports/<id>; details: "
            f"modeldeck --json check {escape(model)} --env {escape(env)}[/dim]"
        )
    if any(r.status in (CheckStatus.fail, CheckStatus.error) for r in results):
        raise typer.Exit(1)


def _print(results: list[CheckResultPublic]) -> None:
    first = results[0]
    table = Table(
        title=f"{first.model} {first.version} in {first.environment}, window "
        f"{first.window_start:%Y-%m-%d %H:%M}–{first.window_end:%H:%M} UTC",
        title_justify="left",
        header_style="bold",
    )
    for name in ("id", "check", "status", "score", "rows", "ms", "summary"):
        table.add_column(name)
    for r in results:
        table.add_row(
            str(r.id),
            r.kind.value,
            Text(r.status.value, style=COLOURS[r.status]),
            f"{r.score:.3g}" if r.score is not None else "-",
            str(r.rows),
            str(r.duration_ms),
            Text(r.message),
        )
    output.console.print(table)


def _run_with_progress(
    session: Session,
    cli: context.CliContext,
    deployment_id: int,
    kinds: tuple[CheckKind, ...],
    window_end: datetime | None,
    quiet: bool,
) -> list[CheckResult]:
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=output.err_console,
        transient=True,
        disable=quiet,
    )
    with progress:
        task = progress.add_task("reading the window", total=len(kinds))

        def step(kind: CheckKind, result: CheckResult | None) -> None:
            if result is None:
                progress.update(task, description=f"{kind} check")
            else:
                progress.advance(task)

        return flows.check_and_alert(
            session,
            settings=cli.settings,
            deployment_id=deployment_id,
            window_end=window_end,
            kinds=kinds,
            progress=step,
        )


def read_file(path: Path) -> pa.Table:
    """A CSV, Parquet or Arrow/Feather file by its extension."""
    import pyarrow.csv as pacsv
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    try:
        if suffix in (".csv", ".csv.gz"):
            return pacsv.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pq.read_table(path, **store.VERIFY)  # pages with a checksum are verified
        if suffix in (".arrow", ".feather", ".ipc"):
            return feather.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(
            f"{path}: not a readable {suffix.lstrip('.')} file: {store.read_problem(exc)}"
        ) from None
    raise InvalidInput(
        f"{path}: unknown file type {suffix or '(none)'}",
        hint="use .csv, .parquet or .arrow/.feather",
    )


def ingest(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV, Parquet or Arrow file.")],
    kind: Annotated[IngestKind, typer.Option(help="What the file holds.")] = IngestKind.predictions,
    model: Annotated[str, typer.Option("--model", "-m", help="Model name.")] = "",
    version: Annotated[
        str | None, typer.Option("--version", "-v", help="Version (predictions, reference).")
    ] = None,
    env: Annotated[
        str | None, typer.Option("--env", "-e", help="Environment (predictions).")
    ] = None,
) -> None:
    """Ingest predictions, labels or a version's reference data from a file.

    Predictions: prediction_id, timestamp, prediction, optional proba_<class>, one column per
    feature. Labels: prediction_id, label. Reference: features, optional prediction, label,
    proba_<class>.

    Example: modeldeck ingest batch.parquet --model fraud-detector --version 1.3.0 --env prod
    """
    cli = context.get(ctx)
    if not model:
        raise InvalidInput("--model is required")
    needed = {
        IngestKind.predictions: ("--version", "--env"),
        IngestKind.labels: (),
        IngestKind.reference: ("--version",),
    }[kind]
    given = {"--version": version, "--env": env}
    missing = [flag for flag in needed if not given[flag]]
    if missing:
        raise InvalidInput(f"{kind} need {' and '.join(missing)}")
    table = read_file(file)
    with cli.session() as session:
        if kind == IngestKind.reference:
            assert version is not None
            profile = service.set_reference(
                session,
                settings=cli.settings,
                model=model,
                version=version,
                frame=table,
                actor=cli.actor,
            )
            if cli.json_output:
                output.emit_json(profile)
            else:
                output.success(
                    f"reference of {model} {version} set: {profile.rows} rows, "
                    f"{len(profile.columns)} columns, sha256 {profile.hash[:12]}"
                )
            return
        if kind == IngestKind.labels:
            result = service.ingest_labels(
                session, settings=cli.settings, model=model, frame=table, actor=cli.actor
            )
        else:
            assert version is not None and env is not None
            result = service.ingest_predictions(
                session,
                settings=cli.settings,
                model=model,
                version=version,
                environment=env,
                frame=table,
                actor=cli.actor,
            )
    if cli.json_output:
        output.emit_json(result)
    else:
        where = f" of {result.version} in {result.environment}" if result.version else ""
        output.success(
            f"stored {result.rows:,} {kind} for {result.model}{where} "
            f"({len(result.files)} file(s), {result.rows_per_second:,.0f} rows/s)"
        )


def register_commands(app: typer.Typer) -> None:
    app.command("check")(check)
    app.command("ingest")(ingest)
