"""REST: ingestion (JSON or Parquet/Arrow/CSV upload), reference data, checks, reports.

Ingestion endpoints read the raw body themselves so one path takes both JSON and files; the
API's body limit (settings.api.max_body_bytes) answers 413 before anything is parsed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from modeldeck.core.api.deps import ClockDep, Deployer, SessionDep, SettingsDep, Viewer
from modeldeck.core.errors import InvalidInput
from modeldeck.core.monitoring import flows, frames, reports, service
from modeldeck.core.monitoring.models import (
    CheckKind,
    CheckResultPublic,
    CheckResultsPublic,
    CheckStatus,
    ColumnKind,
    IngestResult,
    LabelBatch,
    PredictionBatch,
    ReferenceProfilePublic,
    RunChecksRequest,
)

router = APIRouter(tags=["monitoring"])
M = TypeVar("M", bound=BaseModel)
_FILES = {
    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
    "application/vnd.apache.arrow.file": {"schema": {"type": "string", "format": "binary"}},
    "application/vnd.apache.arrow.stream": {"schema": {"type": "string", "format": "binary"}},
    "text/csv": {"schema": {"type": "string"}},
}


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its $defs inlined (OpenAPI resolves refs document-wide)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.removeprefix("#/$defs/")]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def _body(model: type[BaseModel]) -> dict[str, Any]:
    content = {"application/json": {"schema": _inline(model.model_json_schema())}, **_FILES}
    return {"requestBody": {"required": True, "content": content}}


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() in (
        "application/json",
        "",
    )


def _parse(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


async def _upload(request: Request) -> Any:
    """The uploaded file: the raw body, or the `file` part of a multipart form."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        part = form.get("file")
        if part is None or isinstance(part, str):
            raise InvalidInput("the multipart form has no file part named 'file'")
        return frames.read_upload(await part.read(), part.content_type)
    return frames.read_upload(await request.body(), request.headers.get("content-type"))


def _required(value: str | None, name: str) -> str:
    if not value:
        raise InvalidInput(
            f"query parameter {name!r} is required for a file upload", hint=f"e.g. ?{name}=..."
        )
    return value


@router.post(
    "/predictions",
    response_model=IngestResult,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_body(PredictionBatch),
)
async def ingest_predictions(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    actor: Deployer,
    clock: ClockDep,
    model: str | None = None,
    version: str | None = None,
    environment: str | None = None,
) -> IngestResult:
    """Store predictions: a JSON batch, or a Parquet/Arrow/CSV file with columns
    prediction_id, timestamp, prediction, proba_<class>… and one per feature (model, version
    and environment then come from the query)."""
    if _is_json(request):
        body = await request.body()
        batch = await run_in_threadpool(_parse, PredictionBatch, body)
        table = await run_in_threadpool(frames.prediction_batch_table, batch)
        model, version, environment = batch.model, batch.version, batch.environment
    else:
        model, version = _required(model, "model"), _required(version, "version")
        environment = _required(environment, "environment")
        table = await _upload(request)
    call: Callable[[], IngestResult] = lambda: service.ingest_predictions(  # noqa: E731
        session,
        settings=settings,
        model=model,
        version=version,
        environment=environment,
        frame=table,
        actor=actor,
        clock=clock,
    )
    return await run_in_threadpool(call)


@router.post(
    "/labels",
    response_model=IngestResult,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_body(LabelBatch),
)
async def ingest_labels(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    actor: Deployer,
    clock: ClockDep,
    model: str | None = None,
) -> IngestResult:
    """Store ground truth by prediction id (JSON batch, or a file with prediction_id, label)."""
    if _is_json(request):
        body = await request.body()
        labels = await run_in_threadpool(_parse, LabelBatch, body)
        table = await run_in_threadpool(frames.label_batch_table, labels)
        model = labels.model
    else:
        model = _required(model, "model")
        table = await _upload(request)
    return await run_in_threadpool(
        lambda: service.ingest_labels(
            session, settings=settings, model=model, frame=table, actor=actor, clock=clock
        )
    )


@router.post(
    "/models/{name}/versions/{version}/reference",
    response_model=ReferenceProfilePublic,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={"requestBody": {"required": True, "content": _FILES}},
)
async def set_reference(
    name: str,
    version: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    actor: Deployer,
    clock: ClockDep,
    categorical: list[str] | None = Query(None, description="force these columns categorical"),
    numerical: list[str] | None = Query(None, description="force these columns numerical"),
) -> ReferenceProfilePublic:
    """Upload a version's reference data (Parquet/Arrow/CSV: features, optional prediction,
    label and proba_<class> columns); its profile is computed once and reused by checks."""
    table = await _upload(request)
    types = dict.fromkeys(categorical or [], ColumnKind.categorical)
    types |= dict.fromkeys(numerical or [], ColumnKind.numerical)
    return await run_in_threadpool(
        lambda: service.set_reference(
            session,
            settings=settings,
            model=name,
            version=version,
            frame=table,
            actor=actor,
            clock=clock,
            column_types=types or None,
        )
    )


@router.get("/models/{name}/versions/{version}/reference", response_model=ReferenceProfilePublic)
def get_reference(
    name: str, version: str, session: SessionDep, _: Viewer
) -> ReferenceProfilePublic:
    return service.get_reference(session, model=name, version=version)


@router.get("/checks", response_model=CheckResultsPublic)
def list_checks(
    session: SessionDep,
    _: Viewer,
    model: str | None = None,
    environment: str | None = None,
    kind: CheckKind | None = None,
    status: CheckStatus | None = None,
    deployment_id: int | None = None,
    since: datetime | None = Query(None, description="window end at or after (ISO 8601)"),
    until: datetime | None = Query(None, description="window end at or before (ISO 8601)"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> CheckResultsPublic:
    return service.list_checks(
        session,
        model=model,
        environment=environment,
        kind=kind,
        status=status,
        deployment_id=deployment_id,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )


@router.get("/checks/{check_id}", response_model=CheckResultPublic)
def get_check(check_id: int, session: SessionDep, _: Viewer) -> CheckResultPublic:
    return service.to_public(session, [service.get_check(session, check_id)])[0]


@router.post(
    "/checks/run", response_model=list[CheckResultPublic], status_code=status.HTTP_201_CREATED
)
def run_checks(
    body: RunChecksRequest, session: SessionDep, settings: SettingsDep, _: Deployer, clock: ClockDep
) -> list[CheckResultPublic]:
    """Run checks now on the model's active deployment in the environment, through the same
    flow as the scheduler: results are stored, alerted on, and at trust level `rollback` a
    failure rolls back."""
    deployment = service.active_deployment(
        session, settings=settings, model=body.model, environment=body.environment
    )
    assert deployment.id is not None
    results = flows.check_and_alert(
        session,
        settings=settings,
        deployment_id=deployment.id,
        window_end=body.window_end,
        clock=clock,
        kinds=tuple(body.kinds),
    )
    return service.to_public(session, results)


@router.get("/reports/{check_id}", response_class=HTMLResponse)
def get_report(
    check_id: int, session: SessionDep, settings: SettingsDep, _: Viewer
) -> HTMLResponse:
    """The evidently HTML report of a check, built on first request from the stored window
    and reference, then kept beside the data."""
    return HTMLResponse(reports.html(session, settings=settings, check_id=check_id))
