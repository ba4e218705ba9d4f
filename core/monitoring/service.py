"""Monitoring's public service API: ingestion, reference data, checks and their results.

Other domains (alerts, scheduler, bot, dashboard) call these functions; REST and the CLI are
thin over them. Implementations live in ingest.py, reference.py and runner.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
import pyarrow as pa
from sqlalchemy import func
from sqlmodel import Session, col, select

from modeldeck.core import db
from modeldeck.core.auth.models import Actor
from modeldeck.core.clock import Clock, as_utc, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import NotFound
from modeldeck.core.monitoring import frames
from modeldeck.core.monitoring import ingest as _ingest
from modeldeck.core.monitoring import reference as _reference
from modeldeck.core.monitoring import runner as _runner
from modeldeck.core.monitoring.models import (
    CheckKind,
    CheckResult,
    CheckResultPublic,
    CheckResultsPublic,
    CheckStatus,
    ColumnKind,
    IngestResult,
    ReferenceProfilePublic,
)
from modeldeck.core.monitoring.runner import Progress
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import Model, ModelVersion
from modeldeck.core.rollouts.models import Deployment, DeploymentState

DATA_KINDS = _runner.DATA_KINDS


def ingest_predictions(
    session: Session,
    *,
    settings: Settings,
    model: str,
    version: str,
    environment: str,
    frame: pa.Table | pd.DataFrame,
    actor: Actor,
    clock: Clock = utcnow,
) -> IngestResult:
    """Validate a prediction batch against the version's reference and store it (all or
    nothing). Raises NotFound, InvalidInput (422) or Conflict (ids already stored)."""
    return _ingest.ingest_predictions(
        session,
        settings=settings,
        model=model,
        version=version,
        environment=environment,
        frame=frame,
        actor=actor,
        clock=clock,
    )


def ingest_labels(
    session: Session,
    *,
    settings: Settings,
    model: str,
    frame: pa.Table | pd.DataFrame,
    actor: Actor,
    clock: Clock = utcnow,
) -> IngestResult:
    """Store ground truth (prediction_id, label) for predictions already ingested."""
    return _ingest.ingest_labels(
        session, settings=settings, model=model, frame=frame, actor=actor, clock=clock
    )


def set_reference(
    session: Session,
    *,
    settings: Settings,
    model: str,
    version: str,
    frame: pa.Table | pd.DataFrame,
    actor: Actor,
    clock: Clock = utcnow,
    column_types: dict[str, ColumnKind] | None = None,
) -> ReferenceProfilePublic:
    """Set a version's reference data (features, optional prediction, label, proba_<class>)
    and compute its profile once; audited. `column_types` overrides evidently's inference."""
    model_row = registry.get_model(session, model)
    version_row = registry.get_version(session, model_row, version)
    row = _reference.set_reference(
        session,
        settings=settings,
        model=model_row,
        version=version_row,
        table=frames.to_arrow(frame),
        actor=actor,
        clock=clock,
        column_types=column_types,
    )
    return _reference.to_public(model_row, version_row, row)


def get_reference(session: Session, *, model: str, version: str) -> ReferenceProfilePublic:
    model_row = registry.get_model(session, model)
    return _reference.get_public(
        session, model_row, registry.get_version(session, model_row, version)
    )


def run_check(
    session: Session,
    *,
    settings: Settings,
    deployment_id: int,
    kind: CheckKind,
    window_end: datetime | None = None,
    clock: Clock = utcnow,
) -> CheckResult:
    """Run one check and store its result (never alerts). Errors become status=error."""
    return _runner.run_check(
        session,
        settings=settings,
        deployment_id=deployment_id,
        kind=kind,
        window_end=window_end,
        clock=clock,
    )


