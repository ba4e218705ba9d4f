"""REST: deployment history (read), status grid, and what ran where at a time."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from modeldeck.core.api.deps import SessionDep, Viewer
from modeldeck.core.rollouts import queries
from modeldeck.core.rollouts.models import DeploymentPublic, DeploymentsPublic, DeploymentState

router = APIRouter(tags=["rollouts"])


@router.get("/deployments", response_model=DeploymentsPublic)
def list_deployments(
    session: SessionDep,
    _: Viewer,
    model: str | None = None,
    environment: str | None = None,
    state: list[DeploymentState] | None = Query(None),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> DeploymentsPublic:
    return queries.history(session, model=model, environment=environment, states=state,
                           limit=limit, offset=offset)


@router.get("/deployments/{deployment_id}", response_model=DeploymentPublic)
def get_deployment(deployment_id: int, session: SessionDep, _: Viewer) -> DeploymentPublic:
    return queries.to_public(session, [queries.get(session, deployment_id)])[0]


@router.get("/status", response_model=list[queries.StatusRow])
def fleet_status(session: SessionDep, _: Viewer,
                 model: str | None = None) -> list[queries.StatusRow]:
    return queries.status(session, model=model)


@router.get("/environments/{name}/running", response_model=list[DeploymentPublic])
def running_at(name: str, session: SessionDep, _: Viewer, at: datetime,
               model: str | None = None) -> list[DeploymentPublic]:
    """What ran in this environment at time `at` (ISO 8601): "go back in time"."""
    return queries.running_at(session, environment=name, at=at, model=model)
