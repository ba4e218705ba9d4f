"""REST: /audit (read only; there is no write or delete route by design)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from modeldeck.core.api.deps import EngineDep, Viewer, read
from modeldeck.core.audit import service
from modeldeck.core.audit.models import AuditEventsPublic

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=AuditEventsPublic)
async def search_audit(
    engine: EngineDep,
    _: Viewer,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    q: str | None = Query(None, max_length=200, description="text in actor, action or target"),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> AuditEventsPublic:
    return await read(
        engine,
        service.search,
        actor=actor,
        action=action,
        target=target,
        text=q,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
