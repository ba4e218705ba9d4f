"""Monitoring of the monitoring: what the hardware page says when the numbers are missing,
stuck, unattributed or approximate, and how to fix it. Pure functions over a scrape."""

from __future__ import annotations

from datetime import datetime

from modeldeck.core.config import Settings
from modeldeck.core.hardware.aggregate import Diagnostics
from modeldeck.core.hardware.attribution import Reason
from modeldeck.core.hardware.collect import Collected
from modeldeck.core.hardware.models import Finding, FindingKind
from modeldeck.core.hardware.pricing import price_key

FIX_EXPORTER_K8S = (
    "run dcgm-exporter with DCGM_EXPORTER_KUBERNETES=true and mount the kubelet pod-resources "
    "socket (hostPath /var/lib/kubelet/pod-resources); serving pods must request nvidia.com/gpu "
    "in resources.limits, or the exporter cannot map GPUs to pods"
)
FIX_POD_LABELS = (
    "label the serving pods modeldeck.io/model and modeldeck.io/version and let "
    "kube-state-metrics export them (--metric-labels-allowlist="
    "pods=[modeldeck.io/model,modeldeck.io/version])"
)
_MAX_LISTED = 8


def _pods(pods: set[str]) -> str:
    listed = sorted(pods)
    more = f" and {len(listed) - _MAX_LISTED} more" if len(listed) > _MAX_LISTED else ""
    return ", ".join(listed[:_MAX_LISTED]) + more


def data_findings(settings: Settings, data: Collected, diag: Diagnostics) -> list[Finding]:
    """Everything that makes the stored numbers incomplete, in the order a person fixes it."""
    out = _missing(settings, data, diag)
    for cluster, gpus in sorted(diag.stuck.items()):
        out.append(
            Finding(
                kind=FindingKind.metrics_stuck,
                cluster=cluster,
                summary=f"{len(gpus)} GPU(s) on {cluster or 'an unknown cluster'} report 0% "
                f"utilisation and 0 W for the whole window ({_pods(set(gpus))})",
                fix="a powered GPU never draws 0 W: restart dcgm-exporter on those nodes and check "
                "its logs (DCGM host engine not running, or the GPU fell off the bus)",
                details={"gpus": sorted(gpus)},
            )
        )
    out += _attribution(settings, diag)
    out += _labels(data)
    for (cluster, gpu), pods in sorted(diag.shared.items()):
        out.append(
            Finding(
                kind=FindingKind.shared_gpu,
                severity="info",
                cluster=cluster,
                gpu_uuid=gpu,
                summary=f"GPU {gpu} on {cluster} is shared by {len(pods)} pods or MIG slices "
                f"({_pods(pods)}): its GPU-hours are split equally, so they are approximate",
                details={"pods": sorted(pods)},
            )
        )
    for model in sorted(diag.gpu_models):
        if price_key(model, settings.gpu_cost_per_hour) is None:
            out.append(
                Finding(
                    kind=FindingKind.unpriced,
                    severity="info",
                    summary=f"no price per GPU-hour for GPU model {model or '(unknown)'!r}: "
                    "its cost is not shown",
                    fix="add it to gpu_cost_per_hour in modeldeck.yaml, e.g. "
                    f"gpu_cost_per_hour: {{{_short(model)}: 2.50}}",
                )
            )
    return out


def _short(model: str) -> str:
    words = [w for w in model.replace("-", " ").split() if w.upper() not in ("NVIDIA", "TESLA")]
    return words[0] if words else "MODEL"


def _missing(settings: Settings, data: Collected, diag: Diagnostics) -> list[Finding]:
    window = f"{data.start:%Y-%m-%d %H:%M}–{data.end:%H:%M} UTC"
    if not diag.series_per_cluster:
        return [
            Finding(
                kind=FindingKind.metrics_missing,
                summary=f"no GPU metrics in Prometheus for {window}",
                fix="check that dcgm-exporter runs on the GPU nodes and that Prometheus scrapes it "
                "(Prometheus → Status → Targets); stored history stays visible meanwhile",
            )
        ]
    used = {e.cluster for e in settings.environments}
    out = []
    for cluster in sorted(used - set(diag.series_per_cluster)):
        out.append(
            Finding(
                kind=FindingKind.metrics_missing,
                cluster=cluster,
                summary=f"no GPU metrics from cluster {cluster} for {window}",
                fix=f"check dcgm-exporter on {cluster} and that its series carry "
                f'{settings.prometheus.labels.get("cluster", "cluster")}="{cluster}" '
                "(a Prometheus relabel rule or external label)",
            )
        )
    for kind in data.absent:
        if kind in ("engine_active", "energy"):
            continue  # optional: profiling metrics and the energy counter are often disabled
        out.append(
            Finding(
                kind=FindingKind.metrics_missing,
                severity="info",
                summary=f"metric {kind} ({settings.prometheus.metrics.get(kind, kind)}) has no "
                f"series for {window}: its columns stay empty",
                fix="enable it in dcgm-exporter's counters CSV (-f / DCGM_EXPORTER_COLLECTORS)",
            )
        )
    return out


