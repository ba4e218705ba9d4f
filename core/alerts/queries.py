"""Read side of alerts for the dashboard: filter by status, model, environment and time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, or_
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from modeldeck.core.alerts.models import OPEN, Alert, AlertPublic, AlertStatus
from modeldeck.core.alerts.public import to_public
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import NotFound
from modeldeck.core.registry import service as registry
from modeldeck.core.timeseries import to_utc

MAX_ROWS = 1000


class AlertList(BaseModel):
    data: list[AlertPublic]
    count: int  # matching rows (data holds at most `limit` of them)
    by_status: dict[str, int]  # per status under the same filters, for the page's tabs


def search(
    session: Session,
    *,
    statuses: Sequence[AlertStatus] = (),
    model: str | None = None,
    environment: str | None = None,
    since: datetime | None = None,
    alert_id: int | None = None,
    limit: int = 500,
) -> AlertList:
    """Alerts, most recently seen first. Open alerts (firing, snoozed) always count, however
    old; resolved ones only when resolved after `since`. `alert_id` picks one alert."""
    query = select(Alert)
    if alert_id is not None:
        query = query.where(Alert.id == alert_id)
    if model:
        query = query.where(Alert.model_id == registry.get_model(session, model).id)
    if environment:
        env_id = session.exec(select(Environment.id).where(Environment.name == environment)).first()
        if env_id is None:
            raise NotFound(f"no environment named {environment!r}")
        query = query.where(Alert.environment_id == env_id)
    if since is not None:
        query = query.where(
            or_(
                col(Alert.status).in_(OPEN),
                col(Alert.resolved_at) >= to_utc(since),
                col(Alert.last_seen) >= to_utc(since),
            )
        )
    grouped = _by_status(session, query)
    if statuses:
        query = query.where(col(Alert.status).in_(list(statuses)))
    total = sum(grouped.get(str(s), 0) for s in statuses) if statuses else sum(grouped.values())
    rows = session.exec(
        query.order_by(col(Alert.last_seen).desc(), col(Alert.id).desc()).limit(
            max(1, min(limit, MAX_ROWS))
        )
    ).all()
    return AlertList(data=to_public(session, rows), count=total, by_status=grouped)


def _by_status(session: Session, query: SelectOfScalar[Alert]) -> dict[str, int]:
    sub = query.subquery()
    rows = session.exec(select(sub.c.status, func.count()).group_by(sub.c.status)).all()
    counts = {str(s): 0 for s in AlertStatus}
    for status, n in rows:
        counts[str(status)] = int(n)
    return counts
