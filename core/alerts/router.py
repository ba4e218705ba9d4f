"""REST: /alerts (list), /alerts/{id}/snooze and /alerts/{id}/resolve."""

from __future__ import annotations

from fastapi import APIRouter, Query

from modeldeck.core.alerts import service
from modeldeck.core.alerts.models import AlertPublic, AlertsPublic, AlertStatus, SnoozeRequest
from modeldeck.core.api.deps import (
    ClockDep,
    CurrentActor,
    EngineDep,
    SessionDep,
    SettingsDep,
    Viewer,
    read,
)
from modeldeck.core.auth.models import Role
from modeldeck.core.auth.service import require

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.get("", response_model=AlertsPublic)
async def list_alerts(
    engine: EngineDep,
    _: Viewer,
    status: AlertStatus | None = None,
    model: str | None = Query(None, max_length=64),
    limit: int = Query(200, ge=1, le=1000),
) -> AlertsPublic:
    """Alerts, most recently seen first."""
    data = await read(engine, service.list_alerts, status=status, model=model, limit=limit)
    return AlertsPublic(data=data, count=len(data))


@router.get("/{alert_id}", response_model=AlertPublic)
async def get_alert(alert_id: int, engine: EngineDep, _: Viewer) -> AlertPublic:
    return await read(engine, service.get_alert, alert_id)


@router.post("/{alert_id}/snooze", response_model=AlertPublic)
def snooze(
    alert_id: int,
    body: SnoozeRequest,
    session: SessionDep,
    settings: SettingsDep,
    actor: CurrentActor,
    clock: ClockDep,
) -> AlertPublic:
    """Silence an alert for a while (30m, 2h, 1d; at most 30d). Needs the deployer role."""
    require(actor, Role.deployer, "snooze alerts")  # refuse before judging the duration
    duration = service.parse_duration(body.duration)
    return service.snooze(
        session, settings=settings, alert_id=alert_id, duration=duration, actor=actor, clock=clock
    )


@router.post("/{alert_id}/resolve", response_model=AlertPublic)
def resolve(
    alert_id: int, session: SessionDep, settings: SettingsDep, actor: CurrentActor, clock: ClockDep
) -> AlertPublic:
    """Mark an alert resolved. Needs the deployer role; if the problem persists, the next check
    opens a new alert."""
    return service.resolve_by(
        session, settings=settings, alert_id=alert_id, actor=actor, clock=clock
    )
