"""Step samples → hourly rows per GPU × pod × version, and what went wrong on the way.

A GPU held by n pods at a step gives each pod step/n GPU-seconds (and 1/n of the energy), so
GPU-hours never exceed the GPUs that exist; such rows are marked `shared` (approximate). The
energy counter is differenced here, treating a decrease as a reset (exporter or driver
restart), as Prometheus' increase() does.

A series holds its GPU at a step when it has a gauge reading there (utilisation, engine
activity or memory): a series with only energy samples (a pod that stopped just before the
window: the counter query starts one step earlier) holds nothing, and a MIG slice without
GPU_UTIL takes its utilisation from the graphics-engine activity (× 100). A series with neither
(a MIG slice exporting only memory) still holds its GPU, but its utilisation is unknown: its rows
have `samples` = 0 (the number of utilisation readings), which every reader takes as "no
utilisation", never as 0 %.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from modeldeck.core.hardware.attribution import Attributor, Owner, Reason
from modeldeck.core.hardware.collect import Collected, Samples, SeriesKey, group_by_gpu
from modeldeck.core.hardware.models import Attribution

MIB_PER_GIB = 1024.0
HOLDING = ("gpu_util", "engine_active", "fb_used")  # a reading of these = the series holds


@dataclass
class _Acc:
    util: list[float] = field(default_factory=list)
    engine: list[float] = field(default_factory=list)
    mem_used: list[float] = field(default_factory=list)
    mem_total: list[float] = field(default_factory=list)
    power: list[float] = field(default_factory=list)
    temp: list[float] = field(default_factory=list)
    energy_wh: float = 0.0
    has_energy: bool = False
    gpu_seconds: float = 0.0
    shared: bool = False

    def merge(self, other: _Acc) -> None:
        """Another series of the same GPU × pod × version × hour (e.g. a label that changed)."""
        for name in ("util", "engine", "mem_used", "mem_total", "power", "temp"):
            getattr(self, name).extend(getattr(other, name))
        self.energy_wh += other.energy_wh
        self.has_energy = self.has_energy or other.has_energy
        self.gpu_seconds += other.gpu_seconds
        self.shared = self.shared or other.shared


@dataclass
class Diagnostics:
    """What the findings are built from."""

    unattributed: dict[tuple[Reason, str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )  # (reason, cluster, namespace) -> pods
    shared: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    stuck: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    no_pod_label: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    series_per_cluster: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    gpu_models: set[str] = field(default_factory=set)


@dataclass
class HourlyRow:
    """A `gpu_usage_hourly` row before it is stored (plain: 10^5 of them are inserted with
    one executemany, not as ORM objects)."""

    hour: datetime
    cluster: str
    node: str
    gpu_uuid: str
    gpu_index: str
    mig_instance: str
    gpu_model: str
    namespace: str
    pod: str
    model_id: int | None
    version_id: int | None
    environment_id: int | None
    attribution: str
    util_mean: float
    util_p95: float
    engine_active_mean: float | None
    memory_used_mib: float | None
    memory_used_max_mib: float | None
    memory_total_mib: float | None
    power_watts: float | None
    energy_wh: float | None
    temp_celsius: float | None
    temp_max_celsius: float | None
    gpu_seconds: float
    shared: bool
    samples: int


def aggregate(data: Collected, attributor: Attributor) -> tuple[list[HourlyRow], Diagnostics]:
    """Hourly rows for the windows in [data.start, data.end)."""
    lo, hi = int(data.start.timestamp()), int(data.end.timestamp())
    rows: list[HourlyRow] = []
    diag = Diagnostics()
    for keys in group_by_gpu(data.series).values():
        holders = _holders(data, keys, lo, hi)
        # One row per natural key (hour, GPU, MIG slice, namespace, pod, version: the unique
        # index of gpu_usage_hourly), even when several series of it exist (label variants).
        merged: dict[tuple[int, str, str, str, int | None], tuple[SeriesKey, Owner | None, _Acc]]
        merged = {}
        for key in keys:
            accs = _accumulate(data, key, holders[key], attributor, diag)
            for (hour, owner), acc in accs.items():
                natural = (
                    hour,
                    key.mig_instance,
                    key.namespace,
                    key.pod,
                    owner.version_id if owner else None,
                )
                if natural in merged:
                    merged[natural][2].merge(acc)
                else:
                    merged[natural] = (key, owner, acc)
        rows += [_row(n[0], key, owner, acc) for n, (key, owner, acc) in merged.items()]
    _diagnose_series(data, diag)
    return rows, diag


def _present(series: dict[str, Samples]) -> set[int]:
    """The steps at which a series has a gauge reading (and so holds its GPU)."""
    out: set[int] = set()
    for kind in HOLDING:
        out.update(series.get(kind, {}))
    return out


def _holders(
    data: Collected, keys: list[SeriesKey], lo: int, hi: int
) -> dict[SeriesKey, dict[int, int]]:
    """Per series, the windows in which it holds the GPU and how many series share it then.
    Pods (and MIG slices) share a GPU; a GPU no pod holds is reported once, as free."""
    steps = {k: _present(data.series[k]) for k in keys}
    if len(keys) == 1:
        (key,) = keys
        return {key: {ts: 1 for ts in steps[key] if lo <= ts < hi}}
    out: dict[SeriesKey, dict[int, int]] = {k: {} for k in keys}
    for ts in set().union(*steps.values()):
        if not lo <= ts < hi:
            continue
        present = [k for k in keys if ts in steps[k]]
        held = [k for k in present if k.pod or k.mig_instance] or present[:1]
        # Two containers of one pod (or label variants) are one holder, not two sharers.
        unique = list({(k.mig_instance, k.namespace, k.pod): k for k in reversed(held)}.values())
        for k in unique:
            out[k][ts] = len(unique)
    return out


def _accumulate(
    data: Collected,
    key: SeriesKey,
    windows: dict[int, int],
    attributor: Attributor,
    diag: Diagnostics,
) -> dict[tuple[int, Owner | None], _Acc]:
    """One series' windows (start -> number of series sharing the GPU then) into per-hour,
    per-owner accumulators."""
    series, step = data.series[key], data.step
    util, engine = series.get("gpu_util", {}), series.get("engine_active", {})
    used, free = series.get("fb_used", {}), series.get("fb_free", {})
    power, temp = series.get("power", {}), series.get("temp", {})
    energy = _deltas(series.get("energy", {}))
    owner_at = attributor.timeline(key)
    accs: dict[tuple[int, Owner | None], _Acc] = {}
    for ts, sharers in sorted(windows.items()):
        found = owner_at(ts)
        owner = found if isinstance(found, Owner) else None
        if isinstance(found, Reason) and found is not Reason.free:
            diag.unattributed[(found, key.cluster, key.namespace)].add(key.pod)
        slot = (ts - ts % 3600, owner)
        acc = accs.get(slot)
        if acc is None:
            acc = accs[slot] = _Acc()
        if (v := util.get(ts)) is not None:
            acc.util.append(v)
        if (v := engine.get(ts)) is not None:
            acc.engine.append(v)
            if ts not in util:  # MIG: no GPU_UTIL, the engine's activity instead
                acc.util.append(v * 100.0)
        if (v := used.get(ts)) is not None:
            acc.mem_used.append(v)
            if (f := free.get(ts)) is not None:
                acc.mem_total.append(v + f)
        if (v := power.get(ts)) is not None:
            acc.power.append(v)
        if (v := temp.get(ts)) is not None:
            acc.temp.append(v)
        acc.gpu_seconds += step / sharers
        if sharers > 1:
            acc.shared = True
            diag.shared[(key.cluster, key.gpu_id)].add(key.pod or key.mig_instance)
        if (e := energy.get(ts)) is not None:
            acc.energy_wh += e / sharers
            acc.has_energy = True
    return accs


def _deltas(counter: Samples) -> dict[int, float]:
    """Energy per window in Wh from DCGM's cumulative millijoules; a drop is a reset."""
    out: dict[int, float] = {}
    prev: float | None = None
    for ts in sorted(counter):
        value = counter[ts]
        if prev is not None:
            delta = value - prev if value >= prev else value
            out[ts] = delta / 3_600_000.0
        prev = value
    return out


