"""REST: /whoami and /tokens (admin)."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from modeldeck.core.api.deps import Admin, ClockDep, CurrentActor, SessionDep
from modeldeck.core.auth import service
from modeldeck.core.auth.models import ApiTokenCreated, ApiTokenPublic, Role

router = APIRouter(tags=["auth"])


class WhoAmI(BaseModel):
    name: str
    role: Role | None


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Role = Role.viewer
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


@router.get("/whoami", response_model=WhoAmI)
def whoami(actor: CurrentActor) -> WhoAmI:
    return WhoAmI(name=actor.name, role=actor.role)


@router.get("/tokens", response_model=list[ApiTokenPublic])
def list_tokens(session: SessionDep, _: Admin) -> list[ApiTokenPublic]:
    return service.list_tokens(session)


@router.post("/tokens", response_model=ApiTokenCreated, status_code=status.HTTP_201_CREATED)
def create_token(body: TokenCreate, session: SessionDep, actor: Admin,
                 clock: ClockDep) -> ApiTokenCreated:
    return service.create_token(session, name=body.name, role=body.role, actor=actor,
                                expires_in_days=body.expires_in_days, clock=clock)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: int, session: SessionDep, actor: Admin, clock: ClockDep) -> None:
    service.revoke_token(session, token_id=token_id, actor=actor, clock=clock)
