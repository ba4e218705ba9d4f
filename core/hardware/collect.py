"""Fetch DCGM series from Prometheus at a fixed step, one value per series per window.

Each query is `avg by (<identity labels>) (avg_over_time(METRIC[step]))`: the `by` clause drops
`instance`/`job`, so one GPU scraped by two jobs is not counted twice, and a window with no
sample stays empty instead of repeating the last value for Prometheus' 5-minute lookback (which
would keep a deleted pod "holding" its GPU). The value evaluated at t covers (t - step, t].
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from modeldeck.core.config import Settings
from modeldeck.core.errors import InvalidInput
from modeldeck.core.hardware.prom import REQUIRED_METRICS, Names, Prometheus, suggest, windows

IDENTITY = (
    "cluster",
    "node",
    "uuid",
    "gpu",
    "mig_instance",
    "gpu_model",
    "namespace",
    "pod",
    "container",
)
GAUGES = ("gpu_util", "engine_active", "fb_used", "fb_free", "power", "temp")
COUNTERS = ("energy",)

Samples = dict[int, float]  # window start (unix seconds) -> value


class SeriesKey(NamedTuple):
    """One GPU (or MIG instance) as seen by one pod; the labels modeldeck keeps. (A tuple:
    it is hashed once per sample, and tuples of strings hash in C.)"""

    cluster: str
    node: str
    uuid: str
    gpu: str
    mig_instance: str
    gpu_model: str
    namespace: str
    pod: str
    container: str

    @property
    def gpu_id(self) -> str:
        """The physical GPU: its UUID, else node + index (exporters that drop UUID), else, with
        neither UUID nor node, pod + index: GPUs of different nodes must not merge into one
        "gpu 0" (the finding says a GPU shared by several such pods then counts once per pod)."""
        if self.uuid:
            return self.uuid
        if self.node:
            return f"{self.node}/gpu{self.gpu}"
        return f"{self.namespace}/{self.pod}/gpu{self.gpu}" if self.pod else f"/gpu{self.gpu}"


@dataclass(frozen=True)
class PodLabelsIssue:
    """kube_pod_labels gave nothing usable: which setting to check, and what Prometheus has."""

    key: str  # the setting, e.g. "prometheus.labels.version"
    name: str  # the metric or label name in effect
    problem: str  # what is wrong, in words
    suggestion: str  # "did you mean …?" from what Prometheus knows
    configured: bool  # the name was set in modeldeck.yaml (a misconfiguration, not a default)


@dataclass
class Collected:
    start: datetime
    end: datetime
    step: int
    series: dict[SeriesKey, dict[str, Samples]] = field(default_factory=dict)
    pod_labels: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)
    pod_labels_issue: PodLabelsIssue | None = None  # why no pod labels came back, if telling
    unidentified: int = 0  # series with neither UUID nor gpu index: dropped
    no_gpu_identity: int = 0  # series with a gpu index but neither UUID nor node: kept by pod
    no_cluster: int = 0  # series whose cluster could not be told
    no_model_name: set[str] = field(default_factory=set)  # clusters with series lacking it
    absent: list[str] = field(default_factory=list)  # optional metrics with no series


def collect(
    prom: Prometheus, names: Names, settings: Settings, start: datetime, end: datetime
) -> Collected:
    """All DCGM series of [start, end) at `prometheus.step_seconds` resolution."""
    step = settings.prometheus.step_seconds
    out = Collected(start=start, end=end, step=step)
    by = ", ".join(names.label(k) for k in IDENTITY)
    for kind in (*GAUGES, *COUNTERS):
        metric = names.metric(kind)
        if kind in COUNTERS:
            # The last counter value per window, one window earlier as the baseline of the first.
            promql = f"max by ({by}) (last_over_time({metric}[{step}s]))"
            first = start
        else:
            promql = f"avg by ({by}) (avg_over_time({metric}[{step}s]))"
            first = start + timedelta(seconds=step)
        found = False
        for lo, hi in windows(first, end, step, settings.prometheus.max_points):
            for item in prom.query_range(promql, lo, hi, step):
                found = True
                _add(out, settings, names, kind, item)
        if not found:
            _explain_empty(prom, names, settings, kind, out)
    out.pod_labels = _pod_labels(prom, names, settings, start, end)
    out.pod_labels_issue = _explain_pod_labels(prom, names, out.pod_labels, start, end)
    return out


def _add(
    out: Collected, settings: Settings, names: Names, kind: str, item: dict[str, object]
) -> None:
    labels = item.get("metric") or {}
    assert isinstance(labels, dict)
    values = {k: str(labels.get(names.label(k), "")) for k in IDENTITY}
    if not values["uuid"] and not values["gpu"]:
        if kind == "gpu_util":
            out.unidentified += 1
        return
    if not values["uuid"] and not values["node"] and kind == "gpu_util":
        out.no_gpu_identity += 1
    if not values["cluster"]:
        values["cluster"] = infer_cluster(settings, values["namespace"])
        if not values["cluster"] and kind == "gpu_util":
            out.no_cluster += 1
    if not values["gpu_model"]:
        values["gpu_model"] = _cluster_gpu_model(settings, values["cluster"])
        if kind == "gpu_util":
            out.no_model_name.add(values["cluster"])
    key = SeriesKey(**values)
    samples = out.series.setdefault(key, {}).setdefault(kind, {})
    step = out.step
    raw = item.get("values") or []
    assert isinstance(raw, list)
    for ts, value in raw:
        number = float(value)
        if number == number:  # NaN (a stale or broken exporter reading) is no reading
            samples[int(ts) - step] = number


def infer_cluster(settings: Settings, namespace: str) -> str:
    """A series without a cluster label: the only cluster, or the one whose environments use
    its namespace (one Prometheus per cluster rarely adds a cluster label)."""
    if len(settings.clusters) == 1:
        return settings.clusters[0].name
    owners = {e.cluster for e in settings.environments if e.namespace == namespace}
    return owners.pop() if len(owners) == 1 else ""


def _cluster_gpu_model(settings: Settings, cluster: str) -> str:
    for c in settings.clusters:
        if c.name == cluster:
            return c.gpu_model
    return ""


def _explain_empty(
    prom: Prometheus, names: Names, settings: Settings, kind: str, out: Collected
) -> None:
    """No series for a metric: a typo (error naming the key) or an exporter that is down."""
    metric = names.metric(kind)
    if kind not in REQUIRED_METRICS and metric == _default_metric(kind):
        out.absent.append(kind)  # an optional metric under its usual name: often disabled
        return
    known = prom.metric_names()
    if metric not in known:
        raise InvalidInput(
            f"prometheus.metrics.{kind}: Prometheus at {prom.url} has no metric named {metric!r}",
            hint=f"{suggest(metric, known)} (dcgm-exporter names it "
            f"{_default_metric(kind)!r}; set the name your cluster uses in modeldeck.yaml)",
        )
    out.absent.append(kind)


def _default_metric(kind: str) -> str:
    from modeldeck.core.config import PrometheusConfig

    return PrometheusConfig().metrics[kind]


def _pod_labels(
    prom: Prometheus, names: Names, settings: Settings, start: datetime, end: datetime
) -> dict[tuple[str, str, str], tuple[str, str]]:
    """(cluster, namespace, pod) -> (model, version) from kube-state-metrics' kube_pod_labels,
    for pods labelled modeldeck.io/model and modeldeck.io/version. Absent is normal."""
    lab = names.labels
    model, version = lab["model"], lab["version"]
    by = ", ".join((lab["cluster"], lab["namespace"], lab["pod"], model, version))
    step = max(settings.prometheus.step_seconds, 60)
    promql = (
        f"max by ({by}) (last_over_time({names.metric('pod_labels')}"
        f'{{{model}!="", {version}!=""}}[{step}s]))'
    )
    found: dict[tuple[str, str, str], tuple[str, str]] = {}
    for lo, hi in windows(
        start + timedelta(seconds=step),
        end + timedelta(seconds=step),
        step,
        settings.prometheus.max_points,
    ):
        for item in prom.query_range(promql, lo, hi, step):
            labels = item.get("metric") or {}
            namespace, pod = labels.get(lab["namespace"], ""), labels.get(lab["pod"], "")
            cluster = labels.get(lab["cluster"], "") or infer_cluster(settings, namespace)
            found[(cluster, namespace, pod)] = (labels[model], labels[version])
    return found


def _explain_pod_labels(
    prom: Prometheus,
    names: Names,
    found: dict[tuple[str, str, str], tuple[str, str]],
    start: datetime,
    end: datetime,
) -> PodLabelsIssue | None:
    """No usable pod labels: a metric or label name that matches nothing is reported (naming
    the setting), instead of every pod silently falling back to pod-name attribution."""
    defaults = _default_names()
    metric = names.metric("pod_labels")
    if found:
        if any(pod for _, _, pod in found):
            return None
        pod = names.label("pod")
        return PodLabelsIssue(
            key="prometheus.labels.pod",
            name=pod,
            problem=f"{metric} series have no {pod!r} label, so no pod can be matched",
            suggestion="",
            configured=pod != defaults.labels["pod"],
        )
    known = prom.metric_names()
    if metric not in known:
        return PodLabelsIssue(
            key="prometheus.metrics.pod_labels",
            name=metric,
            problem=f"Prometheus has no metric named {metric!r}",
            suggestion=suggest(metric, known),
            configured=metric != defaults.metrics["pod_labels"],
        )
    labels = prom.label_names(metric, start, end)
    for kind in ("model", "version"):
        label = names.label(kind)
        if label not in labels:
            return PodLabelsIssue(
                key=f"prometheus.labels.{kind}",
                name=label,
                problem=f"no {metric} series has a label named {label!r}",
                suggestion=suggest(label, [n for n in labels if n.startswith("label_")], "label"),
                configured=label != defaults.labels[kind],
            )
    return None  # the labels exist, no pod in this window carries both: pod names attribute


def _default_names() -> Names:
    from modeldeck.core.config import PrometheusConfig

    defaults = PrometheusConfig()
    return Names(metrics=defaults.metrics, labels=defaults.labels)


def group_by_gpu(
    series: dict[SeriesKey, dict[str, Samples]],
) -> dict[tuple[str, str], list[SeriesKey]]:
    """Series of the same physical GPU together: the pods (and MIG instances) that share it."""
    groups: dict[tuple[str, str], list[SeriesKey]] = defaultdict(list)
    for key in series:
        groups[(key.cluster, key.gpu_id)].append(key)
    return groups