def _diagnose_series(data: Collected, diag: Diagnostics) -> None:
    for key, series in data.series.items():
        if not any(kind in series for kind in HOLDING):
            continue  # energy only: a pod that stopped before the window
        diag.series_per_cluster[key.cluster] += 1
        diag.gpu_models.add(key.gpu_model)
        if not key.pod and not key.namespace:
            diag.no_pod_label[key.cluster] += 1
        util, power = series.get("gpu_util", {}).values(), series.get("power", {}).values()
        if len(util) >= 2 and power and not any(util) and not any(power):
            # A powered GPU never draws 0 W: all-zero readings mean a broken exporter.
            diag.stuck[key.cluster].append(key.gpu_id)


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), without numpy."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _row(hour: int, key: SeriesKey, owner: Owner | None, acc: _Acc) -> HourlyRow:
    return HourlyRow(
        hour=datetime.fromtimestamp(hour, tz=UTC),
        cluster=key.cluster,
        node=key.node,
        gpu_uuid=key.gpu_id,
        gpu_index=key.gpu,
        mig_instance=key.mig_instance,
        gpu_model=key.gpu_model,
        namespace=key.namespace,
        pod=key.pod,
        model_id=owner.model_id if owner else None,
        version_id=owner.version_id if owner else None,
        environment_id=owner.environment_id if owner else None,
        attribution=(owner.method if owner else Attribution.none).value,
        # Unknown utilisation is `samples` = 0; the 0.0 stored then is only there because the
        # columns are NOT NULL, and readers skip it (no idle alert, no mean or p95 pulled down).
        util_mean=_mean(acc.util) or 0.0,
        util_p95=percentile(acc.util, 95),
        engine_active_mean=_mean(acc.engine),
        memory_used_mib=_mean(acc.mem_used),
        memory_used_max_mib=max(acc.mem_used) if acc.mem_used else None,
        memory_total_mib=max(acc.mem_total) if acc.mem_total else None,
        power_watts=_mean(acc.power),
        energy_wh=acc.energy_wh if acc.has_energy else None,
        temp_celsius=_mean(acc.temp),
        temp_max_celsius=max(acc.temp) if acc.temp else None,
        gpu_seconds=acc.gpu_seconds,
        shared=acc.shared,
        samples=len(acc.util),  # utilisation readings (0: utilisation unknown)
    )
