"""GPU usage per version × environment × GPU model over a range: GPU-hours, utilisation, memory,
power, cost and cost per 1k predictions, plus the same version compared across GPU models.

`usage` reads the stored hourly aggregates (what the API, CLI and dashboard use); `live_usage`
computes the same report straight from Prometheus (for a range not scraped yet, and for the
benchmark that shows why the aggregates exist).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from modeldeck.core.clock import Clock, as_utc, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.errors import InvalidInput, NotFound
from modeldeck.core.hardware import service
from modeldeck.core.hardware.aggregate import aggregate
from modeldeck.core.hardware.attribution import Attributor
from modeldeck.core.hardware.collect import collect
from modeldeck.core.hardware.models import (
    GpuUsageHourly,
    HardwareReport,
    VersionUsage,
)
from modeldeck.core.hardware.predictions import prediction_counts
from modeldeck.core.hardware.pricing import short_name
from modeldeck.core.hardware.prom import Prometheus, names
from modeldeck.core.hardware.summary import (
    Group,
    Key,
    Predictions,
    Row,
    assemble,
    build,
    names_by_id,
)
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import ModelVersion

__all__ = ["Predictions", "Row", "VersionUsage", "build", "check_range", "live_usage", "usage"]

_COLUMNS = (
    GpuUsageHourly.model_id,
    GpuUsageHourly.version_id,
    GpuUsageHourly.environment_id,
    GpuUsageHourly.cluster,
    GpuUsageHourly.gpu_model,
    GpuUsageHourly.gpu_uuid,
    GpuUsageHourly.pod,
    GpuUsageHourly.hour,
    GpuUsageHourly.util_mean,
    GpuUsageHourly.samples,
    GpuUsageHourly.gpu_seconds,
    GpuUsageHourly.memory_used_mib,
    GpuUsageHourly.memory_total_mib,
    GpuUsageHourly.power_watts,
    GpuUsageHourly.energy_wh,
    GpuUsageHourly.shared,
)
H = GpuUsageHourly


@dataclass
class Filters:
    model_id: int | None = None
    version_id: int | None = None
    environment_id: int | None = None
    cluster: str | None = None

    def keep(self, row: Row) -> bool:
        return (
            (self.model_id is None or row[0] == self.model_id)
            and (self.version_id is None or row[1] == self.version_id)
            and (self.environment_id is None or row[2] == self.environment_id)
            and (self.cluster is None or row[3] == self.cluster)
        )


def filters(
    session: Session,
    settings: Settings,
    *,
    model: str | None,
    version: str | None,
    environment: str | None,
    cluster: str | None,
) -> Filters:
    """Names to ids; an unknown name is NotFound (with the known ones as a hint)."""
    out = Filters(cluster=cluster)
    if version and not model:
        raise InvalidInput("a version filter needs the model too")
    if model:
        out.model_id = registry.get_model(session, model).id
    if model and version:
        row = session.exec(
            select(ModelVersion.id).where(
                ModelVersion.model_id == out.model_id, ModelVersion.version == version
            )
        ).first()
        if row is None:
            raise NotFound(f"{model} has no version {version!r}")
        out.version_id = row
    if environment:
        out.environment_id = environments.get(
            session, environments.resolve_name(settings, environment)
        ).id
    if cluster and cluster not in {c.name for c in settings.clusters}:
        raise NotFound(
            f"no cluster named {cluster!r}",
            hint=f"known: {', '.join(c.name for c in settings.clusters) or 'none'}",
        )
    return out


def check_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("start and end need a time zone (e.g. 2026-11-01T00:00:00Z)")
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        raise InvalidInput("the range is empty: end must be after start")
    if (end - start).days > 800:
        raise InvalidInput("the range is longer than 800 days")
    return start, end


def usage(
    session: Session,
    *,
    settings: Settings,
    start: datetime,
    end: datetime,
    model: str | None = None,
    version: str | None = None,
    environment: str | None = None,
    cluster: str | None = None,
    predictions: Predictions | None = None,
    clock: Clock = utcnow,
) -> HardwareReport:
    """The report from stored aggregates (hours starting in [start, end))."""
    start, end = check_range(start, end)
    flt = filters(
        session, settings, model=model, version=version, environment=environment, cluster=cluster
    )
    conditions = [col(H.hour) >= start, col(H.hour) < end]
    for column, value in (
        (H.cluster, flt.cluster),
        (H.model_id, flt.model_id),
        (H.version_id, flt.version_id),
        (H.environment_id, flt.environment_id),
    ):
        if value is not None:
            conditions.append(column == value)
    groups = _stored_groups(session, conditions)
    free, pods = _stored_unattributed(session, settings, conditions)
    if predictions is None:
        predictions = count_predictions(session, settings, groups, start, end)
    return assemble(
        session,
        settings,
        groups,
        free,
        pods,
        start,
        end,
        predictions,
        status=service.status(session, clock=clock),
        findings=service.last_findings(session, model=model, environment=environment),
    )


def _weighted(value: Any) -> tuple[Any, Any]:
    """(sum of value × GPU-seconds, sum of GPU-seconds where value is known): memory and power
    by time held, so a GPU without utilisation readings (samples = 0) still counts."""
    return (
        func.sum(case((value.is_not(None), value * H.gpu_seconds), else_=0.0)),
        func.sum(case((value.is_not(None), H.gpu_seconds), else_=0.0)),
    )


def _stored_groups(session: Session, conditions: list[Any]) -> dict[Key, Group]:
    """Per version × environment × GPU model, summed in SQL; the hourly means (for p95) are
    the only per-row values read back. Utilisation is weighted by its readings (`samples`):
    rows without any (unknown utilisation) add nothing to the mean nor to the p95."""
    keys = (H.model_id, H.version_id, H.environment_id, H.cluster, H.gpu_model)
    attributed = [*conditions, col(H.version_id).is_not(None)]
    query = (
        select_columns(
            *keys,
            func.sum(H.gpu_seconds),
            func.sum(H.util_mean * H.samples),
            func.sum(H.samples),
            func.count(func.distinct(H.gpu_uuid)),
            *_weighted(col(H.memory_used_mib)),
            func.max(H.memory_total_mib),
            *_weighted(col(H.power_watts)),
            func.sum(H.energy_wh),
            func.max(case((col(H.shared), 1), else_=0)),
            func.min(H.hour),
            func.max(H.hour),
        )
        .where(*attributed)
        .group_by(*keys)
    )
    groups: dict[Key, Group] = {}
    for row in session.execute(query).all():
        (
            seconds,
            util,
            samples,
            gpus,
            mem,
            mem_w,
            total,
            power,
            power_w,
            energy,
            shared,
            first,
            last,
        ) = row[5:]
        groups[tuple(row[:5])] = Group(
            seconds=float(seconds or 0),
            util_weighted=float(util or 0),
            samples=int(samples or 0),
            distinct=int(gpus or 0),
            mem=[float(mem or 0), float(mem_w or 0)],
            mem_total=float(total) if total is not None else None,
            power=[float(power or 0), float(power_w or 0)],
            energy=float(energy) if energy is not None else None,
            shared=bool(shared),
            first=as_utc(first) if first else None,
            last=as_utc(last) if last else None,
        )
    # Core, not ORM: 10^5 rows of plain tuples cost a third of ORM rows.
    utils = session.connection().execute(
        select_columns(*keys, H.util_mean, H.samples, H.hour, H.gpu_uuid).where(*attributed)
    )
    for m, v, e, c, g, util, samples, hour, gpu in utils:
        group = groups[(m, v, e, c, g)]
        if samples:
            group.utils.append(util)
        group.hourly[hour].add(gpu)
    return groups


def count_predictions(
    session: Session, settings: Settings, keys: Iterable[Key], start: datetime, end: datetime
) -> dict[tuple[str, str, str | None], int]:
    """Predictions ingested for the report's (model, version, environment)s in [start, end),
    from the monitoring store (bounded: see `predictions.prediction_counts`)."""
    keys = list(keys)
    models, versions, envs = names_by_id(session, {k[0] for k in keys})
    wanted = {
        (models[m], versions[v], envs[e])
        for m, v, e, *_ in keys
        if m in models and v in versions and e in envs
    }
    return prediction_counts(settings, start, end, sorted(wanted, key=lambda k: (k[0], k[1])))


def _stored_unattributed(
    session: Session, settings: Settings, conditions: list[Any]
) -> tuple[dict[tuple[str, str], list[float]], dict[tuple[str, str], set[str]]]:
    free: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    pods: dict[tuple[str, str], set[str]] = defaultdict(set)
    rows = session.execute(
        select_columns(H.cluster, H.gpu_model, H.pod, func.sum(H.gpu_seconds))
        .where(*conditions, col(H.version_id).is_(None))
        .group_by(H.cluster, H.gpu_model, H.pod)
    ).all()
    for cluster, gpu_model, pod, seconds in rows:
        key = (cluster, short_name(settings, gpu_model))
        free[key][1 if pod else 0] += float(seconds or 0) / 3600.0
        if pod:
            pods[key].add(pod)
    return free, pods


def live_usage(
    session: Session,
    *,
    settings: Settings,
    start: datetime,
    end: datetime,
    model: str | None = None,
    environment: str | None = None,
    predictions: Predictions | None = None,
    clock: Clock = utcnow,
) -> HardwareReport:
    """The same report computed from Prometheus directly (nothing is stored)."""
    start, end = service.window(settings, *check_range(start, end), clock)
    flt = filters(
        session, settings, model=model, version=None, environment=environment, cluster=None
    )
    with Prometheus(settings.prometheus) as client:
        data = collect(client, names(settings.prometheus), settings, start, end)
    hourly, _ = aggregate(data, Attributor(session, data.pod_labels))
    rows = [tuple(getattr(r, c.key) for c in _COLUMNS) for r in hourly]
    return build(
        session,
        settings,
        [r for r in rows if flt.keep(r)],
        start,
        end,
        predictions,
        status=service.status(session, clock=clock),
        findings=[],
    )
