"""Alert rows as the API, CLI, Slack and webhooks show them (names instead of ids).

Kept apart from service.py so delivery channels can use it without importing the service
(which itself enqueues notifications).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from modeldeck.core.alerts.models import Alert, AlertPublic
from modeldeck.core.clock import as_utc
from modeldeck.core.environments.models import Environment
from modeldeck.core.fields import public_time
from modeldeck.core.registry.models import Model, ModelVersion


def to_public(session: Session, rows: Sequence[Alert]) -> list[AlertPublic]:
    """Attach model, version and environment names to alert rows in three queries."""
    model_ids = {r.model_id for r in rows if r.model_id is not None}
    version_ids = {r.version_id for r in rows if r.version_id is not None}
    env_ids = {r.environment_id for r in rows if r.environment_id is not None}
    models: dict[int | None, str] = (
        dict(session.exec(select(Model.id, Model.name).where(col(Model.id).in_(model_ids))).all())
        if model_ids
        else {}
    )
    versions: dict[int | None, str] = (
        dict(
            session.exec(
                select(ModelVersion.id, ModelVersion.version).where(
                    col(ModelVersion.id).in_(version_ids)
                )
            ).all()
        )
        if version_ids
        else {}
    )
    envs: dict[int | None, str] = (
        dict(
            session.exec(
                select(Environment.id, Environment.name).where(col(Environment.id).in_(env_ids))
            ).all()
        )
        if env_ids
        else {}
    )
    out = []
    for r in rows:
        assert r.id is not None
        out.append(
            AlertPublic(
                id=r.id,
                fingerprint=r.fingerprint,
                rule=r.rule,
                severity=r.severity,
                model=models.get(r.model_id),
                version=versions.get(r.version_id),
                environment=envs.get(r.environment_id),
                key=r.key,
                status=r.status,
                summary=r.summary,
                details=r.details,
                first_seen=as_utc(r.first_seen),
                last_seen=as_utc(r.last_seen),
                last_notified=public_time(r.last_notified),
                resolved_at=public_time(r.resolved_at),
                resolved_by=r.resolved_by,
                snoozed_until=public_time(r.snoozed_until),
                snoozed_by=r.snoozed_by,
                count=r.count,
                pauses_promotions=r.pauses_promotions,
            )
        )
    return out
