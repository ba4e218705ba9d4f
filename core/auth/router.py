"""REST: /whoami and /tokens (admin)."""

from __future__ import annotations

from fastapi import APIRouter, status

from modeldeck.core.api.deps import (
    Admin,
    ClockDep,
    CurrentActor,
    EngineDep,
    SessionDep,
    TokenCacheDep,
    read,
)
from modeldeck.core.auth import service
from modeldeck.core.auth.models import ApiTokenCreated, ApiTokenPublic, TokenCreate, WhoAmI

router = APIRouter(tags=["auth"])


@router.get("/whoami", response_model=WhoAmI)
async def whoami(actor: CurrentActor) -> WhoAmI:
    """Who the bearer token belongs to, and its role."""
    return WhoAmI(name=actor.name, role=actor.role)


@router.get("/tokens", response_model=list[ApiTokenPublic])
async def list_tokens(engine: EngineDep, _: Admin) -> list[ApiTokenPublic]:
    """Every API token (never its value)."""
    return await read(engine, service.list_tokens)


@router.post("/tokens", response_model=ApiTokenCreated, status_code=status.HTTP_201_CREATED)
def create_token(
    body: TokenCreate, session: SessionDep, actor: Admin, clock: ClockDep
) -> ApiTokenCreated:
    """Create a token; its value is in this answer only."""
    return service.create_token(
        session,
        name=body.name,
        role=body.role,
        actor=actor,
        expires_in_days=body.expires_in_days,
        clock=clock,
    )


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(
    token_id: int, session: SessionDep, actor: Admin, clock: ClockDep, cache: TokenCacheDep
) -> None:
    """Revoke a token: refused at once by the API process that answers this, within 5 s by
    the others (each trusts a token it has checked for up to 5 s)."""
    service.revoke_token(session, token_id=token_id, actor=actor, clock=clock)
    cache.clear()
