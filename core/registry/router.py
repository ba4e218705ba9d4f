"""REST: /models and /models/{name}/versions."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from modeldeck.core.api.deps import ClockDep, Deployer, SessionDep, Viewer
from modeldeck.core.registry import service
from modeldeck.core.registry.models import (
    ModelCreate,
    ModelPublic,
    ModelsPublic,
    ModelVersionCreate,
    ModelVersionPublic,
    ModelVersionsPublic,
)

router = APIRouter(prefix="/models", tags=["registry"])


@router.get("", response_model=ModelsPublic)
def list_models(
    session: SessionDep,
    _: Viewer,
    team: str | None = None,
    limit: int = Query(500, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> ModelsPublic:
    return service.list_models(session, team=team, limit=limit, offset=offset)


@router.post("", response_model=ModelPublic, status_code=status.HTTP_201_CREATED)
def create_model(
    body: ModelCreate, session: SessionDep, actor: Deployer, clock: ClockDep
) -> ModelPublic:
    return service.model_public(service.create_model(session, data=body, actor=actor, clock=clock))


@router.get("/{name}", response_model=ModelPublic)
def get_model(name: str, session: SessionDep, _: Viewer) -> ModelPublic:
    return service.model_public(service.get_model(session, name))


@router.get("/{name}/versions", response_model=ModelVersionsPublic)
def list_versions(
    name: str,
    session: SessionDep,
    _: Viewer,
    limit: int = Query(200, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> ModelVersionsPublic:
    return service.list_versions(session, name, limit=limit, offset=offset)


@router.post(
    "/{name}/versions", response_model=ModelVersionPublic, status_code=status.HTTP_201_CREATED
)
def register_version(
    name: str, body: ModelVersionCreate, session: SessionDep, actor: Deployer, clock: ClockDep
) -> ModelVersionPublic:
    return service.register_version(session, model_name=name, data=body, actor=actor, clock=clock)


@router.get("/{name}/versions/{version}", response_model=ModelVersionPublic)
def get_version(name: str, version: str, session: SessionDep, _: Viewer) -> ModelVersionPublic:
    model = service.get_model(session, name)
    return service.version_public(model, service.get_version(session, model, version))