def run_checks(
    session: Session,
    *,
    settings: Settings,
    deployment_id: int,
    window_end: datetime | None = None,
    clock: Clock = utcnow,
    kinds: tuple[CheckKind, ...] = DATA_KINDS,
    progress: Progress | None = None,
) -> list[CheckResult]:
    """Drift, quality and decay over one window (read once); stored and returned."""
    return _runner.run_checks(
        session,
        settings=settings,
        deployment_id=deployment_id,
        window_end=window_end,
        clock=clock,
        kinds=kinds,
        progress=progress,
    )


def active_deployment(
    session: Session, *, settings: Settings, model: str, environment: str
) -> Deployment:
    """The deployment serving `model` in `environment` now (what `check MODEL --env` checks)."""
    model_row = registry.get_model(session, model)
    env = environments.get(session, environments.resolve_name(settings, environment))
    row = session.exec(
        select(Deployment).where(
            Deployment.model_id == model_row.id,
            Deployment.environment_id == env.id,
            Deployment.state == DeploymentState.active,
        )
    ).first()
    if row is None:
        raise NotFound(
            f"{model_row.name} has no active deployment in {env.name}",
            hint=f"`modeldeck history {model_row.name}` shows its deployments",
        )
    return row


def get_check(session: Session, check_id: int) -> CheckResult:
    row = db.get_by_id(session, CheckResult, check_id)
    if row is None:
        raise NotFound(f"no check result with id {check_id}")
    return row


def list_checks(
    session: Session,
    *,
    model: str | None = None,
    environment: str | None = None,
    kind: CheckKind | None = None,
    status: CheckStatus | None = None,
    deployment_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> CheckResultsPublic:
    """Check results newest first; `since`/`until` bound the window end."""
    query = select(CheckResult).join(
        Deployment, col(Deployment.id) == col(CheckResult.deployment_id)
    )
    if model:
        query = query.where(Deployment.model_id == registry.get_model(session, model).id)
    if environment:
        env = session.exec(select(Environment).where(Environment.name == environment)).first()
        if env is None:
            raise NotFound(f"no environment named {environment!r}")
        query = query.where(Deployment.environment_id == env.id)
    if kind:
        query = query.where(CheckResult.kind == kind)
    if status:
        query = query.where(CheckResult.status == status)
    if deployment_id is not None:
        query = query.where(CheckResult.deployment_id == deployment_id)
    if since:
        query = query.where(CheckResult.window_end >= since)
    if until:
        query = query.where(CheckResult.window_end <= until)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(CheckResult.window_end).desc(), col(CheckResult.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return CheckResultsPublic(data=to_public(session, rows), count=total)


def to_public(session: Session, rows: Sequence[CheckResult]) -> list[CheckResultPublic]:
    """Results with the model, version and environment names attached (in bulk)."""
    if not rows:
        return []
    deps = {
        d.id: d
        for d in session.exec(
            select(Deployment).where(col(Deployment.id).in_({r.deployment_id for r in rows}))
        ).all()
    }
    models = dict(
        session.exec(
            select(Model.id, Model.name).where(
                col(Model.id).in_({d.model_id for d in deps.values()})
            )
        ).all()
    )
    versions = dict(
        session.exec(
            select(ModelVersion.id, ModelVersion.version).where(
                col(ModelVersion.id).in_({d.version_id for d in deps.values()})
            )
        ).all()
    )
    envs = dict(
        session.exec(
            select(Environment.id, Environment.name).where(
                col(Environment.id).in_({d.environment_id for d in deps.values()})
            )
        ).all()
    )
    out = []
    for r in rows:
        dep = deps[r.deployment_id]
        assert r.id is not None
        out.append(
            CheckResultPublic(
                id=r.id,
                deployment_id=r.deployment_id,
                model=models[dep.model_id],
                version=versions[dep.version_id],
                environment=envs[dep.environment_id],
                kind=r.kind,
                window_start=as_utc(r.window_start),
                window_end=as_utc(r.window_end),
                status=r.status,
                score=r.score,
                details=r.details,
                reference_hash=r.reference_hash,
                rows=r.rows,
                duration_ms=r.duration_ms,
                message=r.message,
                created_at=as_utc(r.created_at),
            )
        )
    return out
