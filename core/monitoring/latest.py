"""The newest check of one kind for each place a model runs now (Slack's `drift MODEL`).

Kept apart from the pages' time series in `queries.py`, which re-exports it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlmodel import Session, col, select

from modeldeck.core.clock import as_utc
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import NotFound
from modeldeck.core.monitoring import readings
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import ModelVersion
from modeldeck.core.rollouts.models import Deployment, DeploymentState


def environment_named(session: Session, name: str) -> Environment:
    env = session.exec(select(Environment).where(Environment.name == name)).first()
    if env is None:
        raise NotFound(f"no environment named {name!r}")
    return env


class CheckSummary(BaseModel):
    """The newest check of one kind for a model where it runs now (Slack's `drift MODEL`)."""

    id: int
    environment: str
    version: str
    kind: CheckKind
    status: CheckStatus
    score: float | None
    window_start: datetime
    window_end: datetime
    rows: int
    drifted_columns: list[str] = []


def latest_checks(
    session: Session,
    *,
    model: str,
    environment: str | None = None,
    kind: CheckKind = CheckKind.drift,
) -> list[CheckSummary]:
    """The newest `kind` check of each active deployment of `model` (in `environment` only,
    when given), by environment name; deployments never checked are left out."""
    m = registry.get_model(session, model)
    query = (
        select(Deployment, Environment.name, ModelVersion.version)
        .join(Environment, col(Environment.id) == Deployment.environment_id)
        .join(ModelVersion, col(ModelVersion.id) == Deployment.version_id)
        .where(Deployment.model_id == m.id, Deployment.state == DeploymentState.active)
    )
    if environment:
        query = query.where(Environment.name == environment_named(session, environment).name)
    out = []
    for dep, env_name, version in session.exec(query.order_by(Environment.name)).all():
        row = session.exec(
            select(CheckResult)
            .where(CheckResult.deployment_id == dep.id, CheckResult.kind == kind)
            .order_by(col(CheckResult.window_end).desc(), col(CheckResult.id).desc())
            .limit(1)
        ).first()
        if row is None:
            continue
        drifted = [
            c.column
            for c in readings.columns(
                row.details, at=row.window_end, version=version, check_id=row.id or 0
            )
            if c.drifted
        ]
        out.append(
            CheckSummary(
                id=row.id or 0,
                environment=env_name,
                version=version,
                kind=row.kind,
                status=row.status,
                score=row.score,
                window_start=as_utc(row.window_start),
                window_end=as_utc(row.window_end),
                rows=row.rows,
                drifted_columns=drifted,
            )
        )
    return out
