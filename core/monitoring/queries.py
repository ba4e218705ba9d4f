"""Read side of the check history: time series for the decay, data-quality and drift pages.

Long ranges are bucketed in SQL (see core/timeseries.py): per deployment and bucket the database
returns the number of checks by status and the score's mean/min/max. Drift and quality then
read every check of the range and merge each bucket's per-column readings (`bucketed.py`:
strongest drift, highest missing share, worst verdict), so an episode shorter than a bucket
still shows; decay reads the newest check of each bucket (its metrics are already windowed
averages). The newest check of the range is also kept as is, for the "latest" figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import case, func
from sqlmodel import Session, col, select

from modeldeck.core.clock import as_utc
from modeldeck.core.monitoring import bucketed, readings
from modeldeck.core.monitoring.latest import CheckSummary as CheckSummary  # re-exported
from modeldeck.core.monitoring.latest import latest_checks as latest_checks  # re-exported
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.monitoring.spans import DeploymentSpan as DeploymentSpan  # re-exported
from modeldeck.core.monitoring.spans import deployments as deployments  # re-exported
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import ModelVersion
from modeldeck.core.timeseries import bucket_seconds, epoch_bucket, from_epoch, to_utc


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
    last_id: int  # the newest check in the bucket
    share_drifted: float | None = None  # drift: the highest share among the bucket's checks

    @property
    def status(self) -> CheckStatus:
        """The worst status of the bucket's checks."""
        for status, n in (
            (CheckStatus.fail, self.failed),
            (CheckStatus.error, self.errored),
            (CheckStatus.warn, self.warned),
            (CheckStatus.no_data, self.no_data),
        ):
            if n:
                return status
        return CheckStatus.ok


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
    columns: list[bucketed.BucketColumn] = []  # drift, quality: merged per bucket
    latest_columns: list[bucketed.BucketColumn] = []  # …and as the newest check saw them
    latest_share_drifted: float | None = None  # drift: of the newest check
    latest_prediction: bucketed.BucketColumn | None = None  # drift: the model's output, newest
    segment_column: str | None = None  # drift, quality: of the newest check, when segmented
    latest_segments: list[readings.SegmentReading] = []  # …its segments that warn or fail
    metrics: list[readings.MetricReading] = []  # decay: the newest check of each bucket
    segment_values: list[readings.MetricReading] = []  # decay: realised, else estimated
    references: dict[str, dict[str, float]] = {}  # version → metric → reference value
    recent: list[CheckRef] = []


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


def bucket_checks(
    session: Session,
    *,
    deployment_ids: Sequence[int],
    kind: CheckKind,
    start: datetime,
    end: datetime,
    seconds: int,
    keep: int | None = None,
) -> tuple[bucketed.Buckets, dict[str, Any]]:
    """Every drift or quality check in the range, merged per (deployment, bucket start)
    exactly as `buckets` groups them; plus the details of check `keep` (the newest)."""
    found = bucketed.Buckets(kind)
    kept: dict[str, Any] = {}
    if not deployment_ids:
        return found, kept
    bucket = epoch_bucket(CheckResult.window_end, seconds, session.get_bind().dialect.name)
    rows = session.exec(
        select(  # type: ignore[call-overload]
            CheckResult.deployment_id,
            bucket,
            CheckResult.id,
            CheckResult.score,
            CheckResult.details,
        )
        .where(
            col(CheckResult.deployment_id).in_(list(deployment_ids)),
            CheckResult.kind == kind,
            col(CheckResult.window_end) >= to_utc(start),
            col(CheckResult.window_end) <= to_utc(end),
        )
        .order_by(col(CheckResult.window_end), col(CheckResult.id))
        .execution_options(yield_per=1000)  # streamed: a year of details is never all held
    )
    for dep, at, check_id, score, data in rows:
        found.add((dep, from_epoch(at)), check_id, score, data or {})
        if check_id == keep:
            kept = data or {}
    return found, kept


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
        found = details(session, [b.last_id for b in rows])
        out.metrics = [
            m
            for b in rows
            for m in readings.metrics(
                found.get(b.last_id, {}), at=b.at, version=b.version, check_id=b.last_id
            )
        ]
        out.segment_values = bucketed.best_per_segment(out.metrics)
        out.references = _references(
            session, model, spans, [found.get(b.last_id, {}) for b in rows], rows
        )
        return out
    latest = out.recent[0] if out.recent else None
    merged, newest = bucket_checks(
        session,
        deployment_ids=ids,
        kind=kind,
        start=start,
        end=end,
        seconds=seconds,
        keep=latest.id if latest else None,
    )
    for b in rows:
        out.columns += merged.columns((b.deployment_id, b.at), version=b.version)
        if kind == CheckKind.drift:
            b.share_drifted = merged.share_drifted((b.deployment_id, b.at))
    if latest is not None:
        out.latest_columns = bucketed.latest(
            latest.id, newest, at=latest.window_end, version=latest.version
        )
        out.segment_column = newest.get("segment_column")
        out.latest_segments = readings.segment_failures(newest)
        if kind == CheckKind.drift:
            out.latest_share_drifted = readings.share_drifted(newest, latest.score)
            output = newest.get("prediction")
            if isinstance(output, dict):
                [out.latest_prediction] = bucketed.latest(
                    latest.id,
                    {"columns": {"prediction": output}},
                    at=latest.window_end,
                    version=latest.version,
                )
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
