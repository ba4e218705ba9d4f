"""The fleet at a glance: every model × environment with its health, in a handful of queries.

Read-only; built for the dashboard's Overview page (and any other interface that wants the same
grid). The latest check of each kind per running deployment is found through the
(deployment_id, kind, window_end) index with one correlated sub-query per kind, so the cost
does not grow with the length of the check history.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import func
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from modeldeck.core.alerts.models import OPEN, Alert, AlertStatus, Severity
from modeldeck.core.clock import as_utc
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments_service
from modeldeck.core.environments.models import Environment, EnvironmentPublic
from modeldeck.core.hardware import queries as hardware
from modeldeck.core.hardware.alerting import RULES as GPU_RULES
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.registry.models import Model, ModelVersion
from modeldeck.core.rollouts import queries as rollouts
from modeldeck.core.rollouts.models import Deployment

HEALTH_KINDS = (CheckKind.drift, CheckKind.quality, CheckKind.decay)
GPU = "gpu"
_SEVERITY_RANK = {Severity.info: 0, Severity.warning: 1, Severity.critical: 2}


class Health(BaseModel):
    """The latest check of one kind for a running deployment."""

    status: CheckStatus | None = None  # None: never checked
    label: str | None = None  # what is wrong in a word ("idle"), when the status alone is vague
    at: datetime | None = None  # end of the window it looked at
    stale: bool = False  # no check for longer than the model's no-data limit
    score: float | None = None
    check_id: int | None = None


class FleetRow(BaseModel):
    model: str
    team: str
    owner: str
    environment: str
    version: str | None
    since: datetime | None
    promoted_by: str | None
    deployment_id: int | None
    in_flight: str | None = None  # "1.4.0 awaiting approval" while a rollout is in flight
    health: dict[str, Health] = {}
    alerts_firing: int = 0
    alerts_snoozed: int = 0
    worst_severity: Severity | None = None


class FleetCounts(BaseModel):
    models: int
    versions: int
    environments: int
    deployments: int


def counts(session: Session) -> FleetCounts:
    """How much the registry holds; all zero on a first run."""

    def count(entity: type) -> int:
        return int(session.exec(select(func.count()).select_from(entity)).one())

    envs = session.exec(
        select(func.count()).select_from(Environment).where(col(Environment.active))
    ).one()
    return FleetCounts(
        models=count(Model),
        versions=count(ModelVersion),
        environments=int(envs),
        deployments=count(Deployment),
    )


def environments_in_order(session: Session) -> list[EnvironmentPublic]:
    """Active environments in promotion order: each after the one it requires (by name where
    the order does not say), so staging comes before production in every grid and picker."""
    found = environments_service.list_environments(session).data
    names = {e.name for e in found}
    placed: set[str] = set()
    order: list[EnvironmentPublic] = []
    pending = list(found)
    while pending:
        ready = [
            e
            for e in pending
            if e.requires_previous is None
            or e.requires_previous in placed
            or e.requires_previous not in names  # requires an inactive environment
        ]
        ready = ready or pending[:1]  # config validation forbids cycles; never loop forever
        order += ready
        placed |= {e.name for e in ready}
        pending = [e for e in pending if e.name not in placed]
    return order


def latest_checks(
    session: Session, deployment_ids: list[int]
) -> dict[tuple[int, str], CheckResult]:
    """The newest check result of each kind for each deployment (missing when never checked)."""
    if not deployment_ids:
        return {}
    columns = [
        select(CheckResult.id)
        .where(CheckResult.deployment_id == Deployment.id, CheckResult.kind == kind)
        .order_by(col(CheckResult.window_end).desc())
        .limit(1)
        .correlate(Deployment)
        .scalar_subquery()
        .label(str(kind))
        for kind in HEALTH_KINDS
    ]
    rows = session.execute(
        select_columns(Deployment.id, *columns).where(col(Deployment.id).in_(deployment_ids))
    ).all()
    ids = [check_id for row in rows for check_id in row[1:] if check_id is not None]
    if not ids:
        return {}
    found = session.exec(select(CheckResult).where(col(CheckResult.id).in_(ids))).all()
    return {(r.deployment_id, str(r.kind)): r for r in found}


class _Open(BaseModel):
    firing: int = 0
    snoozed: int = 0
    worst: Severity | None = None
    gpu_rules: list[str] = []


def _open_alerts(session: Session) -> dict[tuple[int, int], _Open]:
    """(model_id, environment_id) → open alert counts, worst firing severity, GPU rules firing."""
    rows = session.execute(
        select_columns(
            Alert.model_id,
            Alert.environment_id,
            Alert.status,
            Alert.severity,
            Alert.rule,
            func.count(),
        )
        .where(
            col(Alert.status).in_(OPEN),
            col(Alert.model_id).is_not(None),
            col(Alert.environment_id).is_not(None),
        )
        .group_by(Alert.model_id, Alert.environment_id, Alert.status, Alert.severity, Alert.rule)
    ).all()
    out: dict[tuple[int, int], _Open] = defaultdict(_Open)
    for model_id, env_id, status, severity, rule, n in rows:
        cell = out[(model_id or 0, env_id or 0)]
        if status != AlertStatus.firing:
            cell.snoozed += n
            continue
        cell.firing += n
        if cell.worst is None or _SEVERITY_RANK[severity] > _SEVERITY_RANK[cell.worst]:
            cell.worst = severity
        if rule in GPU_RULES:
            cell.gpu_rules.append(rule)
    return out


def _gpu_health(
    cell: _Open, usage: tuple[float | None, datetime] | None, now: datetime, limit: timedelta
) -> Health:
    """Warn while a GPU alert fires (idle, memory, thermal, metrics); else the mean
    utilisation of the last 24 h; nothing when no GPU usage was attributed to it."""
    if cell.gpu_rules:
        words = sorted({rule.removeprefix("gpu_").replace("_", " ") for rule in cell.gpu_rules})
        return Health(
            status=CheckStatus.warn,
            label=", ".join(words),
            score=usage[0] if usage else None,
            at=usage[1] if usage else None,
        )
    if usage is None:
        return Health()
    util, at = usage
    return Health(status=CheckStatus.ok, score=util, at=at, stale=now - at > limit)


def stale_after(settings: Settings, model: str) -> timedelta:
    """How long without any check result before a monitor counts as stale."""
    cfg = settings.check_config(model)
    return max(timedelta(hours=cfg.no_data_hours), timedelta(minutes=3 * cfg.interval_minutes))


def overview(session: Session, *, settings: Settings, now: datetime) -> list[FleetRow]:
    """Every model × active environment: running version, since when, who promoted it, the
    latest drift/quality/decay/GPU check, open alerts and any rollout in flight."""
    grid = rollouts.status(session)
    model_rows = session.exec(select(Model.id, Model.name, Model.owner)).all()
    model_ids = {name: (m_id, owner) for m_id, name, owner in model_rows}
    env_ids = dict(session.exec(select(Environment.name, Environment.id)).all())
    deployment_ids = [r.deployment_id for r in grid if r.deployment_id is not None]
    checks = latest_checks(session, deployment_ids)
    alerts = _open_alerts(session)
    gpu = hardware.recent_utilisation(session, now=now)
    limits: dict[str, timedelta] = defaultdict(timedelta)
    out = []
    for row in grid:
        m_id, owner = model_ids[row.model]
        key = (m_id or 0, env_ids[row.environment] or 0)
        cell = alerts.get(key, _Open())
        health: dict[str, Health] = {}
        if row.deployment_id is not None:
            if row.model not in limits:
                limits[row.model] = stale_after(settings, row.model)
            for kind in HEALTH_KINDS:
                check = checks.get((row.deployment_id, str(kind)))
                if check is None:
                    health[str(kind)] = Health()
                    continue
                at = as_utc(check.window_end)
                health[str(kind)] = Health(
                    status=check.status,
                    at=at,
                    score=check.score,
                    check_id=check.id,
                    stale=now - at > limits[row.model],
                )
            health[GPU] = _gpu_health(cell, gpu.get(key), now, limits[row.model])
        flying = row.in_flight
        out.append(
            FleetRow(
                model=row.model,
                team=row.team,
                owner=owner,
                environment=row.environment,
                version=row.version,
                since=row.since,
                promoted_by=row.promoted_by,
                deployment_id=row.deployment_id,
                in_flight=f"{flying.version} {flying.state.replace('_', ' ')}" if flying else None,
                health=health,
                alerts_firing=cell.firing,
                alerts_snoozed=cell.snoozed,
                worst_severity=cell.worst,
            )
        )
    return out
