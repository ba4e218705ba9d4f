"""Read side of the check history: time series for the decay, data-quality and drift pages.

Long ranges are bucketed in SQL (see core/timeseries.py): per deployment and bucket the database
returns the number of checks by status and the score's mean/min/max, plus the id of the newest
check in the bucket, whose per-column `details` stand for the bucket. A year of hourly checks is
then ~365 rows per deployment and ~365 small JSON documents, whatever the check frequency.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import case, func, or_
from sqlmodel import Session, col, select

from modeldeck.core.clock import as_utc
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import NotFound
from modeldeck.core.monitoring import readings
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import ModelVersion
from modeldeck.core.rollouts.models import Deployment, DeploymentKind, DeploymentState
from modeldeck.core.timeseries import bucket_seconds, epoch_bucket, from_epoch, to_utc


class DeploymentSpan(BaseModel):
    """One deployment of the model as a chart draws it: a span and a marker."""

    deployment_id: int
    version: str
    environment: str
    kind: DeploymentKind
    state: DeploymentState
    requested_by: str
    started_at: datetime
    activated_at: datetime | None
    finished_at: datetime | None


class Bucket(BaseModel):
    """The checks of one deployment in one time bucket."""

    deployment_id: int
    version: str
    at: datetime  # start of the bucket
    checks: int
    failed: int
    warned: int
    errored: int
    no_data: int
    score_mean: float | None
    score_min: float | None
    score_max: float | None
    last_id: int  # the newest check in the bucket: its details stand for the bucket
    share_drifted: float | None = None  # drift: of the newest check in the bucket


class CheckRef(BaseModel):
    """A single check, to list and to link to its report."""

    id: int
    deployment_id: int
    version: str
    kind: CheckKind
    status: CheckStatus
    window_start: datetime
    window_end: datetime
    score: float | None
    rows: int


class Series(BaseModel):
    """Everything a monitoring page draws for one model in one environment and time range."""

    model: str
    environment: str
    kind: CheckKind
    start: datetime
    end: datetime
    bucket_seconds: int
    deployments: list[DeploymentSpan]
    buckets: list[Bucket]
    columns: list[readings.ColumnReading] = []
    metrics: list[readings.MetricReading] = []
    references: dict[str, dict[str, float]] = {}  # version → metric → reference value
    recent: list[CheckRef] = []


def _environment(session: Session, name: str) -> Environment:
    env = session.exec(select(Environment).where(Environment.name == name)).first()
    if env is None:
        raise NotFound(f"no environment named {name!r}")
    return env


def deployments(
    session: Session, *, model: str, environment: str, start: datetime, end: datetime
) -> list[DeploymentSpan]:
    """Deployments of `model` in `environment` that ran during [start, end] or were requested
    in it (failed and rejected ones included, as markers), oldest first."""
    m = registry.get_model(session, model)
    env = _environment(session, environment)
    start, end = to_utc(start), to_utc(end)
    ran = (col(Deployment.activated_at) <= end) & or_(
        col(Deployment.finished_at).is_(None), col(Deployment.finished_at) >= start
    )
    asked = (col(Deployment.started_at) >= start) & (col(Deployment.started_at) <= end)
    rows = session.exec(
        select(Deployment, ModelVersion.version)
        .join(ModelVersion, col(ModelVersion.id) == Deployment.version_id)
        .where(Deployment.model_id == m.id, Deployment.environment_id == env.id, ran | asked)
        .order_by(col(Deployment.started_at), col(Deployment.id))
    ).all()
    return [
        DeploymentSpan(
            deployment_id=d.id or 0,
            version=version,
            environment=environment,
            kind=d.kind,
            state=d.state,
            requested_by=d.requested_by,
            started_at=as_utc(d.started_at),
            activated_at=as_utc(d.activated_at) if d.activated_at else None,
            finished_at=as_utc(d.finished_at) if d.finished_at else None,
        )
        for d, version in rows
    ]


def buckets(
    session: Session,
    *,
    deployment_ids: Sequence[int],
    kind: CheckKind,
    start: datetime,
    end: datetime,
    seconds: int,
    versions: dict[int, str] | None = None,
) -> list[Bucket]:
    """Checks of `kind` per deployment and bucket of `seconds`, aggregated in SQL."""
    if not deployment_ids:
        return []
    dialect = session.get_bind().dialect.name
    bucket = epoch_bucket(CheckResult.window_end, seconds, dialect).label("bucket")

    def count(status: CheckStatus) -> Any:
        return func.sum(case((col(CheckResult.status) == status, 1), else_=0))

    rows = session.exec(
        select(  # type: ignore[call-overload]
            CheckResult.deployment_id,
            bucket,
            func.count(),
            count(CheckStatus.fail),
            count(CheckStatus.warn),
            count(CheckStatus.error),
            count(CheckStatus.no_data),
            func.avg(CheckResult.score),
            func.min(CheckResult.score),
            func.max(CheckResult.score),
            func.max(CheckResult.id),
        )
        .where(
            col(CheckResult.deployment_id).in_(list(deployment_ids)),
            CheckResult.kind == kind,
            col(CheckResult.window_end) >= to_utc(start),
            col(CheckResult.window_end) <= to_utc(end),
        )
        .group_by(CheckResult.deployment_id, bucket)
        .order_by(bucket, CheckResult.deployment_id)
    ).all()
    names = versions or {}
    return [
        Bucket(
            deployment_id=dep,
            version=names.get(dep, str(dep)),
            at=from_epoch(at),
            checks=n,
            failed=int(failed or 0),
            warned=int(warned or 0),
            errored=int(errored or 0),
            no_data=int(no_data or 0),
            score_mean=_float(mean),
            score_min=_float(low),
            score_max=_float(high),
            last_id=last,
        )
        for dep, at, n, failed, warned, errored, no_data, mean, low, high, last in rows
    ]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def details(session: Session, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The `details` of these check results, by id."""
    if not ids:
        return {}
    rows = session.exec(
        select(CheckResult.id, CheckResult.details).where(col(CheckResult.id).in_(list(ids)))
    ).all()
    return {check_id: data or {} for check_id, data in rows}


