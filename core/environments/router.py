"""REST: /environments."""

from __future__ import annotations

from fastapi import APIRouter

from modeldeck.core.api.deps import SessionDep, Viewer
from modeldeck.core.environments import service
from modeldeck.core.environments.models import EnvironmentPublic, EnvironmentsPublic

router = APIRouter(prefix="/environments", tags=["environments"])


@router.get("", response_model=EnvironmentsPublic)
def list_environments(session: SessionDep, _: Viewer) -> EnvironmentsPublic:
    return service.list_environments(session)


@router.get("/{name}", response_model=EnvironmentPublic)
def get_environment(name: str, session: SessionDep, _: Viewer) -> EnvironmentPublic:
    return service.public(service.get(session, name))
