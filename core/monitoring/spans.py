"""The deployments a monitoring chart draws as spans and markers (kept apart from the time
series in `queries.py`, which re-exports them)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import or_
from sqlmodel import Session, col, select

from modeldeck.core.clock import as_utc
from modeldeck.core.monitoring.latest import environment_named
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import ModelVersion
from modeldeck.core.rollouts.models import Deployment, DeploymentKind, DeploymentState
from modeldeck.core.timeseries import to_utc


class DeploymentSpan(BaseModel):
    """One deployment of the model as a chart draws it: a span and a marker."""

    deployment_id: int
    version: str
    environment: str
    kind: DeploymentKind
    state: DeploymentState
    requested_by: str
    started_at: datetime
    activated_at: datetime | None
    finished_at: datetime | None


def deployments(
    session: Session, *, model: str, environment: str, start: datetime, end: datetime
) -> list[DeploymentSpan]:
    """Deployments of `model` in `environment` that ran during [start, end] or were requested
    in it (failed and rejected ones included, as markers), oldest first."""
    m = registry.get_model(session, model)
    env = environment_named(session, environment)
    start, end = to_utc(start), to_utc(end)
    ran = (col(Deployment.activated_at) <= end) & or_(
        col(Deployment.finished_at).is_(None), col(Deployment.finished_at) >= start
    )
    asked = (col(Deployment.started_at) >= start) & (col(Deployment.started_at) <= end)
    rows = session.exec(
        select(Deployment, ModelVersion.version)
        .join(ModelVersion, col(ModelVersion.id) == Deployment.version_id)
        .where(Deployment.model_id == m.id, Deployment.environment_id == env.id, ran | asked)
        .order_by(col(Deployment.started_at), col(Deployment.id))
    ).all()
    return [
        DeploymentSpan(
            deployment_id=d.id or 0,
            version=version,
            environment=environment,
            kind=d.kind,
            state=d.state,
            requested_by=d.requested_by,
            started_at=as_utc(d.started_at),
            activated_at=as_utc(d.activated_at) if d.activated_at else None,
            finished_at=as_utc(d.finished_at) if d.finished_at else None,
        )
        for d, version in rows
    ]
