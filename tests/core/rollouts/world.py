"""A small registry for rollout tests, and a snapshot to prove "the database is unchanged"."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from modeldeck.core.auth.models import Actor
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import ModelCreate, ModelVersionCreate
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import DeploymentPublic

VERSIONS = ("1.0.0", "1.1.0", "1.2.0", "2.0.0")
TABLES = (
    "deployment",
    "approval",
    "audit_event",
    "outbox_message",
    "simulated_workload",
    "cluster_drift",
)


def register(
    session: Session, actor: Actor, model: str = "fraud", versions: tuple[str, ...] = VERSIONS
) -> None:
    for version in versions:
        registry.register_version(
            session,
            model_name=model,
            actor=actor,
            data=ModelVersionCreate(
                version=version,
                image=f"ghcr.io/acme/{model}:{version}",
                artifact_uri=f"s3://models/{model}/{version}",
            ),
            create_model_if_missing=ModelCreate(name=model),
        )


def snapshot(session: Session) -> dict[str, list[Any]]:
    """Every row of the tables rollouts write, to compare before and after a refused request."""
    session.rollback()
    out = {}
    for table in TABLES:
        rows = session.execute(text(f"SELECT * FROM {table} ORDER BY id")).all()  # noqa: S608
        out[table] = [tuple(r) for r in rows]
    return out


def live(
    session: Session,
    settings: Settings,
    clock: FixedClock,
    actor: Actor,
    approver: Actor,
    version: str,
    env: str = "production",
    model: str = "fraud",
) -> DeploymentPublic:
    """Put `version` live in `env` the normal way (with approval where needed)."""
    dep = rollouts.promote(
        session,
        settings=settings,
        model=model,
        version=version,
        environment=env,
        actor=actor,
        clock=clock,
    )
    if dep.state == "awaiting_approval":
        dep = rollouts.approve(
            session, settings=settings, deployment_id=dep.id, actor=approver, clock=clock
        )
    assert dep.state == "active", dep
    clock.advance(hours=1)
    return dep


def live_everywhere(
    session: Session,
    settings: Settings,
    clock: FixedClock,
    actor: Actor,
    approver: Actor,
    version: str,
    model: str = "fraud",
) -> DeploymentPublic:
    """Staging, then production."""
    live(session, settings, clock, actor, approver, version, "staging", model)
    return live(session, settings, clock, actor, approver, version, "production", model)
