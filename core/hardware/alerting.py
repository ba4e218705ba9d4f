"""GPU alerts: idle GPUs, memory near full, thermal, metrics missing or stuck.

They go through the alerts engine (fire/resolve deduplicate by fingerprint), so a GPU idle for
a week is one alert that repeats on the engine's schedule, and it resolves by itself once the
GPU is busy or released.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import OPEN, Alert, Severity
from modeldeck.core.clock import Clock
from modeldeck.core.config import Settings
from modeldeck.core.hardware.aggregate import HourlyRow
from modeldeck.core.hardware.models import Finding, FindingKind, GpuUsageHourly
from modeldeck.core.hardware.prom import floor_time

IDLE = "gpu_idle"
MEMORY = "gpu_memory_full"
THERMAL = "gpu_thermal"
METRICS = "gpu_metrics"
UNAVAILABLE = "gpu_metrics_unavailable"
RULES = (IDLE, MEMORY, THERMAL, METRICS)
# Memory and heat alert only for the hours the scheduled scrape covers (the current one and
# the one before): a backfill or catch-up of older hours must not page about last month.
RECENT = timedelta(hours=2)


def recent_since(now: datetime) -> datetime:
    """The first hour whose readings may still alert."""
    return floor_time(now - RECENT, 3600)


@dataclass
class Firing:
    rule: str
    severity: Severity
    summary: str
    details: dict[str, Any]
    key: str
    ids: dict[str, int | None] = field(default_factory=dict)
    names: tuple[str | None, str | None, str | None] = (None, None, None)


def idle(session: Session, settings: Settings, end: datetime, names: Any) -> list[Firing]:
    """GPUs a version held for the last `idle_hours` with every hour below the threshold.

    Only hours with utilisation readings count (`samples` > 0): a GPU whose utilisation is
    unknown (a MIG slice exporting only memory) is not idle, and an unknown hour is neither
    idle nor held for this rule, so a GPU is idle only on evidence."""
    cfg = settings.prometheus
    since = floor_time(end - timedelta(hours=cfg.idle_hours), 3600)
    held = func.sum(GpuUsageHourly.gpu_seconds)  # as stored: independent of today's step
    readings = func.nullif(func.sum(GpuUsageHourly.samples), 0)
    rows = session.execute(
        select_columns(
            GpuUsageHourly.model_id,
            GpuUsageHourly.version_id,
            GpuUsageHourly.environment_id,
            GpuUsageHourly.cluster,
            GpuUsageHourly.node,
            GpuUsageHourly.gpu_uuid,
            held,
            func.max(GpuUsageHourly.util_mean),
            func.sum(GpuUsageHourly.util_mean * GpuUsageHourly.samples) / readings,
        )
        .where(
            col(GpuUsageHourly.hour) >= since,
            col(GpuUsageHourly.hour) < end,
            col(GpuUsageHourly.version_id).is_not(None),
            col(GpuUsageHourly.samples) > 0,
        )
        .group_by(
            GpuUsageHourly.model_id,
            GpuUsageHourly.version_id,
            GpuUsageHourly.environment_id,
            GpuUsageHourly.cluster,
            GpuUsageHourly.node,
            GpuUsageHourly.gpu_uuid,
        )
    ).all()
    out = []
    needed = 0.9 * cfg.idle_hours * 3600
    for model_id, version_id, env_id, cluster, node, gpu, seconds, peak, mean in rows:
        if mean is None or seconds < needed or peak >= cfg.idle_util_percent:
            continue
        model, version, env = names(model_id, version_id, env_id)
        out.append(
            Firing(
                rule=IDLE,
                severity=Severity.warning,
                key=f"{cluster}/{gpu}",
                ids={"model_id": model_id, "version_id": version_id, "environment_id": env_id},
                names=(model, version, env),
                summary=f"{model} {version} in {env or cluster} holds GPU {gpu} "
                f"on {node or cluster} at {mean:.1f}% utilisation for {cfg.idle_hours:g}h",
                details={
                    "metric": "gpu_utilisation_percent",
                    "value": round(mean, 2),
                    "peak_hourly": round(peak, 2),
                    "threshold": cfg.idle_util_percent,
                    "window_hours": cfg.idle_hours,
                    "cluster": cluster,
                    "node": node,
                    "gpu": gpu,
                    "fix": "scale the deployment down, share the GPU "
                    "(time-slicing/MIG) or move the model to a smaller GPU",
                },
            )
        )
    return out


def pressure(
    rows: list[HourlyRow], settings: Settings, names: Any, since: datetime
) -> list[Firing]:
    """Memory near full and thermal, per GPU and version, in this scrape's hours from `since`
    (`recent_since(now)`)."""
    cfg = settings.prometheus
    worst: dict[tuple[str, str, str, int | None], tuple[float, HourlyRow]] = {}
    for row in rows:
        if row.hour < since:
            continue
        if row.memory_used_max_mib and row.memory_total_mib:
            pct = 100.0 * row.memory_used_max_mib / row.memory_total_mib
            if pct >= cfg.memory_full_percent:
                _keep(worst, (MEMORY, row.cluster, row.gpu_uuid, row.version_id), pct, row)
        if row.temp_max_celsius is not None and row.temp_max_celsius >= cfg.temp_max_celsius:
            _keep(
                worst,
                (THERMAL, row.cluster, row.gpu_uuid, row.version_id),
                row.temp_max_celsius,
                row,
            )
    out = []
    for (rule, cluster, gpu, _), (value, row) in sorted(worst.items(), key=lambda i: i[0][:3]):
        model, version, env = names(row.model_id, row.version_id, row.environment_id)
        who = f"{model} {version} in {env or cluster}" if model else "an unattributed pod"
        if rule == MEMORY:
            summary = f"GPU {gpu} memory {value:.0f}% full ({who})"
            details = {
                "metric": "gpu_memory_used_percent",
                "value": round(value, 1),
                "threshold": cfg.memory_full_percent,
                "fix": "a bigger batch or a new version may OOM: lower the batch size "
                "or move to a GPU with more memory",
            }
        else:
            summary = f"GPU {gpu} at {value:.0f} °C ({who})"
            details = {
                "metric": "gpu_temp_celsius",
                "value": value,
                "threshold": cfg.temp_max_celsius,
                "fix": "the GPU will throttle: check the node's cooling and fans",
            }
        details |= {"cluster": cluster, "node": row.node, "gpu": gpu, "hour": row.hour.isoformat()}
        out.append(
            Firing(
                rule=rule,
                severity=Severity.warning,
                summary=summary,
                details=details,
                key=f"{cluster}/{gpu}",
                ids={
                    "model_id": row.model_id,
                    "version_id": row.version_id,
                    "environment_id": row.environment_id,
                },
                names=(model, version, env),
            )
        )
    return out


def _keep(
    worst: dict[Any, tuple[float, HourlyRow]], key: Any, value: float, row: HourlyRow
) -> None:
    if key not in worst or value > worst[key][0]:
        worst[key] = (value, row)


def from_findings(findings: list[Finding]) -> list[Firing]:
    """Missing or stuck GPU metrics alert too: a silent exporter hides idle GPUs."""
    out = []
    for f in findings:
        if (
            f.kind in (FindingKind.metrics_missing, FindingKind.metrics_stuck)
            and f.severity == "warning"
        ):
            out.append(
                Firing(
                    rule=METRICS,
                    severity=Severity.warning,
                    summary=f.summary,
                    details={"fix": f.fix, **f.details},
                    key=f"{f.kind.value}/{f.cluster}",
                )
            )
    return out


def apply(session: Session, settings: Settings, firing: list[Firing], clock: Clock) -> None:
    """Fire what fires now; resolve the open GPU alerts that did not fire this time."""
    seen = set()
    for f in firing:
        alert = alerts.fire(
            session,
            settings=settings,
            rule=f.rule,
            severity=f.severity,
            summary=f.summary,
            details=f.details,
            key=f.key,
            clock=clock,
            **f.ids,
        )
        seen.add(alert.fingerprint)
    stale = session.exec(
        select(Alert).where(col(Alert.rule).in_(RULES), col(Alert.status).in_(OPEN))
    ).all()
    for alert in stale:
        if alert.fingerprint not in seen:
            alerts.resolve(
                session,
                settings=settings,
                rule=alert.rule,
                model_id=alert.model_id,
                version_id=alert.version_id,
                environment_id=alert.environment_id,
                key=alert.key,
                clock=clock,
            )


def scrape_failed(
    session: Session, settings: Settings, error: str, since: datetime, clock: Clock
) -> None:
    alerts.fire(
        session,
        settings=settings,
        rule=UNAVAILABLE,
        severity=Severity.warning,
        summary=f"GPU metrics unavailable since {since:%Y-%m-%d %H:%M} UTC: {error}",
        details={
            "error": error,
            "since": since.isoformat(),
            "fix": "check prometheus.url and that Prometheus is up",
        },
        clock=clock,
    )


def scrape_recovered(session: Session, settings: Settings, clock: Clock) -> None:
    alerts.resolve(session, settings=settings, rule=UNAVAILABLE, clock=clock)


def as_findings(firing: list[Firing]) -> list[Finding]:
    kinds = {IDLE: FindingKind.idle, MEMORY: FindingKind.memory_full, THERMAL: FindingKind.thermal}
    out = []
    for f in firing:
        if f.rule in kinds:
            out.append(
                Finding(
                    kind=kinds[f.rule],
                    summary=f.summary,
                    fix=str(f.details.get("fix", "")),
                    cluster=str(f.details.get("cluster", "")),
                    node=str(f.details.get("node", "")),
                    gpu_uuid=str(f.details.get("gpu", "")),
                    model=f.names[0],
                    version=f.names[1],
                    environment=f.names[2],
                    details=f.details,
                )
            )
    return out
