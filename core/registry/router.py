"""REST: /models and /models/{name}/versions."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from modeldeck.core.api.deps import ClockDep, Deployer, EngineDep, SessionDep, Viewer, read
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
async def list_models(
    engine: EngineDep,
    _: Viewer,
    team: str | None = None,
    limit: int = Query(500, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> ModelsPublic:
    return await read(engine, service.list_models, team=team, limit=limit, offset=offset)


@router.post("", response_model=ModelPublic, status_code=status.HTTP_201_CREATED)
def create_model(
    body: ModelCreate, session: SessionDep, actor: Deployer, clock: ClockDep
) -> ModelPublic:
    return service.model_public(service.create_model(session, data=body, actor=actor, clock=clock))


@router.get("/{name}", response_model=ModelPublic)
async def get_model(name: str, engine: EngineDep, _: Viewer) -> ModelPublic:
    return await read(engine, service.get_model_public, name)


@router.get("/{name}/versions", response_model=ModelVersionsPublic)
async def list_versions(
    name: str,
    engine: EngineDep,
    _: Viewer,
    limit: int = Query(200, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> ModelVersionsPublic:
    return await read(engine, service.list_versions, name, limit=limit, offset=offset)


@router.post(
    "/{name}/versions", response_model=ModelVersionPublic, status_code=status.HTTP_201_CREATED
)
def register_version(
    name: str, body: ModelVersionCreate, session: SessionDep, actor: Deployer, clock: ClockDep
) -> ModelVersionPublic:
    return service.register_version(session, model_name=name, data=body, actor=actor, clock=clock)


@router.get("/{name}/versions/{version}", response_model=ModelVersionPublic)
async def get_version(name: str, version: str, engine: EngineDep, _: Viewer) -> ModelVersionPublic:
    return await read(engine, service.get_version_public, name, version)
