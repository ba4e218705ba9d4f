"""Read side of GPU usage for the dashboard: time series and the usage report over a range.

Both read `gpu_usage_hourly` bucketed in SQL (core/timeseries.py), so a year of a whole fleet is
a few hundred points per series instead of millions of hourly rows in Python. The report is the
hardware domain's own (`report.build`: GPU-hours, cost, cost per 1k predictions, A100 vs L4),
fed with rows pre-aggregated per bucket; within a bucket utilisation is weighted by its readings
(`samples`: a row without any has unknown utilisation and adds nothing), memory and power by
GPU-seconds (so such a row still counts for them), GPU-hours and energy are sums, so those
figures do not change with the bucket width (only `util_p95` becomes the 95th percentile of
bucket means).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import case, func
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from modeldeck.core.clock import as_utc
from modeldeck.core.config import Settings
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import NotFound
from modeldeck.core.hardware import report, service
from modeldeck.core.hardware.models import GpuUsageHourly, HardwareReport
from modeldeck.core.hardware.predictions import prediction_counts
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import Model, ModelVersion
from modeldeck.core.timeseries import bucket_seconds, epoch_bucket, from_epoch, to_utc

GroupBy = Literal["cluster", "node", "version"]
H = GpuUsageHourly


class UsagePoint(BaseModel):
    """One series (a cluster, node or version) in one bucket."""

    at: datetime
    group: str
    model: str | None = None
    version: str | None = None
    util: float | None
    memory_gib: float | None
    power_watts: float | None
    gpu_hours: float
    gpus: int


class HardwareView(BaseModel):
    start: datetime
    end: datetime
    bucket_seconds: int
    report: HardwareReport
    group_by: str
    series: list[UsagePoint]


def _util() -> Any:
    """Mean utilisation weighted by its readings; NULL when no row has any (unknown)."""
    return func.sum(H.util_mean * H.samples) / func.nullif(func.sum(H.samples), 0)


def _weighted(value: Any) -> Any:
    """GPU-seconds-weighted mean of a nullable column (memory, power)."""
    weight = func.sum(case((value.is_not(None), H.gpu_seconds), else_=0.0))
    return func.sum(value * H.gpu_seconds) / func.nullif(weight, 0)


def _filters(
    session: Session, model: str | None, environment: str | None
) -> tuple[int | None, int | None]:
    model_id = registry.get_model(session, model).id if model else None
    env_id = None
    if environment:
        env_id = session.exec(select(Environment.id).where(Environment.name == environment)).first()
        if env_id is None:
            raise NotFound(f"no environment named {environment!r}")
    return model_id, env_id


def _where(
    query: Any, start: datetime, end: datetime, model_id: int | None, env_id: int | None
) -> Any:
    query = query.where(col(H.hour) >= to_utc(start), col(H.hour) < to_utc(end))
    if model_id is not None:
        query = query.where(H.model_id == model_id)
    if env_id is not None:
        query = query.where(H.environment_id == env_id)
    return query


def timeseries(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    group_by: GroupBy,
    seconds: int,
    model_id: int | None = None,
    env_id: int | None = None,
) -> list[UsagePoint]:
    """Utilisation (weighted by its readings), memory and power (by GPU-seconds), per GPU, and
    GPU-hours per bucket."""
    if group_by == "cluster" and model_id is None and env_id is None:
        return _cluster_series(session, start=start, end=end, seconds=seconds)
    bucket = epoch_bucket(H.hour, seconds, session.get_bind().dialect.name).label("bucket")
    keys: list[Any] = {
        "cluster": [H.cluster],
        "node": [H.cluster, H.node],
        "version": [H.model_id, H.version_id],
    }[group_by]
    query = select_columns(
        bucket,
        *keys,
        _util(),
        _weighted(col(H.memory_used_mib)),
        _weighted(col(H.power_watts)),
        func.sum(H.gpu_seconds),
        func.count(func.distinct(H.gpu_uuid)),
    )
    query = _where(query, start, end, model_id, env_id)
    if group_by == "version":
        query = query.where(col(H.version_id).is_not(None))
    rows = session.execute(query.group_by(bucket, *keys).order_by(bucket)).all()
    names = _version_names(session, {(r[1], r[2]) for r in rows}) if group_by == "version" else {}
    out = []
    for row in rows:
        at, group_key, measures = row[0], row[1 : 1 + len(keys)], row[1 + len(keys) :]
        util, mem, power, gpu_seconds, gpus = measures
        model = version = None
        if group_by == "version":
            model, version = names.get((group_key[0], group_key[1]), ("?", "?"))
            label = f"{model} {version}"
        else:
            label = "/".join(str(k or "?") for k in group_key)
        out.append(
            UsagePoint(
                at=from_epoch(at),
                group=label,
                model=model,
                version=version,
                util=float(util) if util is not None else None,
                memory_gib=float(mem) / 1024 if mem is not None else None,
                power_watts=float(power) if power is not None else None,
                gpu_hours=float(gpu_seconds or 0) / 3600,
                gpus=int(gpus or 0),
            )
        )
    return out


def _cluster_series(
    session: Session, *, start: datetime, end: datetime, seconds: int
) -> list[UsagePoint]:
    """The fleet-wide per-cluster series. Grouped by (cluster, hour) exactly, SQLite walks its
    (cluster, hour) index without sorting every row; the hours are then summed into buckets
    here (a year is ~9k rows per cluster)."""

    def weight(value: Any) -> Any:
        return func.sum(case((value.is_not(None), H.gpu_seconds), else_=0.0))

    rows = session.execute(
        _where(
            select_columns(
                H.cluster,
                H.hour,
                func.sum(H.util_mean * H.samples),
                func.sum(H.samples),
                func.sum(H.memory_used_mib * H.gpu_seconds),
                weight(col(H.memory_used_mib)),
                func.sum(H.power_watts * H.gpu_seconds),
                weight(col(H.power_watts)),
                func.sum(H.gpu_seconds),
                func.count(func.distinct(H.gpu_uuid)),
            ),
            start,
            end,
            None,
            None,
        ).group_by(H.cluster, H.hour)
    ).all()
    sums: dict[tuple[int, str], list[float]] = {}
    for cluster, hour, *values in rows:
        stamp = int(as_utc(hour).timestamp())
        acc = sums.setdefault((stamp - stamp % seconds, cluster), [0.0] * 8)
        for i, value in enumerate(values[:-1]):
            acc[i] += float(value or 0)
        acc[7] = max(acc[7], float(values[-1] or 0))
    out = []
    for (at, cluster), (util, w, mem, w_mem, power, w_power, gpu_seconds, gpus) in sorted(
        sums.items()
    ):
        out.append(
            UsagePoint(
                at=from_epoch(at),
                group=str(cluster or "?"),
                util=util / w if w else None,
                memory_gib=mem / w_mem / 1024 if w_mem else None,
                power_watts=power / w_power if w_power else None,
                gpu_hours=gpu_seconds / 3600,
                gpus=int(gpus),
            )
        )
    return out


def _version_names(
    session: Session, keys: set[tuple[int, int]]
) -> dict[tuple[int, int], tuple[str, str]]:
    version_ids = {v for _, v in keys}
    if not version_ids:
        return {}
    rows = session.exec(
        select(ModelVersion.model_id, ModelVersion.id, Model.name, ModelVersion.version)
        .join(Model, col(Model.id) == ModelVersion.model_id)
        .where(col(ModelVersion.id).in_(version_ids))
    ).all()
    return {(m_id, v_id): (model, version) for m_id, v_id, model, version in rows}


def usage_rows(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    seconds: int,
    model_id: int | None = None,
    env_id: int | None = None,
) -> list[report.Row]:
    """Rows shaped like report._COLUMNS, one per GPU × pod × version × bucket."""
    bucket = epoch_bucket(H.hour, seconds, session.get_bind().dialect.name).label("bucket")
    keys = (H.model_id, H.version_id, H.environment_id, H.cluster, H.gpu_model, H.gpu_uuid, H.pod)
    query = select_columns(
        *keys,
        bucket,
        _util(),
        func.sum(H.samples),
        func.sum(H.gpu_seconds),
        _weighted(col(H.memory_used_mib)),
        func.max(H.memory_total_mib),
        _weighted(col(H.power_watts)),
        func.sum(H.energy_wh),
        func.max(case((col(H.shared), 1), else_=0)),
    )
    query = _where(query, start, end, model_id, env_id).group_by(*keys, bucket)
    out = []
    for r in session.execute(query).all():
        (*ids, at, util, samples, gpu_seconds, mem, total, power, energy, shared) = r
        out.append(
            (
                *ids,
                from_epoch(at),
                float(util or 0.0),
                int(samples or 0),
                float(gpu_seconds or 0.0),
                mem,
                total,
                power,
                energy,
                bool(shared),
            )
        )
    return out


def usage_bucket(start: datetime, end: datetime) -> int:
    """Hourly rows (exact p95) up to a week; daily beyond, where Python would otherwise build
    one row per GPU-hour (GPU-hours, cost and means do not depend on it, only util_p95)."""
    return 3600 if end - start <= timedelta(days=7) else 86400


def view(
    session: Session,
    *,
    settings: Settings,
    start: datetime,
    end: datetime,
    model: str | None = None,
    environment: str | None = None,
    group_by: GroupBy = "cluster",
    predictions: report.Predictions | None = None,
    max_points: int = 300,
) -> HardwareView:
    """Everything the hardware page shows for a range: the usage report (status, findings,
    per-version usage and cost, GPU-model comparisons, unattributed GPU time) and the
    utilisation/memory/power series per `group_by` (cluster, node or version)."""
    start, end = report.check_range(to_utc(start), to_utc(end))
    model_id, env_id = _filters(session, model, environment)
    seconds = bucket_seconds(start, end, max_points=max_points)
    rows = usage_rows(
        session,
        start=start,
        end=end,
        seconds=usage_bucket(start, end),
        model_id=model_id,
        env_id=env_id,
    )
    if predictions is None and model is not None:
        # Counting reads Parquet metadata per file: done for one model, not the whole fleet.
        names = _version_names(session, {(r[0], r[1]) for r in rows if r[1] is not None})
        envs = dict(session.exec(select(Environment.id, Environment.name)).all())
        keys = sorted(
            {
                (*names[(r[0], r[1])], envs.get(r[2]))
                for r in rows
                if r[1] is not None and (r[0], r[1]) in names
            },
            key=lambda k: (k[0], k[1], k[2] or ""),
        )
        predictions = prediction_counts(settings, start, end, keys)
    built = report.build(
        session,
        settings,
        rows,
        start,
        end,
        predictions,
        status=service.status(session),
        findings=service.last_findings(session, model=model, environment=environment),
    )
    series = {
        group_by: timeseries(
            session,
            start=start,
            end=end,
            group_by=group_by,
            seconds=seconds,
            model_id=model_id,
            env_id=env_id,
        )
    }
    return HardwareView(
        start=start,
        end=end,
        bucket_seconds=seconds,
        report=built,
        group_by=group_by,
        series=series[group_by],
    )


def recent_utilisation(
    session: Session, *, now: datetime, hours: int = 24
) -> dict[tuple[int, int], tuple[float | None, datetime]]:
    """(model_id, environment_id) → (mean GPU utilisation %, newest hour) over the last hours;
    the Overview's GPU badge."""
    since = to_utc(now) - timedelta(hours=hours)
    # No condition on model_id and environment first in GROUP BY: otherwise SQLite walks the
    # model_id index through every row ever stored instead of the last hours by `hour`.
    rows = session.execute(
        select_columns(H.environment_id, H.model_id, _util(), func.max(H.hour))
        .where(col(H.hour) >= since, col(H.environment_id).is_not(None))
        .group_by(H.environment_id, H.model_id)
    ).all()
    return {
        (m, e): (float(u) if u is not None else None, as_utc(at))
        for e, m, u, at in rows
        if m is not None
    }
