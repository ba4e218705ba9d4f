"""REST: promote, roll back, approve; deployment history, status grid, what ran where when.

Changes answer 201 when the rollout finished within the request, 202 while it is still
awaiting approval or rolling out (poll GET /deployments/{id}, or POST …/advance).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from modeldeck.core.api.deps import (
    Admin,
    ClockDep,
    CurrentActor,
    Deployer,
    EngineDep,
    SessionDep,
    SettingsDep,
    Viewer,
    read,
)
from modeldeck.core.clusters.models import DriftFinding
from modeldeck.core.errors import InvalidInput
from modeldeck.core.rollouts import queries
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import (
    IN_FLIGHT,
    ApprovalRequest,
    Decision,
    DeploymentPublic,
    DeploymentsPublic,
    DeploymentState,
    PromoteRequest,
    RollbackRequest,
)

router = APIRouter(tags=["rollouts"])


@router.get("/deployments", response_model=DeploymentsPublic)
async def list_deployments(
    engine: EngineDep,
    _: Viewer,
    model: str | None = None,
    environment: str | None = None,
    state: list[DeploymentState] | None = Query(None),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> DeploymentsPublic:
    return await read(
        engine,
        queries.history,
        model=model,
        environment=environment,
        states=state,
        limit=limit,
        offset=offset,
    )


@router.get("/deployments/{deployment_id}", response_model=DeploymentPublic)
async def get_deployment(deployment_id: int, engine: EngineDep, _: Viewer) -> DeploymentPublic:
    return await read(engine, queries.get_public, deployment_id)


@router.get("/status", response_model=list[queries.StatusRow])
async def fleet_status(
    engine: EngineDep, _: Viewer, model: str | None = None
) -> list[queries.StatusRow]:
    return await read(engine, queries.status, model=model)


@router.get("/environments/{name}/running", response_model=list[DeploymentPublic])
async def running_at(
    name: str, engine: EngineDep, _: Viewer, at: datetime, model: str | None = None
) -> list[DeploymentPublic]:
    """What ran in this environment at time `at` (ISO 8601): "go back in time"."""
    return await read(engine, queries.running_at, environment=name, at=at, model=model)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="retries with the same key return the first result instead of a new rollout",
    ),
]


def _key(header: str | None, body: str | None) -> str | None:
    if header and body and header != body:
        raise InvalidInput("the Idempotency-Key header and idempotency_key differ")
    return header or body


def _accepted(response: Response, dep: DeploymentPublic) -> DeploymentPublic:
    response.status_code = (
        status.HTTP_202_ACCEPTED if dep.state in IN_FLIGHT else status.HTTP_201_CREATED
    )
    return dep


@router.post(
    "/deployments",
    response_model=DeploymentPublic,
    status_code=status.HTTP_201_CREATED,
    responses={202: {"model": DeploymentPublic, "description": "awaiting approval or rolling out"}},
)
def promote(
    body: PromoteRequest,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    actor: CurrentActor,
    clock: ClockDep,
    idempotency_key: IdempotencyKey = None,
) -> DeploymentPublic:
    """Promote a version to an environment (needs deployer; may await approval)."""
    return _accepted(
        response,
        rollouts.promote(
            session,
            settings=settings,
            model=body.model,
            version=body.version,
            environment=body.environment,
            actor=actor,
            reason=body.reason,
            idempotency_key=_key(idempotency_key, body.idempotency_key),
            clock=clock,
        ),
    )


@router.post(
    "/rollbacks",
    response_model=DeploymentPublic,
    status_code=status.HTTP_201_CREATED,
    responses={202: {"model": DeploymentPublic, "description": "rolling out"}},
)
def rollback(
    body: RollbackRequest,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    actor: CurrentActor,
    clock: ClockDep,
    idempotency_key: IdempotencyKey = None,
) -> DeploymentPublic:
    """Roll back to the previous good version, or `to_version` from the history."""
    return _accepted(
        response,
        rollouts.rollback(
            session,
            settings=settings,
            model=body.model,
            environment=body.environment,
            to_version=body.to_version,
            actor=actor,
            reason=body.reason,
            idempotency_key=_key(idempotency_key, body.idempotency_key),
            expected_current_id=body.expected_current_id,
            clock=clock,
        ),
    )


@router.post("/approvals", response_model=DeploymentPublic)
def decide(
    body: ApprovalRequest,
    session: SessionDep,
    settings: SettingsDep,
    actor: CurrentActor,
    clock: ClockDep,
) -> DeploymentPublic:
    """Approve (needs approver, never one's own request) or reject a waiting rollout."""
    act = rollouts.approve if body.decision == Decision.approve else rollouts.reject
    return act(
        session,
        settings=settings,
        deployment_id=body.deployment_id,
        actor=actor,
        comment=body.comment,
        clock=clock,
    )


@router.post("/deployments/{deployment_id}/advance", response_model=DeploymentPublic)
def advance(
    deployment_id: int, session: SessionDep, settings: SettingsDep, _: Deployer, clock: ClockDep
) -> DeploymentPublic:
    """Ask the cluster how a rollout is doing now and move it on (the scheduler does this
    every few seconds too)."""
    return rollouts.advance(session, settings=settings, deployment_id=deployment_id, clock=clock)


@router.post("/reconcile", response_model=list[DriftFinding])
def reconcile(
    session: SessionDep, settings: SettingsDep, _: Admin, clock: ClockDep
) -> list[DriftFinding]:
    """Compare every cluster with the deployment history now; records findings, changes
    nothing on the clusters."""
    return rollouts.reconcile(session, settings=settings, clock=clock)
