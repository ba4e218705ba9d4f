"""REST: /environments."""

from __future__ import annotations

from fastapi import APIRouter

from modeldeck.core.api.deps import EngineDep, Viewer, read
from modeldeck.core.environments import service
from modeldeck.core.environments.models import EnvironmentPublic, EnvironmentsPublic

router = APIRouter(prefix="/environments", tags=["environments"])


@router.get("", response_model=EnvironmentsPublic)
async def list_environments(engine: EngineDep, _: Viewer) -> EnvironmentsPublic:
    return await read(engine, service.list_environments)


@router.get("/{name}", response_model=EnvironmentPublic)
async def get_environment(name: str, engine: EngineDep, _: Viewer) -> EnvironmentPublic:
    return await read(engine, lambda s: service.public(service.get(s, name)))
