"""GPU usage per version × environment × GPU model over a range: GPU-hours, utilisation, memory,
power, cost and cost per 1k predictions, plus the same version compared across GPU models.

`usage` reads the stored hourly aggregates (what the API, CLI and dashboard use); `live_usage`
computes the same report straight from Prometheus (for a range not scraped yet, and for the
benchmark that shows why the aggregates exist).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from modeldeck.core.clock import Clock, as_utc, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import InvalidInput, NotFound
from modeldeck.core.hardware import service
from modeldeck.core.hardware.aggregate import aggregate, percentile
from modeldeck.core.hardware.attribution import Attributor
from modeldeck.core.hardware.collect import collect
from modeldeck.core.hardware.models import (
    Finding,
    GpuComparison,
    GpuModelUsage,
    GpuUsageHourly,
    HardwareReport,
    HardwareStatus,
    UnattributedUsage,
    VersionUsage,
)
from modeldeck.core.hardware.pricing import price_for, short_name
from modeldeck.core.hardware.prom import Prometheus, names
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import Model, ModelVersion

# (model, version, environment) -> predictions served in the range
Predictions = Mapping[tuple[str, str, str | None], int]
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
Row = tuple[Any, ...]  # one tuple of _COLUMNS
_Key = tuple[Any, ...]  # (model_id, version_id, environment_id, cluster, gpu_model)
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
    return _assemble(
        session,
        settings,
        groups,
        free,
        pods,
        start,
        end,
        predictions,
        status=service.status(session, clock=clock),
        findings=service.last_findings(session),
    )


def _weighted(value: Any) -> tuple[Any, Any]:
    """(sum of value × samples, sum of samples where value is known)."""
    return (
        func.sum(case((value.is_not(None), value * H.samples), else_=0.0)),
        func.sum(case((value.is_not(None), H.samples), else_=0)),
    )


def _stored_groups(session: Session, conditions: list[Any]) -> dict[_Key, _Group]:
    """Per version × environment × GPU model, summed in SQL; the hourly means (for p95) are
    the only per-row values read back."""
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
    groups: dict[_Key, _Group] = {}
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
        groups[tuple(row[:5])] = _Group(
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
    utils = session.connection().execute(select_columns(*keys, H.util_mean).where(*attributed))
    for m, v, e, c, g, util in utils:
        groups[(m, v, e, c, g)].utils.append(util)
    return groups


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


@dataclass
class _Group:
    seconds: float = 0.0
    util_weighted: float = 0.0
    samples: int = 0
    utils: list[float] = field(default_factory=list)
    gpus: set[str] = field(default_factory=set)
    distinct: int = 0  # GPUs counted in SQL (the row path fills `gpus` instead)
    mem: list[float] = field(default_factory=lambda: [0.0, 0.0])  # weighted sum, weight
    mem_total: float | None = None
    power: list[float] = field(default_factory=lambda: [0.0, 0.0])
    energy: float | None = None
    shared: bool = False
    first: datetime | None = None
    last: datetime | None = None

    def add(self, r: Row) -> None:
        (_, _, _, _, _, gpu, _, hour, util, samples, seconds, mem, total, power, energy, shared) = r
        self.seconds += seconds
        self.util_weighted += util * samples
        self.samples += samples
        self.utils.append(util)
        self.gpus.add(gpu)
        if mem is not None:
            self.mem[0] += mem * samples
            self.mem[1] += samples
        if total is not None:
            self.mem_total = max(self.mem_total or 0.0, total)
        if power is not None:
            self.power[0] += power * samples
            self.power[1] += samples
        if energy is not None:
            self.energy = (self.energy or 0.0) + energy
        self.shared = self.shared or bool(shared)
        self.first = hour if self.first is None or hour < self.first else self.first
        self.last = hour if self.last is None or hour > self.last else self.last

    @property
    def util_mean(self) -> float:
        return self.util_weighted / self.samples if self.samples else 0.0

    @property
    def gpu_count(self) -> int:
        return max(len(self.gpus), self.distinct)


def build(
    session: Session,
    settings: Settings,
    rows: Iterable[Row],
    start: datetime,
    end: datetime,
    predictions: Predictions | None,
    *,
    status: HardwareStatus,
    findings: list[Finding],
) -> HardwareReport:
    """The report from rows shaped like `_COLUMNS` (hourly, or pre-aggregated per bucket)."""
    groups: dict[_Key, _Group] = defaultdict(_Group)
    free: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    pods: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in rows:
        if r[1] is None:
            key = (r[3], short_name(settings, r[4]))
            free[key][0 if not r[6] else 1] += r[10] / 3600.0
            if r[6]:
                pods[key].add(r[6])
            continue
        groups[(r[0], r[1], r[2], r[3], r[4])].add(r)
    return _assemble(
        session,
        settings,
        groups,
        free,
        pods,
        start,
        end,
        predictions,
        status=status,
        findings=findings,
    )


def _assemble(
    session: Session,
    settings: Settings,
    groups: dict[_Key, _Group],
    free: dict[tuple[str, str], list[float]],
    pods: dict[tuple[str, str], set[str]],
    start: datetime,
    end: datetime,
    predictions: Predictions | None,
    *,
    status: HardwareStatus,
    findings: list[Finding],
) -> HardwareReport:
    pairs = _versions(session, settings, groups, predictions or {})
    versions = [v for v, _ in pairs]
    total_cost = [v.cost for v in versions if v.cost is not None]
    return HardwareReport(
        start=start,
        end=end,
        status=status,
        versions=versions,
        comparisons=_compare(pairs),
        findings=findings,
        unattributed=[
            UnattributedUsage(
                cluster=c,
                gpu_model=g,
                gpu_hours_free=round(v[0], 4),
                gpu_hours_unmatched=round(v[1], 4),
                pods=sorted(pods[(c, g)])[:20],
            )
            for (c, g), v in sorted(free.items())
        ],
        gpu_hours=round(sum(v.gpu_hours for v in versions), 4),
        cost=round(sum(total_cost), 2) if total_cost else None,
    )


def _versions(
    session: Session, settings: Settings, groups: dict[_Key, _Group], predictions: Predictions
) -> list[tuple[VersionUsage, _Group]]:
    model_ids = {k[0] for k in groups}
    models = dict(
        session.exec(select(Model.id, Model.name).where(col(Model.id).in_(model_ids))).all()
    )
    versions = dict(
        session.exec(
            select(ModelVersion.id, ModelVersion.version).where(
                col(ModelVersion.model_id).in_(model_ids)
            )
        ).all()
    )
    envs = dict(session.exec(select(Environment.id, Environment.name)).all())
    out = []
    for (model_id, version_id, env_id, cluster, gpu_model), g in groups.items():
        hours = g.seconds / 3600.0
        price = price_for(settings, gpu_model)
        cost = round(hours * price, 4) if price is not None else None
        model, version = models[model_id], versions[version_id]
        env = envs.get(env_id) if env_id is not None else None
        count = predictions.get((model, version, env))
        out.append(
            (
                VersionUsage(
                    model=model,
                    version=version,
                    environment=env,
                    cluster=cluster,
                    gpu_model=short_name(settings, gpu_model),
                    gpu_count=g.gpu_count,
                    gpu_hours=round(hours, 4),
                    util_mean=round(g.util_mean, 3),
                    util_p95=round(percentile(g.utils, 95), 3),
                    memory_used_gib=round(g.mem[0] / g.mem[1] / 1024, 3) if g.mem[1] else None,
                    memory_total_gib=round(g.mem_total / 1024, 3) if g.mem_total else None,
                    power_watts=round(g.power[0] / g.power[1], 2) if g.power[1] else None,
                    energy_kwh=round(g.energy / 1000, 4) if g.energy is not None else None,
                    price_per_gpu_hour=price,
                    cost=cost,
                    predictions=count,
                    cost_per_1k_predictions=(
                        round(cost / count * 1000, 6) if cost is not None and count else None
                    ),
                    approximate=g.shared,
                    first_hour=as_utc(g.first or datetime.min.replace(tzinfo=UTC)),
                    last_hour=as_utc(g.last or datetime.min.replace(tzinfo=UTC)),
                ),
                g,
            )
        )
    out.sort(key=lambda p: (p[0].model, p[0].version, p[0].environment or "", p[0].gpu_model))
    return out


def _compare(pairs: list[tuple[VersionUsage, _Group]]) -> list[GpuComparison]:
    """Versions that ran on more than one GPU model, side by side per GPU model."""
    by_version: dict[tuple[str, str], dict[str, list[tuple[VersionUsage, _Group]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for v, g in pairs:
        by_version[(v.model, v.version)][v.gpu_model].append((v, g))
    out = []
    for (model, version), per_gpu in sorted(by_version.items()):
        if len(per_gpu) < 2:
            continue
        entries = []
        for gpu_model, items in sorted(per_gpu.items()):
            costs = [v.cost for v, _ in items if v.cost is not None]
            cost = round(sum(costs), 4) if costs else None
            counts = [v.predictions for v, _ in items if v.predictions is not None]
            count = sum(counts) if counts else None
            samples = sum(g.samples for _, g in items)
            entries.append(
                GpuModelUsage(
                    gpu_model=gpu_model,
                    environments=sorted({v.environment or v.cluster for v, _ in items}),
                    gpu_hours=round(sum(g.seconds for _, g in items) / 3600.0, 4),
                    util_mean=round(sum(g.util_weighted for _, g in items) / samples, 3)
                    if samples
                    else 0.0,
                    util_p95=round(percentile([u for _, g in items for u in g.utils], 95), 3),
                    cost=cost,
                    predictions=count,
                    cost_per_1k_predictions=(
                        round(cost / count * 1000, 6) if cost is not None and count else None
                    ),
                )
            )
        out.append(GpuComparison(model=model, version=version, by_gpu_model=entries))
    return out
