"""Read side of the deployment history: status now, history, and "what ran at time T"."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from modeldeck.core.clock import as_utc
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import NotFound
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import Model, ModelVersion
from modeldeck.core.rollouts.models import (
    IN_FLIGHT,
    Approval,
    ApprovalPublic,
    Deployment,
    DeploymentPublic,
    DeploymentsPublic,
    DeploymentState,
)


class StatusRow(BaseModel):
    """One cell of the fleet grid: a model in an environment."""

    model: str
    team: str
    environment: str
    version: str | None
    since: datetime | None
    promoted_by: str | None
    deployment_id: int | None
    in_flight: DeploymentPublic | None = None


def to_public(session: Session, rows: Sequence[Deployment]) -> list[DeploymentPublic]:
    """Attach names (model, environment, version) and approvals to deployment rows in bulk."""
    if not rows:
        return []
    model_ids = {r.model_id for r in rows}
    env_ids = {r.environment_id for r in rows}
    version_ids = {r.version_id for r in rows}
    dep_ids = [r.id for r in rows]
    models = dict(
        session.exec(select(Model.id, Model.name).where(col(Model.id).in_(model_ids))).all()
    )
    env_rows = session.exec(
        select(Environment.id, Environment.name, Environment.approvals_required).where(
            col(Environment.id).in_(env_ids)
        )
    ).all()
    envs = {e_id: name for e_id, name, _ in env_rows}
    required = {e_id: needed for e_id, _, needed in env_rows}
    versions = dict(
        session.exec(
            select(ModelVersion.id, ModelVersion.version).where(
                col(ModelVersion.id).in_(version_ids)
            )
        ).all()
    )
    approvals: dict[int, list[ApprovalPublic]] = defaultdict(list)
    for a in session.exec(
        select(Approval).where(col(Approval.deployment_id).in_(dep_ids)).order_by(Approval.at)
    ).all():
        approvals[a.deployment_id].append(
            ApprovalPublic(
                approver=a.approver, decision=a.decision, comment=a.comment, at=as_utc(a.at)
            )
        )
    out = []
    for r in rows:
        assert r.id is not None
        out.append(
            DeploymentPublic(
                id=r.id,
                model=models[r.model_id],
                environment=envs[r.environment_id],
                version=versions[r.version_id],
                kind=r.kind,
                state=r.state,
                previous_deployment_id=r.previous_deployment_id,
                reason=r.reason,
                requested_by=r.requested_by,
                requested_via=r.requested_via,
                started_at=as_utc(r.started_at),
                activated_at=as_utc(r.activated_at) if r.activated_at else None,
                finished_at=as_utc(r.finished_at) if r.finished_at else None,
                message=r.message,
                approvals=approvals.get(r.id, []),
                applied_at=as_utc(r.applied_at) if r.applied_at else None,
                approvals_required=required[r.environment_id],
            )
        )
    return out


def get(session: Session, deployment_id: int) -> Deployment:
    row = session.get(Deployment, deployment_id)
    if row is None:
        raise NotFound(f"no deployment with id {deployment_id}")
    return row


def history(
    session: Session,
    *,
    model: str | None = None,
    environment: str | None = None,
    states: Sequence[DeploymentState] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> DeploymentsPublic:
    """Deployments newest first, optionally for one model and/or environment."""
    query = select(Deployment)
    if model:
        query = query.where(Deployment.model_id == registry.get_model(session, model).id)
    if environment:
        env = session.exec(select(Environment).where(Environment.name == environment)).first()
        if env is None:
            raise NotFound(f"no environment named {environment!r}")
        query = query.where(Deployment.environment_id == env.id)
    if states:
        query = query.where(col(Deployment.state).in_(list(states)))
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(Deployment.started_at).desc(), col(Deployment.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return DeploymentsPublic(data=to_public(session, rows), count=total)


def running_at(
    session: Session, *, environment: str, at: datetime, model: str | None = None
) -> list[DeploymentPublic]:
    """What ran in `environment` at time `at`: deployments active then, one per model.

    A deployment ran from `activated_at` until `finished_at` (superseded or rolled back);
    still-active ones have no `finished_at`.
    """
    at = as_utc(at)  # SQLite compares the stored UTC text: bind the same instant in UTC
    env = session.exec(select(Environment).where(Environment.name == environment)).first()
    if env is None:
        raise NotFound(f"no environment named {environment!r}")
    query = select(Deployment).where(
        Deployment.environment_id == env.id,
        col(Deployment.activated_at).is_not(None),
        col(Deployment.activated_at) <= at,
        or_(col(Deployment.finished_at).is_(None), col(Deployment.finished_at) > at),
    )
    if model:
        query = query.where(Deployment.model_id == registry.get_model(session, model).id)
    rows = session.exec(query.order_by(Deployment.model_id)).all()
    return to_public(session, rows)


def status(session: Session, *, model: str | None = None) -> list[StatusRow]:
    """Every model × environment: the active version, since when, who, and any rollout
    in flight. Models with no deployment yet appear with empty cells."""
    model_query = select(Model).order_by(Model.name)
    if model:
        model_query = model_query.where(Model.name == registry.get_model(session, model).name)
    models = session.exec(model_query).all()
    envs = session.exec(
        select(Environment)
        .where(Environment.active == True)  # noqa: E712
        .order_by(Environment.id)
    ).all()
    model_ids = [m.id for m in models]
    live = session.exec(
        select(Deployment).where(
            col(Deployment.model_id).in_(model_ids),
            col(Deployment.state).in_([DeploymentState.active, *IN_FLIGHT]),
        )
    ).all()
    public = {d.id: d for d in to_public(session, live)}
    active: dict[tuple[int, int], DeploymentPublic] = {}
    flying: dict[tuple[int, int], DeploymentPublic] = {}
    for row in live:
        key = (row.model_id, row.environment_id)
        (active if row.state == DeploymentState.active else flying)[key] = public[row.id]
    out = []
    for m in models:
        for e in envs:
            key = (m.id or 0, e.id or 0)
            cur = active.get(key)
            out.append(
                StatusRow(
                    model=m.name,
                    team=m.team,
                    environment=e.name,
                    version=cur.version if cur else None,
                    since=cur.activated_at if cur else None,
                    promoted_by=cur.requested_by if cur else None,
                    deployment_id=cur.id if cur else None,
                    in_flight=flying.get(key),
                )
            )
    return out
