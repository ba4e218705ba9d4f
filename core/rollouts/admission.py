"""Admitting a rollout request: lock the model, replay or refuse, insert, start.

Shared by promote, rollback, approve and auto-rollback so the locking, idempotency and
"send it to the cluster after commit" rules exist once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from modeldeck.core.auth.models import Actor
from modeldeck.core.clock import Clock
from modeldeck.core.config import Settings
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import BackendUnavailable, Conflict, InvalidInput
from modeldeck.core.metrics import PROMOTIONS, ROLLBACKS
from modeldeck.core.registry.models import Model, ModelVersion
from modeldeck.core.rollouts import policy, queries, transitions
from modeldeck.core.rollouts.models import (
    ROLLING_OUT,
    Deployment,
    DeploymentKind,
    DeploymentPublic,
    DeploymentState,
    Via,
)

S = DeploymentState


@contextmanager
def locked(session: Session, model_id: int) -> Iterator[None]:
    """Hold the model's lock for the block. The block commits its change; an error or an
    early return (a replayed request) rolls back, which writes nothing and frees the lock."""
    policy.lock_model(session, model_id)
    try:
        yield
    finally:
        if session.in_transaction():
            session.rollback()


def request_rollback(
    session: Session,
    m: Model,
    env: Environment,
    wanted: ModelVersion | None,
    *,
    actor: Actor,
    reason: str,
    key: str | None,
    slack_channel: str | None,
    clock: Clock,
    expected_current_id: int | None = None,
) -> tuple[Deployment, bool]:
    """Record a rollback request; (row, False) when the idempotency key replays an earlier one.

    The emergency rollback (to the previous good version) skips approvals and the promotion
    pause, and supersedes a request awaiting approval in the same transaction; a rollback to
    any other version is a request like a promote: it follows the approval policy.
    """
    assert m.id is not None and env.id is not None
    with locked(session, m.id):
        if first := first_with_key(session, key, DeploymentKind.rollback, m, env, wanted):
            return first, False
        current = policy.active(session, m.id, env.id)
        if current is None:
            raise Conflict(
                f"nothing is active for {m.name} in {env.name}, so there is nothing to roll back",
                hint="promote a version instead",
            )
        if expected_current_id is not None and current.id != expected_current_id:
            running = session.get(ModelVersion, current.version_id)
            raise Conflict(
                f"{m.name} in {env.name} changed since you asked: deployment #{current.id} "
                f"({running.version if running else '?'}) is active now; nothing changed",
                hint="look at `history` and ask again if you still want to roll back",
            )
        version = rollback_version(session, m, env, current, wanted)
        assert version.id is not None
        emergency = is_emergency(session, current, version)
        flying = check_rollback_allowed(session, m, env, emergency=emergency)
        waits = not emergency and env.approvals_required > 0
        if flying is not None:
            _set_aside(session, flying, clock)
        row, created = insert(
            session,
            key,
            Deployment(
                model_id=m.id,
                environment_id=env.id,
                version_id=version.id,
                previous_deployment_id=current.id,
                kind=DeploymentKind.rollback,
                state=S.awaiting_approval if waits else S.pending,
                reason=reason,
                requested_by=actor.name,
                requested_via=via(actor),
                idempotency_key=key,
                started_at=clock(),
                pending_since=None if waits else clock(),
                slack_channel=slack_channel,
                message=f"waiting for {env.approvals_required} approval(s)" if waits else "",
            ),
        )
        if not created:
            return row, False
        if flying is not None:
            _supersede(session, flying, row, actor=actor, clock=clock)
        ctx = transitions.load(session, row)
        transitions.record(
            session,
            ctx,
            "deployment.rollback",
            actor=actor,
            clock=clock,
            reason=reason,
            previous_deployment_id=current.id,
            emergency=emergency,
        )
        if waits:
            transitions.notify(session, "approval_request", row, clock)
        session.commit()
    ROLLBACKS.labels(env.name, "auto" if actor.via == "auto" else "manual").inc()
    if flying is not None and flying.kind == DeploymentKind.promote:
        PROMOTIONS.labels(env.name, "rejected").inc()
    return row, True


def check_rollback_allowed(
    session: Session, m: Model, env: Environment, *, emergency: bool
) -> Deployment | None:
    """Refuse what a rollback must wait for; the request awaiting approval it supersedes.

    Every rollback waits for a rollout being sent or rolling out (the cluster is changing).
    Only the emergency rollback passes a waiting request and the promotion pause.
    """
    assert m.id is not None and env.id is not None
    flying = policy.in_flight(session, m.id, env.id)
    if flying is not None and (flying.state in ROLLING_OUT or not emergency):
        policy.refuse_in_flight(session, m, env, flying=flying)
    if not emergency:
        policy.refuse_paused(session, m, env)
    return flying


def is_emergency(session: Session, current: Deployment, version: ModelVersion) -> bool:
    """A rollback to the previous good version: the remedy that may not wait for anyone."""
    previous = policy.previous_good(session, current)
    return previous is not None and previous.version_id == version.id


def _set_aside(session: Session, waiting: Deployment, clock: Clock) -> None:
    """Finish a request awaiting approval first, so the one-in-flight index admits the
    rollback; `_supersede` names the rollback once it has an id (same transaction)."""
    transitions.move(
        session,
        waiting,
        to=S.rejected,
        frm=(S.awaiting_approval,),
        finished_at=clock(),
        message="superseded by a rollback",
    )
    session.flush()


def _supersede(
    session: Session, waiting: Deployment, rollback: Deployment, *, actor: Actor, clock: Clock
) -> None:
    transitions.move(
        session,
        waiting,
        to=S.rejected,
        frm=(S.rejected,),
        message=f"superseded by rollback #{rollback.id}",
    )
    transitions.record(
        session,
        transitions.load(session, waiting),
        "deployment.reject",
        actor=actor,
        clock=clock,
        superseded_by=rollback.id,
    )
    transitions.notify(session, "deployment_update", waiting, clock)


def rollback_version(
    session: Session, m: Model, env: Environment, current: Deployment, wanted: ModelVersion | None
) -> ModelVersion:
    """The version to go back to: the one asked for (if it ran here), else the previous good."""
    if wanted is None:
        previous = policy.previous_good(session, current)
        if previous is None:
            raise Conflict(f"{m.name} has no earlier version in {env.name} to roll back to")
        found = session.get(ModelVersion, previous.version_id)
        assert found is not None
        return found
    assert m.id is not None and env.id is not None and wanted.id is not None
    if wanted.id == current.version_id:
        raise Conflict(f"{m.name} {wanted.version} is already active in {env.name}")
    if not policy.was_active(session, m.id, env.id, wanted.id):
        raise InvalidInput(
            f"{m.name} {wanted.version} never ran in {env.name}; a rollback goes "
            "back to a version from its history",
            hint=f"use promote for a new version (`modeldeck history {m.name}`)",
        )
    return wanted


def first_with_key(
    session: Session,
    key: str | None,
    kind: DeploymentKind,
    m: Model,
    env: Environment,
    v: ModelVersion | None,
) -> Deployment | None:
    """The deployment an idempotency key already created; Conflict if it was another request."""
    if key is None:
        return None
    first = session.exec(select(Deployment).where(Deployment.idempotency_key == key)).first()
    if first is None:
        return None
    same = (
        first.kind == kind
        and first.model_id == m.id
        and first.environment_id == env.id
        and (v is None or first.version_id == v.id)
    )
    if not same:
        raise Conflict(
            f"idempotency key {key!r} was already used for deployment #{first.id}, "
            "a different request",
            hint="use a new key for a new request",
        )
    return first


def insert(session: Session, key: str | None, row: Deployment) -> tuple[Deployment, bool]:
    """Insert; a lost race becomes Conflict, or the first row when it had the same key."""
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        if key is not None:
            first = session.exec(
                select(Deployment).where(Deployment.idempotency_key == key)
            ).first()
            if first is not None:
                return first, False
        raise Conflict(
            "another rollout of this model in this environment started at the same moment",
            hint="`modeldeck history` shows it",
        ) from exc
    return row, True


def start(
    session: Session,
    row: Deployment,
    *,
    settings: Settings,
    clock: Clock,
    raise_on_failure: bool = True,
) -> DeploymentPublic:
    """Send a freshly `pending` deployment to its cluster; report an unreachable cluster."""
    if row.state == S.pending:
        error = transitions.launch(session, row, settings=settings, clock=clock)
        if error is not None and raise_on_failure:
            raise BackendUnavailable(
                f"{error.message}; deployment #{row.id} is marked failed "
                "and the active version keeps running",
                hint=error.hint,
            )
    return public(session, row)


def via(actor: Actor) -> Via:
    try:
        return Via(actor.via)
    except ValueError:
        raise InvalidInput(f"unknown interface {actor.via!r} for {actor.name}") from None


def public(session: Session, row: Deployment) -> DeploymentPublic:
    return queries.to_public(session, [row])[0]
