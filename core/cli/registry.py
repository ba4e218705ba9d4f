"""`modeldeck register`, `models list`, `versions`."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import typer

from modeldeck.core.cli import context, output
from modeldeck.core.errors import InvalidInput
from modeldeck.core.registry import service
from modeldeck.core.registry.models import ModelCreate, ModelVersionCreate, Stage, TaskType

models_app = typer.Typer(help="List registered models.", no_args_is_help=True)


def parse_pairs(pairs: list[str], *, numeric: bool, option: str) -> dict[str, Any]:
    """Parse repeated `key=value` options; numbers must be finite for metrics."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"{option} {pair!r}: expected key=value, e.g. {option} auc=0.91")
        key = key.strip()
        if numeric:
            try:
                value: Any = float(raw)
            except ValueError:
                raise InvalidInput(f"{option} {key}: {raw!r} is not a number") from None
            if not math.isfinite(value):
                raise InvalidInput(f"{option} {key}: {raw!r} is not a finite number")
        else:
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw
        out[key] = value
    return out


def register(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name (slug), created on first use.")],
    version: Annotated[str, typer.Argument(help="Version string, e.g. 1.4.0 or 2026-11-23.")],
    image: Annotated[
        str, typer.Option(help="Container image that serves this version (Kubernetes deploys it).")
    ] = "",
    artifact_uri: Annotated[
        str, typer.Option(help="Where the trained artifact lives (KServe deploys it).")
    ] = "",
    reference_data_uri: Annotated[
        str | None, typer.Option(help="Reference (training/validation) data for drift checks.")
    ] = None,
    fingerprint: Annotated[
        str | None,
        typer.Option(
            "--data-fingerprint", help="Training-data fingerprint (hash or dataset version)."
        ),
    ] = None,
    git_commit: Annotated[str | None, typer.Option(help="Commit the model was built from.")] = None,
    metrics: Annotated[
        list[str] | None,
        typer.Option("--metrics", "-m", help="Training/validation metric, repeatable: -m auc=0.91"),
    ] = None,
    params: Annotated[
        list[str] | None,
        typer.Option(
            "--params",
            "-p",
            help="Hyper-parameter, repeatable; JSON values are parsed: -p max_depth=8",
        ),
    ] = None,
    stage: Annotated[Stage, typer.Option(help="Stage label.")] = Stage.none,
    description: Annotated[str, typer.Option(help="Model description (new models).")] = "",
    owner: Annotated[str, typer.Option(help="Owner (new models).")] = "",
    team: Annotated[str, typer.Option(help="Team (new models).")] = "",
    task_type: Annotated[
        TaskType, typer.Option(help="Task type (new models).")
    ] = TaskType.classification,
) -> None:
    """Register a model version with its lineage (the model is created on first use).

    It needs --image, --artifact-uri or both: what a promote deploys. Versions are
    immutable: registering the same version twice is refused.

    Example: modeldeck register fraud-detector 1.4.0 --image ghcr.io/acme/fraud:1.4.0
    --artifact-uri s3://models/fraud/1.4.0 -m auc=0.91 -m f1=0.84 -p max_depth=8
    """
    cli = context.get(ctx)
    new_model = ModelCreate(  # first: problems are reported in the order they are typed
        name=model, description=description, owner=owner, team=team, task_type=task_type
    )
    data = ModelVersionCreate(
        version=version,
        image=image,
        artifact_uri=artifact_uri,
        reference_data_uri=reference_data_uri,
        training_data_fingerprint=fingerprint,
        git_commit=git_commit,
        metrics=parse_pairs(metrics or [], numeric=True, option="--metrics"),
        params=parse_pairs(params or [], numeric=False, option="--params"),
        stage=stage,
    )
    with cli.session() as session:
        result = service.register_version(
            session, model_name=model, data=data, actor=cli.actor, create_model_if_missing=new_model
        )
    if cli.json_output:
        output.emit_json(result)
    else:
        output.success(f"registered {result.model} {result.version}")


@models_app.command("list")
def list_models(
    ctx: typer.Context,
    team: Annotated[str | None, typer.Option(help="Only this team's models.")] = None,
) -> None:
    """List registered models.

    Example: modeldeck models list --team risk
    """
    cli = context.get(ctx)
    with cli.session() as session:
        result = service.list_models(session, team=team)
    if cli.json_output:
        output.emit_json(result)
        return
    output.table(
        "models",
        ["name", "task", "team", "owner", "description"],
        [(m.name, m.task_type, m.team, m.owner, m.description) for m in result.data],
        empty="none registered yet (try `modeldeck register` or `modeldeck demo`)",
    )


def versions(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
) -> None:
    """List a model's versions with their lineage, newest first.

    Example: modeldeck --json versions fraud-detector
    """
    cli = context.get(ctx)
    with cli.session() as session:
        result = service.list_versions(session, model)
    if cli.json_output:
        output.emit_json(result)
        return
    output.table(
        f"{model} versions",
        ["version", "stage", "image", "metrics", "fingerprint", "registered"],
        [
            (
                v.version,
                v.stage,
                v.image,
                " ".join(f"{k}={val:g}" for k, val in v.metrics.items()),
                v.training_data_fingerprint,
                output.ago(v.created_at),
            )
            for v in result.data
        ],
        empty="no versions yet",
    )


def register_commands(app: typer.Typer) -> None:
    app.command("register")(register)
    app.command("versions")(versions)
    app.add_typer(models_app, name="models")