def recent_checks(
    session: Session,
    *,
    deployment_ids: Sequence[int],
    kind: CheckKind,
    start: datetime,
    end: datetime,
    versions: dict[int, str] | None = None,
    limit: int = 50,
) -> list[CheckRef]:
    """The newest checks of `kind` in the range, newest first (to open their reports)."""
    if not deployment_ids:
        return []
    rows = session.exec(
        select(CheckResult)
        .where(
            col(CheckResult.deployment_id).in_(list(deployment_ids)),
            CheckResult.kind == kind,
            col(CheckResult.window_end) >= to_utc(start),
            col(CheckResult.window_end) <= to_utc(end),
        )
        .order_by(col(CheckResult.window_end).desc(), col(CheckResult.id).desc())
        .limit(max(1, min(limit, 500)))
    ).all()
    names = versions or {}
    return [
        CheckRef(
            id=r.id or 0,
            deployment_id=r.deployment_id,
            version=names.get(r.deployment_id, str(r.deployment_id)),
            kind=r.kind,
            status=r.status,
            window_start=as_utc(r.window_start),
            window_end=as_utc(r.window_end),
            score=r.score,
            rows=r.rows,
        )
        for r in rows
    ]


def get_check(session: Session, check_id: int) -> CheckResult:
    row = session.get(CheckResult, check_id)
    if row is None:
        raise NotFound(f"no check result with id {check_id}")
    return row


