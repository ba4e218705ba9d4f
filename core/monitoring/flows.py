"""Cross-domain flows: a check result becomes an alert and, at trust level rollback, a
rollback; a cluster that drifted from the records becomes an alert.

Each domain keeps its own rules (monitoring computes, alerts deduplicate and notify, rollouts
decide whether a rollback is possible); this module only wires them in order.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from modeldeck.core import logs
from modeldeck.core.alerts import rules
from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import OPEN, Alert, Severity
from modeldeck.core.alerts.rules import window_text
from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.clusters.models import ClusterDrift, DriftFinding, DriftKind
from modeldeck.core.config import Settings
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import BackendUnavailable, ModeldeckError, NotFound
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.registry.models import Model
from modeldeck.core.rollouts import context as deployment_rows
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import (
    ROLLING_OUT,
    Deployment,
    DeploymentPublic,
    DeploymentState,
)

log = logs.get("modeldeck.flows")
CLUSTER_DRIFT = "cluster_drift"
GATING_KINDS = (CheckKind.drift, CheckKind.quality, CheckKind.decay)
LATE = "realised"  # alert key of verdicts on labels that arrived after the check


def check_and_alert(
    session: Session,
    *,
    settings: Settings,
    deployment_id: int,
    window_end: datetime | None = None,
    clock: Clock = utcnow,
    kinds: tuple[CheckKind, ...] | None = None,
    progress: Any = None,
) -> list[CheckResult]:
    """Run a deployment's checks, alert on their results, roll back when the model's trust
    level says so. What the scheduler runs for every active deployment, and what a manual
    check (`POST /checks/run`, `modeldeck check`) runs too."""
    monitoring = _monitoring_service()
    results: list[CheckResult] = monitoring.run_checks(
        session,
        settings=settings,
        deployment_id=deployment_id,
        window_end=window_end,
        clock=clock,
        kinds=monitoring.DATA_KINDS if kinds is None else kinds,
        progress=progress,
    )
    alert_on_results(session, settings=settings, results=results, clock=clock)
    return results


def alert_on_late_labels(
    session: Session, *, settings: Settings, results: list[CheckResult], clock: Clock = utcnow
) -> list[Alert]:
    """Decay results the label catch-up re-judged on labels that arrived after the check:
    the newest per deployment fires or resolves `performance_drop` under its own key
    ("realised"), so a late verdict neither fights the current window's alert nor is lost."""
    newest: dict[int, CheckResult] = {}
    for r in results:
        if r.deployment_id not in newest or r.window_end > newest[r.deployment_id].window_end:
            newest[r.deployment_id] = r
    touched: list[Alert] = []
    for result in newest.values():
        deployment = session.get(Deployment, result.deployment_id)
        assert deployment is not None
        ctx = deployment_rows.load(session, deployment)
        model = ctx.model
        cfg = settings.check_config(model.name)
        subject = ctx.subject
        finding = rules.performance_drop(result, cfg, subject)
        ids: dict[str, Any] = {
            "model_id": deployment.model_id,
            "version_id": deployment.version_id,
            "environment_id": deployment.environment_id,
        }
        if finding.firing is None:
            continue
        if not finding.firing:
            done = alerts.resolve(
                session, settings=settings, rule=rules.DECAY, key=LATE, clock=clock, **ids
            )
            touched += [done] if done else []
            continue
        touched.append(
            alerts.fire(
                session,
                settings=settings,
                rule=rules.DECAY,
                severity=finding.severity,
                summary=f"{finding.summary} (labels arrived after the check)",
                details={**finding.details, "trust": cfg.trust, "deployment_id": deployment.id},
                key=LATE,
                clock=clock,
                notify_people=cfg.trust != "shadow",
                pauses_promotions=cfg.trust in ("pause", "rollback"),
                **ids,
            )
        )
    return touched


def _monitoring_service() -> Any:
    # Imported on use: the checks pull in evidently/pandas, which the API and the bot never
    # need, and a missing module is reported as a clear error instead of an import crash.
    try:
        return importlib.import_module("modeldeck.core.monitoring.service")
    except ImportError as exc:
        raise BackendUnavailable(f"monitoring checks are not available: {exc}") from exc


def alert_on_results(
    session: Session, *, settings: Settings, results: list[CheckResult], clock: Clock = utcnow
) -> list[Alert]:
    """evaluate_check for each result, then the automatic rollback if one is due."""
    touched: list[Alert] = []
    for result in results:
        touched += alerts.evaluate_check(session, settings=settings, result=result, clock=clock)
    roll_back_if_due(session, settings=settings, results=results, clock=clock)
    return touched