def _attribution(settings: Settings, diag: Diagnostics) -> list[Finding]:
    out = []
    used = {e.cluster for e in settings.environments}
    for cluster, count in sorted(diag.no_pod_label.items()):
        if cluster in used and count == diag.series_per_cluster.get(cluster):
            out.append(
                Finding(
                    kind=FindingKind.attribution,
                    cluster=cluster,
                    summary=f"GPU series on {cluster} carry no pod or namespace labels, so no GPU "
                    "can be tied to a model version",
                    fix=FIX_EXPORTER_K8S,
                )
            )
    messages = {
        Reason.no_environment: (
            "pods in namespace {ns} of {cluster} belong to no modeldeck environment ({pods})",
            "add an environment for that cluster and namespace, or " + FIX_POD_LABELS,
        ),
        Reason.no_target: (
            "pods {pods} in {cluster}/{ns} match no model's target name",
            "name serving objects after the environment's target (environments[]"
            ".target, e.g. '{model}'), or " + FIX_POD_LABELS,
        ),
        Reason.no_version: (
            "pods {pods} in {cluster}/{ns} match a model, but the deployment "
            "history has no version active there at that time",
            "promote through modeldeck so the history knows what runs, or " + FIX_POD_LABELS,
        ),
        Reason.unknown_labels: (
            "pods {pods} in {cluster}/{ns} are labelled with a model or "
            "version that is not registered",
            "register the version (`modeldeck register`) or fix the "
            "modeldeck.io/model and modeldeck.io/version pod labels",
        ),
    }
    for (reason, cluster, ns), pods in sorted(diag.unattributed.items()):
        summary, fix = messages[reason]
        out.append(
            Finding(
                kind=FindingKind.attribution,
                cluster=cluster,
                summary=summary.format(pods=_pods(pods), cluster=cluster or "?", ns=ns or "?"),
                fix=fix,
                details={"reason": reason.value, "namespace": ns, "pods": sorted(pods)},
            )
        )
    return out


def _labels(data: Collected) -> list[Finding]:
    out = []
    if data.unidentified:
        out.append(
            Finding(
                kind=FindingKind.missing_labels,
                summary=f"{data.unidentified} GPU series have neither a UUID nor a gpu label and "
                "were ignored",
                fix="do not drop dcgm-exporter's UUID/gpu labels in relabel rules, or map the "
                "labels your cluster uses under prometheus.labels",
            )
        )
    if data.no_gpu_identity:
        out.append(
            Finding(
                kind=FindingKind.missing_labels,
                summary=f"{data.no_gpu_identity} GPU series have a gpu index but neither a UUID "
                "nor a node label: they are told apart by pod, so a GPU shared by several pods "
                "counts once per pod and free GPUs of different nodes count as one",
                fix="keep dcgm-exporter's UUID and Hostname labels, or map the labels your "
                "cluster uses under prometheus.labels.uuid / prometheus.labels.node",
            )
        )
    if data.no_cluster:
        out.append(
            Finding(
                kind=FindingKind.missing_labels,
                summary=f"{data.no_cluster} GPU series have no cluster label and their namespace "
                "does not tell the cluster: they count as an unknown cluster",
                fix="add a cluster label (relabel rule or external label) matching the cluster "
                "names in modeldeck.yaml, or set prometheus.labels.cluster",
            )
        )
    if (issue := data.pod_labels_issue) is not None:
        out.append(
            Finding(
                kind=FindingKind.missing_labels,
                severity="warning" if issue.configured else "info",
                summary=f"{issue.key} ({issue.name!r}): {issue.problem}; pods are attributed by "
                "their names only",
                fix=(f"{issue.suggestion}; " if issue.suggestion else "")
                + (
                    f"set {issue.key} in modeldeck.yaml to the name your cluster uses"
                    if issue.configured
                    else FIX_POD_LABELS
                ),
                details={"setting": issue.key, "name": issue.name},
            )
        )
    for cluster in sorted(c for c in data.no_model_name if c):
        out.append(
            Finding(
                kind=FindingKind.missing_labels,
                severity="info",
                cluster=cluster,
                summary=f"GPU series on {cluster} have no modelName label: priced as the "
                "cluster's configured gpu_model",
                fix="keep dcgm-exporter's modelName label, or set prometheus.labels.gpu_model",
            )
        )
    return out


def unavailable(error: str, since: datetime) -> Finding:
    return Finding(
        kind=FindingKind.metrics_missing,
        severity="warning",
        summary=f"metrics unavailable since {since:%Y-%m-%d %H:%M} UTC: {error}",
    )
