"""Assembling the GPU usage report from per-version groups: GPU-hours, utilisation, memory,
power, cost and cost per 1k predictions per version × environment × GPU model, the same version
compared across GPU models, and unattributed GPU time. Pure over its inputs (plus the id → name
lookups); `report` feeds it from the stored aggregates or from Prometheus.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from modeldeck.core.clock import as_utc
from modeldeck.core.config import Settings
from modeldeck.core.environments.models import Environment
from modeldeck.core.hardware.aggregate import percentile
from modeldeck.core.hardware.models import (
    Finding,
    GpuComparison,
    GpuModelUsage,
    HardwareReport,
    HardwareStatus,
    UnattributedUsage,
    VersionUsage,
)
from modeldeck.core.hardware.pricing import price_for, short_name
from modeldeck.core.registry.models import Model, ModelVersion

# (model, version, environment) -> predictions served in the range
Predictions = Mapping[tuple[str, str, str | None], int]
Row = tuple[Any, ...]  # one tuple of report._COLUMNS
Key = tuple[Any, ...]  # (model_id, version_id, environment_id, cluster, gpu_model)


@dataclass
class Group:
    """One version × environment × GPU model. Utilisation is weighted by its readings
    (`samples`; rows without any are skipped, their utilisation is unknown), memory and power
    by GPU-seconds, so a GPU without utilisation readings still counts for them."""

    seconds: float = 0.0
    util_weighted: float = 0.0
    samples: int = 0
    utils: list[float] = field(default_factory=list)
    gpus: set[str] = field(default_factory=set)
    distinct: int = 0  # GPUs counted in SQL (the row path fills `gpus` instead)
    hourly: dict[datetime, set[str]] = field(default_factory=lambda: defaultdict(set))
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
        if samples:
            self.util_weighted += util * samples
            self.samples += samples
            self.utils.append(util)
        self.gpus.add(gpu)
        self.hourly[hour].add(gpu)
        if mem is not None:
            self.mem[0] += mem * seconds
            self.mem[1] += seconds
        if total is not None:
            self.mem_total = max(self.mem_total or 0.0, total)
        if power is not None:
            self.power[0] += power * seconds
            self.power[1] += seconds
        if energy is not None:
            self.energy = (self.energy or 0.0) + energy
        self.shared = self.shared or bool(shared)
        self.first = hour if self.first is None or hour < self.first else self.first
        self.last = hour if self.last is None or hour > self.last else self.last

    @property
    def util_mean(self) -> float | None:
        """None when no GPU of the group had a utilisation reading (unknown, not 0 %)."""
        return self.util_weighted / self.samples if self.samples else None

    @property
    def util_p95(self) -> float | None:
        return percentile(self.utils, 95) if self.utils else None

    @property
    def gpus_seen(self) -> int:
        return max(len(self.gpus), self.distinct)

    @property
    def gpu_count(self) -> int:
        """GPUs held at once: the most in any hour (a pod rescheduled to another GPU is still
        one GPU); rows pre-aggregated per bucket count per bucket."""
        return max((len(g) for g in self.hourly.values()), default=self.gpus_seen)


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
    groups: dict[Key, Group] = defaultdict(Group)
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
    return assemble(
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


def assemble(
    session: Session,
    settings: Settings,
    groups: dict[Key, Group],
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
    session: Session, settings: Settings, groups: dict[Key, Group], predictions: Predictions
) -> list[tuple[VersionUsage, Group]]:
    models, versions, envs = names_by_id(session, {k[0] for k in groups})
    # A version × environment on several GPU models (or clusters) served its predictions from
    # all of them: each gets a share by GPU-seconds, an approximation the report marks.
    seconds: dict[tuple[Any, Any, Any], list[float]] = defaultdict(list)
    for (model_id, version_id, env_id, *_), g in groups.items():
        seconds[(model_id, version_id, env_id)].append(g.seconds)
    out = []
    for (model_id, version_id, env_id, cluster, gpu_model), g in groups.items():
        hours = g.seconds / 3600.0
        price = price_for(settings, gpu_model)
        cost = round(hours * price, 4) if price is not None else None
        model, version = models[model_id], versions[version_id]
        env = envs.get(env_id) if env_id is not None else None
        count = predictions.get((model, version, env))
        split = seconds[(model_id, version_id, env_id)]
        if count is not None and len(split) > 1:
            total = sum(split)
            count = round(count * g.seconds / total) if total else None
        out.append(
            (
                VersionUsage(
                    model=model,
                    version=version,
                    environment=env,
                    cluster=cluster,
                    gpu_model=short_name(settings, gpu_model),
                    gpu_count=g.gpu_count,
                    gpus_seen=g.gpus_seen,
                    gpu_hours=round(hours, 4),
                    util_mean=_round(g.util_mean),
                    util_p95=_round(g.util_p95),
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
                    predictions_approximate=count is not None and len(split) > 1,
                    first_hour=as_utc(g.first or datetime.min.replace(tzinfo=UTC)),
                    last_hour=as_utc(g.last or datetime.min.replace(tzinfo=UTC)),
                ),
                g,
            )
        )
    out.sort(key=lambda p: (p[0].model, p[0].version, p[0].environment or "", p[0].gpu_model))
    return out


def names_by_id(
    session: Session, model_ids: set[Any]
) -> tuple[dict[Any, str], dict[Any, str], dict[Any, str]]:
    """Model, version (of those models) and environment names by id."""
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
    return models, versions, envs


def _compare(pairs: list[tuple[VersionUsage, Group]]) -> list[GpuComparison]:
    """Versions that ran on more than one GPU model, side by side per GPU model."""
    by_version: dict[tuple[str, str], dict[str, list[tuple[VersionUsage, Group]]]] = defaultdict(
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
            utils = [u for _, g in items for u in g.utils]
            entries.append(
                GpuModelUsage(
                    gpu_model=gpu_model,
                    environments=sorted({v.environment or v.cluster for v, _ in items}),
                    gpu_hours=round(sum(g.seconds for _, g in items) / 3600.0, 4),
                    util_mean=_round(
                        sum(g.util_weighted for _, g in items) / samples if samples else None
                    ),
                    util_p95=_round(percentile(utils, 95) if utils else None),
                    cost=cost,
                    predictions=count,
                    cost_per_1k_predictions=(
                        round(cost / count * 1000, 6) if cost is not None and count else None
                    ),
                    predictions_approximate=any(v.predictions_approximate for v, _ in items),
                )
            )
        out.append(GpuComparison(model=model, version=version, by_gpu_model=entries))
    return out


def _round(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None
