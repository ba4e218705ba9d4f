"""Dependencies that make route signatures read like sentences."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core.auth import service as auth
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.clock import Clock
from modeldeck.core.config import Settings
from modeldeck.core.errors import Unauthorized

_bearer = HTTPBearer(auto_error=False, description="an API token from `modeldeck token create`")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
ClockDep = Annotated[Clock, Depends(get_clock)]


def get_actor(
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token", hint="send 'Authorization: Bearer <token>'")
    actor = auth.authenticate(session, credentials.credentials, clock=clock)
    request_id = getattr(request.state, "request_id", None)
    return Actor(name=actor.name, role=actor.role, via="api", request_id=request_id)


CurrentActor = Annotated[Actor, Depends(get_actor)]


def role(needed: Role) -> Callable[[Actor], Actor]:
    """Dependency: the current actor, refused with 403 below `needed`."""

    def check(actor: CurrentActor) -> Actor:
        auth.require(actor, needed, f"use this endpoint (needs {needed})")
        return actor

    return check


Viewer = Annotated[Actor, Depends(role(Role.viewer))]
Deployer = Annotated[Actor, Depends(role(Role.deployer))]
Approver = Annotated[Actor, Depends(role(Role.approver))]
Admin = Annotated[Actor, Depends(role(Role.admin))]
