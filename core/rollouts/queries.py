"""Read side of the deployment history: status now, history, and "what ran at time T"."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, bindparam, func, or_
from sqlalchemy import select as columns
from sqlmodel import Session, col

from modeldeck.core import db
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


# The read paths below run statements built once, at import or once per shape (values are
# bound parameters), through db.run: no query building, no ORM objects, per request.

# A deployment as the API shows it, with its names joined in: one statement, plain columns.
_PUBLIC = (
    columns(
        Deployment.id,
        Model.name,
        Environment.name,
        ModelVersion.version,
        Deployment.kind,
        Deployment.state,
        Deployment.previous_deployment_id,
        Deployment.reason,
        Deployment.requested_by,
        Deployment.requested_via,
        Deployment.started_at,
        Deployment.activated_at,
        Deployment.finished_at,
        Deployment.message,
        Deployment.applied_at,
        Environment.approvals_required,
        Deployment.model_id,
        Deployment.environment_id,
    )
    .join(Model, col(Model.id) == Deployment.model_id)
    .join(Environment, col(Environment.id) == Deployment.environment_id)
    .join(ModelVersion, col(ModelVersion.id) == Deployment.version_id)
)
_BY_ID = _PUBLIC.where(Deployment.id == bindparam("id"))
_BY_IDS = _PUBLIC.where(col(Deployment.id).in_(bindparam("ids", expanding=True)))
_APPROVALS = (
    columns(
        Approval.deployment_id, Approval.approver, Approval.decision, Approval.comment, Approval.at
    )
    .where(col(Approval.deployment_id).in_(bindparam("ids", expanding=True)))
    .order_by(col(Approval.at))
)
_ENVIRONMENT_ID = columns(Environment.id).where(Environment.name == bindparam("name"))
_ACTIVE_ENVIRONMENTS = (
    columns(Environment.id, Environment.name)
    .where(Environment.active == True)  # noqa: E712
    .order_by(Environment.id)
)
_MODELS = columns(Model.id, Model.name, Model.team).order_by(Model.name)
_NAMED_MODEL = _MODELS.where(Model.name == bindparam("name"))
# A status cell needs four fields of the active deployment (the full row only in flight).
_ACTIVE = (
    columns(
        Deployment.model_id,
        Deployment.environment_id,
        Deployment.id,
        ModelVersion.version,
        Deployment.activated_at,
        Deployment.requested_by,
    )
    .join(ModelVersion, col(ModelVersion.id) == Deployment.version_id)
    .where(Deployment.state == DeploymentState.active)
)
_ACTIVE_OF_MODEL = _ACTIVE.where(Deployment.model_id == bindparam("model_id"))
_IN_FLIGHT = _PUBLIC.where(col(Deployment.state).in_(IN_FLIGHT))
_IN_FLIGHT_OF_MODEL = _IN_FLIGHT.where(Deployment.model_id == bindparam("model_id"))


@cache
def _history_statements(
    by_model: bool, by_environment: bool, by_state: bool
) -> tuple[Select[Any], Select[Any]]:
    """(count, page) for one combination of filters; eight shapes at most."""
    conditions = []
    if by_model:
        conditions.append(Deployment.model_id == bindparam("model_id"))
    if by_environment:
        conditions.append(Deployment.environment_id == bindparam("environment_id"))
    if by_state:
        conditions.append(col(Deployment.state).in_(bindparam("states", expanding=True)))
    count = columns(func.count(col(Deployment.id))).where(*conditions)
    page = (
        _PUBLIC.where(*conditions)
        .order_by(col(Deployment.started_at).desc(), col(Deployment.id).desc())
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
    )
    return count, page


def _approvals(session: Session, deployment_ids: Sequence[int]) -> dict[int, list[ApprovalPublic]]:
    approvals: dict[int, list[ApprovalPublic]] = defaultdict(list)
    if not deployment_ids:
        return approvals
    for dep_id, approver, decision, comment, at in db.run(
        session, _APPROVALS, ids=list(deployment_ids)
    ).all():
        approvals[dep_id].append(
            ApprovalPublic(approver=approver, decision=decision, comment=comment, at=as_utc(at))
        )
    return approvals


def _rows_public(session: Session, rows: Sequence[Any]) -> list[DeploymentPublic]:
    """`_PUBLIC` rows as DeploymentPublic, with their approvals (one more statement)."""
    approvals = _approvals(session, [r[0] for r in rows])
    return [
        DeploymentPublic(
            id=r[0],
            model=r[1],
            environment=r[2],
            version=r[3],
            kind=r[4],
            state=r[5],
            previous_deployment_id=r[6],
            reason=r[7],
            requested_by=r[8],
            requested_via=r[9],
            started_at=as_utc(r[10]),
            activated_at=as_utc(r[11]) if r[11] else None,
            finished_at=as_utc(r[12]) if r[12] else None,
            message=r[13],
            approvals=approvals.get(r[0], []),
            applied_at=as_utc(r[14]) if r[14] else None,
            approvals_required=r[15],
        )
        for r in rows
    ]


def to_public(session: Session, rows: Sequence[Deployment]) -> list[DeploymentPublic]:
    """Deployment rows as the API shows them (names and approvals attached), in their order;
    pending changes to them are flushed and shown."""
    if not rows:
        return []
    session.flush()
    ids = [r.id for r in rows]
    public = {d.id: d for d in _rows_public(session, db.run(session, _BY_IDS, ids=ids).all())}
    return [public[i] for i in ids]


def get(session: Session, deployment_id: int) -> Deployment:
    row = db.get_by_id(session, Deployment, deployment_id)
    if row is None:
        raise NotFound(f"no deployment with id {deployment_id}")
    return row


def get_public(session: Session, deployment_id: int) -> DeploymentPublic:
    rows = db.run(session, _BY_ID, id=deployment_id).all() if db.possible_id(deployment_id) else []
    if not rows:
        raise NotFound(f"no deployment with id {deployment_id}")
    return _rows_public(session, rows)[0]


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
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if model:
        params["model_id"] = registry.get_model_id(session, model)
    if environment:
        params["environment_id"] = _environment_id(session, environment)
    if states:
        params["states"] = list(states)
    count, page = _history_statements(bool(model), bool(environment), bool(states))
    total = db.run(session, count, **params).scalar_one()
    rows = db.run(session, page, **params).all()
    return DeploymentsPublic(data=_rows_public(session, rows), count=total)


def _environment_id(session: Session, name: str) -> int:
    env_id: int | None = db.run(session, _ENVIRONMENT_ID, name=name).scalar()
    if env_id is None:
        raise NotFound(f"no environment named {name!r}")
    return env_id


def running_at(
    session: Session, *, environment: str, at: datetime, model: str | None = None
) -> list[DeploymentPublic]:
    """What ran in `environment` at time `at`: deployments active then, one per model.

    A deployment ran from `activated_at` until `finished_at` (superseded or rolled back);
    still-active ones have no `finished_at`.
    """
    at = as_utc(at)  # SQLite compares the stored UTC text: bind the same instant in UTC
    query = _PUBLIC.where(
        Deployment.environment_id == _environment_id(session, environment),
        col(Deployment.activated_at).is_not(None),
        col(Deployment.activated_at) <= at,
        or_(col(Deployment.finished_at).is_(None), col(Deployment.finished_at) > at),
    )
    if model:
        query = query.where(Deployment.model_id == registry.get_model_id(session, model))
    rows = db.run(session, query.order_by(Deployment.model_id)).all()
    return _rows_public(session, rows)


def status(session: Session, *, model: str | None = None) -> list[StatusRow]:
    """Every model × environment: the active version, since when, who, and any rollout
    in flight. Models with no deployment yet appear with empty cells."""
    if model:
        models = db.run(session, _NAMED_MODEL, name=model).all()
        if not models:
            registry.get_model(session, model)  # raises NotFound with a hint
        model_id = models[0][0]
        active_rows = db.run(session, _ACTIVE_OF_MODEL, model_id=model_id).all()
        flying_rows = db.run(session, _IN_FLIGHT_OF_MODEL, model_id=model_id).all()
    else:
        models = db.run(session, _MODELS).all()
        active_rows = db.run(session, _ACTIVE).all()
        flying_rows = db.run(session, _IN_FLIGHT).all()
    envs = db.run(session, _ACTIVE_ENVIRONMENTS).all()
    active = {(r[0], r[1]): r for r in active_rows}
    flying = {
        (row[16], row[17]): dep  # model_id, environment_id
        for row, dep in zip(flying_rows, _rows_public(session, flying_rows), strict=True)
    }
    out = []
    for m_id, m_name, m_team in models:
        for e_id, e_name in envs:
            cur = active.get((m_id, e_id))
            out.append(
                StatusRow(
                    model=m_name,
                    team=m_team,
                    environment=e_name,
                    version=cur[3] if cur else None,
                    since=as_utc(cur[4]) if cur and cur[4] else None,
                    promoted_by=cur[5] if cur else None,
                    deployment_id=cur[2] if cur else None,
                    in_flight=flying.get((m_id, e_id)),
                )
            )
    return out
