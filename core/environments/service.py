"""Environments come from the config file; `sync` makes the table match it."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from modeldeck.core.audit import service as audit
from modeldeck.core.auth.models import SYSTEM, Actor
from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.environments.models import Environment, EnvironmentPublic, EnvironmentsPublic
from modeldeck.core.errors import NotFound

_SYNCED = (
    "cluster",
    "namespace",
    "requires_previous",
    "approvals_required",
    "auto_rollback",
    "backend",
    "target",
    "gpu_model",
    "active",
)


def sync(
    session: Session, settings: Settings, *, actor: Actor = SYSTEM, clock: Clock = utcnow
) -> list[Environment]:
    """Create or update environments from the config; ones removed from it are deactivated
    (never deleted: the deployment history points at them). Every change is audited."""
    try:
        return _sync(session, settings, actor=actor, clock=clock)
    except IntegrityError:
        # Another process (api, scheduler, bot started together) synced the same new
        # environment first; its rows are there now, so compare against them once more.
        session.rollback()
        return _sync(session, settings, actor=actor, clock=clock)


def _sync(session: Session, settings: Settings, *, actor: Actor, clock: Clock) -> list[Environment]:
    clusters = {c.name: c for c in settings.clusters}
    existing = {e.name: e for e in session.exec(select(Environment)).all()}
    wanted: dict[str, dict[str, object]] = {}
    for env in settings.environments:
        cluster = clusters[env.cluster]
        wanted[env.name] = {
            "cluster": env.cluster,
            "namespace": env.namespace,
            "requires_previous": env.requires_previous,
            "approvals_required": env.approvals_required,
            "auto_rollback": env.auto_rollback,
            "backend": str(cluster.backend),
            "target": env.target,
            "gpu_model": cluster.gpu_model,
            "active": True,
        }
    changed = False
    for name, values in wanted.items():
        row = existing.get(name)
        before = {k: getattr(row, k) for k in _SYNCED} if row else None
        if row is None:
            row = Environment(name=name, **values)
        elif before == values:
            continue
        else:
            for key, value in values.items():
                setattr(row, key, value)
        row.updated_at = clock()
        session.add(row)
        audit.record(
            session,
            actor=actor,
            action="environment.sync",
            target=f"env:{name}",
            before=before,
            after=values,
            clock=clock,
        )
        changed = True
    for name, row in existing.items():
        if name not in wanted and row.active:
            row.active = False
            row.updated_at = clock()
            session.add(row)
            audit.record(
                session,
                actor=actor,
                action="environment.deactivate",
                target=f"env:{name}",
                before={"active": True},
                after={"active": False},
                clock=clock,
            )
            changed = True
    if changed:
        session.commit()
    return list(session.exec(select(Environment).order_by(Environment.name)).all())


def resolve_name(settings: Settings, name: str) -> str:
    """Map an alias (`prod`) or any case (`Production`) to the configured environment name."""
    lowered = name.strip().lower()
    for env in settings.environments:
        if lowered == env.name or lowered in (a.lower() for a in env.aliases):
            return env.name
    return lowered


def get(session: Session, name: str) -> Environment:
    env = session.exec(select(Environment).where(Environment.name == name)).first()
    if env is None or not env.active:
        known = session.exec(
            select(Environment.name)
            .where(Environment.active == True)  # noqa: E712
            .order_by(Environment.name)
        ).all()
        raise NotFound(
            f"no environment named {name!r}",
            hint=f"known: {', '.join(known)}" if known else "none is configured",
        )
    return env


def public(env: Environment) -> EnvironmentPublic:
    assert env.id is not None
    return EnvironmentPublic(**env.model_dump(exclude={"updated_at"}))


def list_environments(session: Session, *, include_inactive: bool = False) -> EnvironmentsPublic:
    query = select(Environment).order_by(Environment.name)
    if not include_inactive:
        query = query.where(Environment.active == True)  # noqa: E712
    rows = session.exec(query).all()
    return EnvironmentsPublic(data=[public(e) for e in rows], count=len(rows))
