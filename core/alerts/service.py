"""Alerts: fire, deduplicate, repeat, snooze, resolve — Alertmanager semantics on our tables.

An alert is identified by its fingerprint (rule + model + version + environment + key). While
one is open (firing or snoozed) every new firing updates it (count, last_seen) instead of
opening another; the database guarantees it with a partial unique index. Notifications go
through the outbox in the same transaction: a new alert notifies at once, a still-firing one
again after NotifyConfig.repeat_interval_hours, a snoozed one not at all until the snooze
expires, and a resolve edits the Slack message it posted.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from modeldeck.core import logs
from modeldeck.core.alerts import absence, lookup, rules
from modeldeck.core.alerts import snooze as snoozing
from modeldeck.core.alerts.lookup import open_alert as open_alert
from modeldeck.core.alerts.models import OPEN, Alert, AlertPublic, AlertStatus, Severity
from modeldeck.core.alerts.public import to_public

# Re-exported: every interface calls alerts.service.snooze / parse_duration / wake_snoozed.
from modeldeck.core.alerts.snooze import MAX_SNOOZE as MAX_SNOOZE
from modeldeck.core.alerts.snooze import parse_duration as parse_duration
from modeldeck.core.alerts.snooze import snooze as snooze
from modeldeck.core.alerts.snooze import wake_snoozed as wake_snoozed
from modeldeck.core.audit import service as audit
from modeldeck.core.auth.models import SYSTEM, Actor, Role
from modeldeck.core.auth.service import require
from modeldeck.core.clock import Clock, as_utc, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.errors import Conflict, InvalidInput, NotFound
from modeldeck.core.metrics import ALERTS
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.notify import kit
from modeldeck.core.notify import service as notify
from modeldeck.core.registry import service as registry
from modeldeck.core.rollouts import context as deployment_rows
from modeldeck.core.rollouts.models import Deployment

log = logs.get("modeldeck.alerts")


def fingerprint(
    rule: str,
    model_id: int | None,
    version_id: int | None,
    environment_id: int | None,
    key: str = "",
) -> str:
    """Stable identity of "the same problem" (sha256 hex, 64 characters)."""
    raw = "\x1f".join(
        [rule, str(model_id or ""), str(version_id or ""), str(environment_id or ""), key]
    )
    return hashlib.sha256(raw.encode()).hexdigest()


def fire(
    session: Session,
    *,
    settings: Settings,
    rule: str,
    severity: Severity,
    summary: str,
    details: dict[str, Any],
    model_id: int | None = None,
    version_id: int | None = None,
    environment_id: int | None = None,
    key: str = "",
    clock: Clock = utcnow,
    notify_people: bool = True,
    pauses_promotions: bool = False,
    skip_channels: frozenset[str] = frozenset(),
) -> Alert:
    """Open the alert or refresh the open one with the same fingerprint; notify when new,
    when the repeat interval has passed, or when its snooze expired. Commits.

    `notify_people=False` records without notifying (trust level "shadow");
    `pauses_promotions` blocks promotions of the model in that environment while open;
    `skip_channels` are not told (e.g. the channel whose messages go dead). A new alert starts
    snoozed while a snooze of its fingerprint is still in force (snooze.keep_snooze).
    """
    if not rule or len(rule) > 100:
        raise InvalidInput("rule must be 1-100 characters")
    fp = fingerprint(rule, model_id, version_id, environment_id, key)
    now = clock()
    alert = open_alert(session, fp)
    event = "repeat"
    if alert is None:
        alert = Alert(
            fingerprint=fp,
            rule=rule,
            severity=severity,
            model_id=model_id,
            version_id=version_id,
            environment_id=environment_id,
            key=key[:200],
            status=AlertStatus.firing,
            summary=summary[:2000],
            details=details,
            first_seen=now,
            last_seen=now,
            count=1,
            pauses_promotions=pauses_promotions,
        )
        session.add(alert)
        try:
            session.flush()
        except IntegrityError:
            # Another process opened it a moment ago: refresh that one instead.
            session.rollback()
            alert = open_alert(session, fp)
            if alert is None:
                raise
        else:
            event = "fire"
            audit.record(
                session,
                actor=SYSTEM,
                action="alert.fire",
                target=lookup.target(alert),
                after={"rule": rule, "severity": severity, "summary": alert.summary},
                clock=clock,
            )
            snoozing.keep_snooze(session, alert, clock)
    if event == "repeat":
        alert.last_seen = now
        alert.count += 1
        alert.summary = summary[:2000]
        alert.details = details
        alert.severity = severity
        alert.pauses_promotions = alert.pauses_promotions or pauses_promotions
        if alert.status == AlertStatus.snoozed and snoozing.snooze_over(alert, now):
            snoozing.unsnooze(session, alert, clock)
            event = "unsnoozed"
    alert.details = {**alert.details, "dashboard_url": dashboard_url(settings, alert)}
    if notify_people and _should_notify(alert, event, settings, now):
        told = notify.publish(
            session,
            settings=settings,
            kind="alert",
            payload={"alert_id": alert.id, "text": alert.summary},
            clock=clock,
            skip_channels=skip_channels,
        )
        if told:
            alert.last_notified = now
            ALERTS.labels(rule, str(severity), event).inc()
    session.add(alert)
    session.commit()
    return alert


def _should_notify(alert: Alert, event: str, settings: Settings, now: Any) -> bool:
    if alert.status != AlertStatus.firing:
        return False  # snoozed: silent until it expires
    if event in ("fire", "unsnoozed") or alert.last_notified is None:
        return True
    repeat = timedelta(hours=settings.notify.repeat_interval_hours)
    return bool(now - as_utc(alert.last_notified) >= repeat)


def resolve(
    session: Session,
    *,
    settings: Settings,
    rule: str,
    model_id: int | None = None,
    version_id: int | None = None,
    environment_id: int | None = None,
    key: str = "",
    clock: Clock = utcnow,
    skip_channels: frozenset[str] = frozenset(),
) -> Alert | None:
    """Resolve the open alert with this fingerprint because things are healthy again (None
    when nothing was open). Commits; the Slack message it posted is updated (`skip_channels`
    as for fire)."""
    alert = open_alert(session, fingerprint(rule, model_id, version_id, environment_id, key))
    if alert is None:
        return None
    _close(session, settings, alert, actor=SYSTEM, clock=clock, skip_channels=skip_channels)
    session.commit()
    return alert


def _close(
    session: Session,
    settings: Settings,
    alert: Alert,
    *,
    actor: Actor,
    clock: Clock,
    skip_channels: frozenset[str] = frozenset(),
) -> None:
    before = {"status": alert.status, "snoozed_until": alert.snoozed_until}
    alert.status = AlertStatus.resolved
    alert.resolved_at = clock()
    alert.resolved_by = None if actor is SYSTEM else actor.name
    # snoozed_until/by stay: the silence outlives this alert if the problem comes back
    session.add(alert)
    audit.record(
        session,
        actor=actor,
        action="alert.resolve",
        target=lookup.target(alert),
        before=before,
        after={"status": "resolved"},
        clock=clock,
    )
    if alert.last_notified is not None:  # only people who were told need the all-clear
        notify.publish(
            session,
            settings=settings,
            kind="alert_resolved",
            payload={"alert_id": alert.id, "text": f"Resolved: {alert.summary}"},
            clock=clock,
            skip_channels=skip_channels,
        )
    ALERTS.labels(alert.rule, str(alert.severity), "resolve").inc()


def resolve_by(
    session: Session, *, settings: Settings, alert_id: int, actor: Actor, clock: Clock = utcnow
) -> AlertPublic:
    """A person resolves an alert (deployer role). If the problem persists, the next check
    opens a new alert."""
    require(actor, Role.deployer, "resolve alerts")
    alert = lookup.get(session, alert_id)
    if alert.status == AlertStatus.resolved:
        raise Conflict(f"alert {alert_id} is already resolved")
    _close(session, settings, alert, actor=actor, clock=clock)
    session.commit()
    return to_public(session, [alert])[0]


def evaluate_check(
    session: Session, *, settings: Settings, result: CheckResult, clock: Clock = utcnow
) -> list[Alert]:
    """Apply the alert rules to one check result: fire what fails, resolve what is healthy
    again, per the model's trust level (shadow records without notifying; pause and rollback
    also pause promotions). Returns the alerts it fired or resolved."""
    deployment = session.get(Deployment, result.deployment_id)
    if deployment is None:
        raise NotFound(f"no deployment with id {result.deployment_id}")
    ctx = deployment_rows.load(session, deployment)
    model = ctx.model
    cfg = settings.check_config(model.name)
    subject = ctx.subject
    findings = [rules.check_error(result, subject), _KIND_RULES[result.kind](result, cfg, subject)]
    live_since = deployment.activated_at or deployment.started_at
    if result.kind == CheckKind.decay:
        findings.append(
            absence.no_labels(result, cfg, subject, _last_labels_at(session, result), live_since)
        )
    elif result.kind != CheckKind.hardware:
        findings.append(
            absence.no_predictions(result, cfg, subject, _last_data_at(session, result), live_since)
        )
    ids: dict[str, Any] = {
        "model_id": deployment.model_id,
        "version_id": deployment.version_id,
        "environment_id": deployment.environment_id,
    }
    touched = _resolve_other_versions(session, settings, deployment, clock)
    for finding in findings:
        if finding.firing is None:
            continue
        if not finding.firing:
            resolved = resolve(
                session, settings=settings, rule=finding.rule, key=finding.key, clock=clock, **ids
            )
            touched += [resolved] if resolved else []
            continue
        details = {**finding.details, "trust": cfg.trust, "deployment_id": deployment.id}
        touched.append(
            fire(
                session,
                settings=settings,
                rule=finding.rule,
                severity=finding.severity,
                summary=finding.summary,
                details=details,
                key=finding.key,
                clock=clock,
                notify_people=cfg.trust != "shadow",
                pauses_promotions=finding.failed_check and cfg.trust in ("pause", "rollback"),
                **ids,
            )
        )
    return touched


_KIND_RULES = {
    CheckKind.drift: rules.drift,
    CheckKind.quality: rules.quality,
    CheckKind.decay: rules.performance_drop,
    CheckKind.hardware: rules.hardware,
}
_DATA = (CheckStatus.ok, CheckStatus.warn, CheckStatus.fail)


def _last_data_at(session: Session, result: CheckResult) -> Any:
    """End of the newest drift/quality window of this deployment that had predictions."""
    return session.exec(
        select(func.max(CheckResult.window_end)).where(
            CheckResult.deployment_id == result.deployment_id,
            col(CheckResult.kind).in_([CheckKind.drift, CheckKind.quality]),
            col(CheckResult.status).in_(_DATA),
        )
    ).one()


def _last_labels_at(session: Session, result: CheckResult) -> Any:
    """End of the newest decay window of this deployment that saw labels (the label count
    lives in the details, so the newest results are read, not aggregated in SQL)."""
    rows = session.exec(
        select(CheckResult)
        .where(
            CheckResult.deployment_id == result.deployment_id,
            CheckResult.kind == CheckKind.decay,
            CheckResult.id != result.id,
        )
        .order_by(col(CheckResult.window_end).desc())
        .limit(500)
    ).all()
    return next((r.window_end for r in rows if absence.has_labels(r)), None)


def _resolve_other_versions(
    session: Session, settings: Settings, deployment: Deployment, clock: Clock
) -> list[Alert]:
    """Check alerts of a version that no longer runs in this environment stop firing, like
    an Alertmanager series that disappeared: resolve them."""
    stale = session.exec(
        select(Alert).where(
            Alert.model_id == deployment.model_id,
            Alert.environment_id == deployment.environment_id,
            Alert.version_id != deployment.version_id,
            col(Alert.status).in_(OPEN),
            col(Alert.rule).in_(rules.CHECK_RULES),
        )
    ).all()
    for alert in stale:
        _close(session, settings, alert, actor=SYSTEM, clock=clock)
    if stale:
        session.commit()
    return list(stale)


def get_alert(session: Session, alert_id: int) -> AlertPublic:
    return to_public(session, [lookup.get(session, alert_id)])[0]


def list_alerts(
    session: Session,
    *,
    status: AlertStatus | None = None,
    model: str | None = None,
    limit: int = 200,
) -> list[AlertPublic]:
    """Alerts, most recently seen first; `model` must name a registered model."""
    query = select(Alert)
    if status is not None:
        query = query.where(Alert.status == status)
    if model:
        query = query.where(Alert.model_id == registry.get_model(session, model).id)
    rows = session.exec(
        query.order_by(col(Alert.last_seen).desc(), col(Alert.id).desc()).limit(
            max(1, min(limit, 1000))
        )
    ).all()
    return to_public(session, rows)


def promotions_paused(session: Session, *, model_id: int, environment_id: int) -> str | None:
    """Why promotions of this model to this environment are paused, or None.

    An open alert raised under trust level pause or rollback pauses them until it resolves
    (by itself when the checks are healthy, or by a person with `modeldeck resolve ID`)."""
    alert = session.exec(
        select(Alert)
        .where(
            Alert.model_id == model_id,
            Alert.environment_id == environment_id,
            col(Alert.status).in_(OPEN),
            col(Alert.pauses_promotions),
        )
        .order_by(col(Alert.first_seen))
    ).first()
    if alert is None:
        return None
    return (
        f"promotions are paused by alert {alert.id} ({alert.rule}): {alert.summary}"
        f" — resolve it to continue (`modeldeck resolve {alert.id}`)"
    )


def dashboard_url(settings: Settings, alert: Alert) -> str:
    """Where the dashboard explains this alert (the Alerts page, filtered to it)."""
    return kit.dashboard_url(settings, "alerts", alert=alert.id)