def roll_back_if_due(
    session: Session, *, settings: Settings, results: list[CheckResult], clock: Clock = utcnow
) -> DeploymentPublic | None:
    """At trust level `rollback`, a failed drift/quality/decay check rolls the deployment back
    when its environment allows it (auto_rollback: true). rollouts.auto_rollback refuses a
    second rollback of the same deployment, so a repeated failure is harmless."""
    failed = [r for r in results if r.status == CheckStatus.fail and r.kind in GATING_KINDS]
    if not failed:
        return None
    deployment = session.get(Deployment, failed[0].deployment_id)
    if deployment is None:
        raise NotFound(f"no deployment with id {failed[0].deployment_id}")
    model = session.get(Model, deployment.model_id)
    env = session.get(Environment, deployment.environment_id)
    assert model is not None and env is not None
    if settings.check_config(model.name).trust != "rollback":
        return None
    if not env.auto_rollback:
        log.info("flows.rollback_not_allowed", model=model.name, environment=env.name)
        return None
    reason = "; ".join(
        f"{r.kind} check #{r.id} failed over {window_text(r.window_start, r.window_end)}"
        for r in failed
    )
    try:
        done = rollouts.auto_rollback(
            session,
            settings=settings,
            model_id=deployment.model_id,
            environment_id=deployment.environment_id,
            reason=reason,
            clock=clock,
            deployment_id=deployment.id,
        )
    except ModeldeckError as exc:
        session.rollback()
        log.warning(
            "flows.auto_rollback_failed", model=model.name, environment=env.name, error=str(exc)
        )
        return None
    if done is not None and done.state == DeploymentState.failed:
        # The cluster refused it; the next failed check tries again (rollouts.auto_rollback).
        log.warning(
            "flows.auto_rollback_failed",
            model=model.name,
            environment=env.name,
            deployment_id=done.id,
            error=done.message,
        )
    elif done is not None:
        log.warning(
            "flows.auto_rollback",
            model=model.name,
            environment=env.name,
            to_version=done.version,
            reason=reason,
        )
    return done


def reconcile_and_alert(
    session: Session, *, settings: Settings, clock: Clock = utcnow
) -> list[DriftFinding]:
    """Reconcile clusters with the records and keep one alert per finding open while it
    lasts; findings that went away resolve (but not while their cluster is unreachable:
    not being able to look is not the same as the drift being gone)."""
    findings = rollouts.reconcile(session, settings=settings, clock=clock)
    seen: set[str] = set()
    unreachable: set[tuple[int, int]] = set()
    for finding in findings:
        deployment = session.get(Deployment, finding.deployment_id or -1)
        if deployment is None:
            continue
        if finding.kind == DriftKind.unreachable:
            unreachable.add((deployment.model_id, deployment.environment_id))
        alert = alerts.fire(
            session,
            settings=settings,
            rule=CLUSTER_DRIFT,
            severity=Severity.warning
            if finding.kind == DriftKind.unreachable
            else Severity.critical,
            summary=f"{finding.model} in {finding.environment} ({finding.cluster}): "
            f"{finding.message}",
            details={
                "metric": f"cluster {finding.kind}",
                "value": finding.observed or "-",
                "threshold": f"expected {finding.expected}",
                "cluster": finding.cluster,
                "deployment_id": finding.deployment_id,
            },
            model_id=deployment.model_id,
            version_id=deployment.version_id,
            environment_id=deployment.environment_id,
            key=str(finding.kind),
            clock=clock,
        )
        seen.add(alert.fingerprint)
    _resolve_gone(session, settings, seen, unreachable, clock)
    return findings


def _resolve_gone(
    session: Session,
    settings: Settings,
    seen: set[str],
    unreachable: set[tuple[int, int]],
    clock: Clock,
) -> None:
    """Resolve cluster_drift alerts whose finding is gone. The ClusterDrift table says so for
    stored kinds (reconcile resolves its rows); an unreachable alert clears once its cluster
    answered this round. Pairs reconcile skipped (rollout in flight) keep their alerts."""
    busy = {
        (d.model_id, d.environment_id)
        for d in session.exec(
            select(Deployment).where(col(Deployment.state).in_(ROLLING_OUT))
        ).all()
    }
    still_open = {
        (r.model_id, r.environment_id, str(r.kind))
        for r in session.exec(
            select(ClusterDrift).where(col(ClusterDrift.resolved_at).is_(None))
        ).all()
    }
    for alert in session.exec(
        select(Alert).where(Alert.rule == CLUSTER_DRIFT, col(Alert.status).in_(OPEN))
    ).all():
        pair = (alert.model_id, alert.environment_id)
        if alert.fingerprint in seen or pair in unreachable or pair in busy:
            continue
        if alert.key != DriftKind.unreachable and (*pair, alert.key) in still_open:
            continue
        alerts.resolve(
            session,
            settings=settings,
            rule=CLUSTER_DRIFT,
            model_id=alert.model_id,
            version_id=alert.version_id,
            environment_id=alert.environment_id,
            key=alert.key,
            clock=clock,
        )
