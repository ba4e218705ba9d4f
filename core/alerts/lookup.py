"""Finding alert rows: by id, the open one of a fingerprint, and the audit target name.

Shared by service.py (fire, resolve) and snooze.py, which build on each other's rows.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from modeldeck.core import db
from modeldeck.core.alerts.models import OPEN, Alert
from modeldeck.core.errors import NotFound


def get(session: Session, alert_id: int) -> Alert:
    alert = db.get_by_id(session, Alert, alert_id, populate_existing=True)
    if alert is None:
        raise NotFound(f"no alert with id {alert_id}", hint="`modeldeck alerts` lists them")
    return alert


def open_alert(session: Session, fp: str) -> Alert | None:
    """The firing or snoozed alert of this fingerprint (at most one: a unique index)."""
    return session.exec(
        select(Alert)
        .where(Alert.fingerprint == fp, col(Alert.status).in_(OPEN))
        .execution_options(populate_existing=True)
    ).first()


def target(alert: Alert) -> str:
    return f"alert:{alert.id}"