def series(
    session: Session,
    *,
    model: str,
    environment: str,
    kind: CheckKind,
    start: datetime,
    end: datetime,
    max_points: int = 400,
) -> Series:
    """Buckets, per-column readings (drift, quality) or metric readings (decay), reference
    values and the newest checks of one model in one environment over [start, end]."""
    spans = deployments(session, model=model, environment=environment, start=start, end=end)
    versions = {s.deployment_id: s.version for s in spans}
    ids = list(versions)
    seconds = bucket_seconds(start, end, max_points=max_points)
    rows = buckets(
        session,
        deployment_ids=ids,
        kind=kind,
        start=start,
        end=end,
        seconds=seconds,
        versions=versions,
    )
    found = details(session, [b.last_id for b in rows])
    out = Series(
        model=model,
        environment=environment,
        kind=kind,
        start=to_utc(start),
        end=to_utc(end),
        bucket_seconds=seconds,
        deployments=spans,
        buckets=rows,
        recent=recent_checks(
            session, deployment_ids=ids, kind=kind, start=start, end=end, versions=versions
        ),
    )
    if kind == CheckKind.decay:
        out.metrics = [
            m
            for b in rows
            for m in readings.metrics(
                found.get(b.last_id, {}), at=b.at, version=b.version, check_id=b.last_id
            )
        ]
        out.references = _references(
            session, model, spans, [found.get(b.last_id, {}) for b in rows], rows
        )
    else:
        if kind == CheckKind.drift:
            for b in rows:
                b.share_drifted = readings.share_drifted(found.get(b.last_id, {}), b.score_mean)
        out.columns = [
            c
            for b in rows
            for c in readings.columns(
                found.get(b.last_id, {}), at=b.at, version=b.version, check_id=b.last_id
            )
        ]
    return out


def _references(
    session: Session,
    model: str,
    spans: list[DeploymentSpan],
    found: list[dict[str, Any]],
    rows: list[Bucket],
) -> dict[str, dict[str, float]]:
    """Reference value per version and metric: what the check compared against, else the
    version's registered (validation) metrics."""
    refs: dict[str, dict[str, float]] = {}
    m = registry.get_model(session, model)
    wanted = {s.version for s in spans}
    if wanted:
        for version, metrics in session.exec(
            select(ModelVersion.version, ModelVersion.metrics).where(
                ModelVersion.model_id == m.id, col(ModelVersion.version).in_(wanted)
            )
        ):
            refs[version] = {
                k: float(v)
                for k, v in (metrics or {}).items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
    for data, bucket in zip(found, rows, strict=True):
        refs.setdefault(bucket.version, {}).update(readings.reference(data))
    return refs


class CheckSummary(BaseModel):
    """The newest check of one kind for a model where it runs now (Slack's `drift MODEL`)."""

    id: int
    environment: str
    version: str
    kind: CheckKind
    status: CheckStatus
    score: float | None
    window_start: datetime
    window_end: datetime
    rows: int
    drifted_columns: list[str] = []


def latest_checks(
    session: Session,
    *,
    model: str,
    environment: str | None = None,
    kind: CheckKind = CheckKind.drift,
) -> list[CheckSummary]:
    """The newest `kind` check of each active deployment of `model` (in `environment` only,
    when given), by environment name; deployments never checked are left out."""
    m = registry.get_model(session, model)
    query = (
        select(Deployment, Environment.name, ModelVersion.version)
        .join(Environment, col(Environment.id) == Deployment.environment_id)
        .join(ModelVersion, col(ModelVersion.id) == Deployment.version_id)
        .where(Deployment.model_id == m.id, Deployment.state == DeploymentState.active)
    )
    if environment:
        query = query.where(Environment.name == _environment(session, environment).name)
    out = []
    for dep, env_name, version in session.exec(query.order_by(Environment.name)).all():
        row = session.exec(
            select(CheckResult)
            .where(CheckResult.deployment_id == dep.id, CheckResult.kind == kind)
            .order_by(col(CheckResult.window_end).desc(), col(CheckResult.id).desc())
            .limit(1)
        ).first()
        if row is None:
            continue
        drifted = [
            c.column
            for c in readings.columns(
                row.details, at=row.window_end, version=version, check_id=row.id or 0
            )
            if c.drifted
        ]
        out.append(
            CheckSummary(
                id=row.id or 0,
                environment=env_name,
                version=version,
                kind=row.kind,
                status=row.status,
                score=row.score,
                window_start=as_utc(row.window_start),
                window_end=as_utc(row.window_end),
                rows=row.rows,
                drifted_columns=drifted,
            )
        )
    return out
