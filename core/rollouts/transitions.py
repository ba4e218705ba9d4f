"""The rollout state machine's moves, each one transaction with its audit event.

    pending ──apply ok──► rolling_out ──available──► active ──newer active──► superseded
       │                      │                        └────rolled back────► rolled_back
       └──apply failed──► failed ◄──failed / timeout──┘
    awaiting_approval ──enough approvals──► pending;  ──reject──► rejected

A move is a compare-and-set UPDATE (`WHERE state IN (...)`), so two processes advancing the
same rollout cannot both win; the loser sees Conflict and re-reads.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from modeldeck.core import logs
from modeldeck.core.audit import service as audit
from modeldeck.core.auth.models import SYSTEM, Actor
from modeldeck.core.clock import Clock, as_utc
from modeldeck.core.clusters import connect
from modeldeck.core.clusters.backend import (
    ClusterBackend,
    Phase,
    Release,
    Running,
    Target,
    TargetMissing,
    differences,
)
from modeldeck.core.config import Settings
from modeldeck.core.errors import BackendUnavailable, Conflict, ModeldeckError
from modeldeck.core.metrics import BAD_RELEASES_STOPPED, PROMOTIONS
from modeldeck.core.notify import service as outbox
from modeldeck.core.registry.models import ModelVersion
from modeldeck.core.rollouts import policy
from modeldeck.core.rollouts.context import Context, load
from modeldeck.core.rollouts.models import (
    Approval,
    Deployment,
    DeploymentKind,
    DeploymentState,
    Via,
)

S = DeploymentState
log = logs.get("modeldeck.rollouts")


def move(
    session: Session,
    row: Deployment,
    *,
    to: DeploymentState,
    frm: tuple[DeploymentState, ...],
    **values: Any,
) -> None:
    """Compare-and-set the state; Conflict if another request moved it first."""
    result = session.execute(
        update(Deployment)
        .where(col(Deployment.id) == row.id, col(Deployment.state).in_(frm))
        .values(state=to, **values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 1) != 1:
        session.rollback()
        session.refresh(row)
        raise Conflict(f"deployment #{row.id} is {row.state} now (changed meanwhile)")
    # The row now says what the database says, without being marked dirty for a second UPDATE.
    set_committed_value(row, "state", to)
    for key, value in values.items():
        set_committed_value(row, key, value)


def record(
    session: Session,
    ctx: Context,
    action: str,
    *,
    actor: Actor = SYSTEM,
    clock: Clock,
    **after: Any,
) -> None:
    d = ctx.deployment
    audit.record(
        session,
        actor=actor,
        action=action,
        target=ctx.target_name,
        clock=clock,
        after={
            "state": d.state,
            "version": ctx.version.version,
            "kind": d.kind,
            "message": d.message,
            **after,
        },
    )


def notify(session: Session, kind: str, deployment: Deployment, clock: Clock) -> None:
    """Queue a Slack message about the deployment in the same transaction.

    The outbox renders it from the database at delivery (notify.blocks), so the payload only
    names the deployment; `approval_request` posts the Approve/Reject message,
    `deployment_update` edits it (or posts to the channel the request came from).
    """
    payload: dict[str, Any] = {"deployment_id": deployment.id}
    if deployment.slack_channel:
        # Approval requests prefer the configured approval channel; updates go where asked.
        key = "origin_channel" if kind == "approval_request" else "channel"
        payload[key] = deployment.slack_channel
    outbox.enqueue(session, channel="slack", kind=kind, payload=payload, clock=clock)


def announce(session: Session, deployment: Deployment, clock: Clock) -> None:
    """Tell Slack how a rollout ended when someone there is waiting for it: it was asked from
    Slack, went through approval (a message with buttons exists), or was automatic."""
    if (
        deployment.slack_channel
        or deployment.slack_ts
        or deployment.requested_via == Via.auto
        or session.exec(select(Approval.id).where(Approval.deployment_id == deployment.id)).first()
        is not None
    ):
        notify(session, "deployment_update", deployment, clock)


def _release(ctx: Context) -> Release:
    assert ctx.deployment.id is not None
    return Release(
        model=ctx.model.name,
        version=ctx.version.version,
        image=ctx.version.image,
        artifact_uri=ctx.version.artifact_uri,
        deployment_id=ctx.deployment.id,
    )


def launch(
    session: Session, row: Deployment, *, settings: Settings, clock: Clock
) -> ModeldeckError | None:
    """Send a committed `pending` deployment to its cluster, then look at it once.

    Returns the error when the cluster did not take the change; the deployment is then
    `failed` with that reason and nothing else changed (the active version still runs). An
    error answer does not prove that: a PATCH may be applied and its answer lost (timeout, a
    500 after the write), so the object is read back; if it carries this deployment, the
    rollout is under way and `advance` follows it. An unexpected exception (a bug, an object
    the client cannot read) fails the row the same way, logged with its traceback: a row left
    `pending` would block every later promote and the emergency rollback.
    """
    ctx = load(session, row)
    target = connect.target_of(ctx.env, ctx.model.name)
    backend: ClusterBackend | None = None
    try:
        backend = connect.backend_for(settings, ctx.env.cluster, session=session, clock=clock)
        before = backend.apply(target, _release(ctx))
    except Exception as exc:  # noqa: BLE001 - whatever it is, the row must not stay pending
        session.rollback()
        error = exc if isinstance(exc, ModeldeckError) else unexpected(exc, "launch", row)
        if backend is not None and _applied_anyway(backend, target, row):
            note = f"the cluster took the change but answered: {error}"[:4000]
            _under_way(session, ctx, None, note, settings=settings, clock=clock, backend=backend)
            return None
        try:
            fail(
                session,
                ctx,
                f"could not apply to cluster {ctx.env.cluster}: {error}",
                frm=(S.pending,),
                clock=clock,
            )
        except Conflict:
            return None  # another process got there first and decided
        return error
    note = _drift_note(session, ctx, before)
    _under_way(session, ctx, before, note, settings=settings, clock=clock, backend=backend)
    return None


def _applied_anyway(backend: ClusterBackend, target: Target, row: Deployment) -> bool:
    """True when the object carries this deployment although applying answered an error."""
    try:
        now = backend.running(target)
    except Exception:  # noqa: BLE001 - cannot tell: fail it; reconcile reports a change that landed
        return False
    return now is not None and now.deployment_id == row.id


def unexpected(exc: Exception, step: str, row: Deployment) -> BackendUnavailable:
    """Log an exception no backend should raise, with its traceback, and turn it into the
    reason a person sees on the deployment."""
    log.error(f"rollouts.{step}_crashed", deployment_id=row.id, exc_info=exc)
    text = " ".join(str(exc).split())[:300]
    return BackendUnavailable(
        f"unexpected {type(exc).__name__}: {text}",
        hint="modeldeck's log has the traceback; please report it",
    )


def _under_way(
    session: Session,
    ctx: Context,
    before: Running | None,
    note: str,
    *,
    settings: Settings,
    clock: Clock,
    backend: ClusterBackend,
) -> None:
    """pending → rolling_out (the cluster has the change), then look at it once."""
    row = ctx.deployment
    try:
        move(session, row, to=S.rolling_out, frm=(S.pending,), applied_at=clock(), message=note)
    except Conflict:
        return  # another process launched it meanwhile; its poll decides
    record(session, ctx, "deployment.rollout", clock=clock, cluster_before=_running_dict(before))
    session.commit()
    poll(session, row, settings=settings, clock=clock, backend=backend)


def _drift_note(session: Session, ctx: Context, before: Running | None) -> str:
    """Say so when the cluster ran something other than modeldeck's record (hand change)."""
    assert ctx.model.id is not None and ctx.env.id is not None
    current = policy.active(session, ctx.model.id, ctx.env.id)
    expected = session.get(ModelVersion, current.version_id) if current else None
    seen = before.version if before else None
    if expected is not None and seen != expected.version:
        return (
            f"cluster ran {seen or 'nothing'} instead of {expected.version} (changed "
            f"outside modeldeck); replaced by {ctx.version.version}"
        )
    return ""


def _running_dict(running: Running | None) -> dict[str, Any] | None:
    if running is None:
        return None
    return {
        "version": running.version,
        "image": running.image,
        "artifact_uri": running.artifact_uri,
        "deployment_id": running.deployment_id,
    }


def poll(
    session: Session,
    row: Deployment,
    *,
    settings: Settings,
    clock: Clock,
    backend: ClusterBackend | None = None,
) -> None:
    """Ask the cluster how a `rolling_out` deployment is doing and move it if it is done."""
    ctx = load(session, row)
    target = connect.target_of(ctx.env, ctx.model.name)
    assert row.id is not None
    timeout = 600.0
    try:
        timeout = connect.cluster_config(settings, ctx.env.cluster).rollout_timeout_seconds
        backend = backend or connect.backend_for(
            settings, ctx.env.cluster, session=session, clock=clock
        )
        status = backend.rollout_status(target, _release(ctx))
    except TargetMissing as exc:
        # Deleted during the rollout: nothing will ever become available, say so now.
        phase, message = Phase.failed, f"the serving object is gone: {exc}"
    except ModeldeckError as exc:
        phase, message = Phase.progressing, f"cannot read the rollout status: {exc}"
    except Exception as exc:  # noqa: BLE001 - raising would skip the timeout below forever
        session.rollback()
        phase = Phase.progressing
        message = f"cannot read the rollout status: {unexpected(exc, 'poll', row)}"
    else:
        phase, message = status.phase, status.message
    if phase == Phase.available:
        activate(session, ctx, clock=clock)
        return
    started = as_utc(row.applied_at or row.started_at)
    if phase == Phase.progressing and clock() - started > timedelta(seconds=timeout):
        phase, message = Phase.failed, f"not available within {timeout:g}s: {message}"
    if phase == Phase.failed:
        note = restore(session, ctx, backend) if backend is not None else ""
        fail(session, ctx, message + note, frm=(S.rolling_out,), clock=clock)
        return
    if message != row.message:
        row.message = message[:4000]
        session.add(row)
        session.commit()


def restore(session: Session, ctx: Context, backend: ClusterBackend) -> str:
    """After a failed rollout, point the object back at the active version.

    Kubernetes keeps the failed spec (old pods serve, new ones never become available), so
    without this the cluster would claim a version modeldeck calls failed. Only our own change
    is undone: when the object no longer carries this deployment (its id, version and image),
    someone else changed it and it is left alone (reconcile reports it). Returns a note for
    the message.
    """
    assert ctx.model.id is not None and ctx.env.id is not None
    target = connect.target_of(ctx.env, ctx.model.name)
    current = policy.active(session, ctx.model.id, ctx.env.id)
    try:
        now = backend.running(target)
        if (
            current is None
            or now is None
            or now.deployment_id != ctx.deployment.id
            or differences(now, _release(ctx))
        ):
            return ""
        previous = load(session, current)
        backend.apply(target, _release(previous))
    except Exception as exc:  # noqa: BLE001 - the failure must be recorded whatever happens here
        session.rollback()
        error = (
            exc if isinstance(exc, ModeldeckError) else unexpected(exc, "restore", ctx.deployment)
        )
        return f"; could not restore the active version on the cluster: {error}"
    return f"; restored {previous.version.version} (deployment #{current.id}) on the cluster"


def activate(session: Session, ctx: Context, *, clock: Clock) -> None:
    """rolling_out → active; the version it replaces is superseded (or rolled back)."""
    row = ctx.deployment
    now = clock()
    assert ctx.model.id is not None and ctx.env.id is not None
    old = policy.active(session, ctx.model.id, ctx.env.id)
    replaced = S.rolled_back if row.kind == DeploymentKind.rollback else S.superseded
    if old is not None:
        # First, so the one-active-per-(model, env) index never sees two.
        move(session, old, to=replaced, frm=(S.active,), finished_at=now)
        old_ctx = load(session, old)
        record(session, old_ctx, f"deployment.{replaced}", clock=clock, replaced_by=row.id)
    move(
        session,
        row,
        to=S.active,
        frm=(S.rolling_out,),
        activated_at=now,
        message="",  # progress notes are over; activated_at says since when
    )
    record(
        session,
        ctx,
        "deployment.active",
        clock=clock,
        previous_deployment_id=old.id if old else None,
    )
    if row.kind == DeploymentKind.promote:
        PROMOTIONS.labels(ctx.env.name, "active").inc()
    announce(session, row, clock)
    session.commit()


def fail(
    session: Session, ctx: Context, reason: str, *, frm: tuple[DeploymentState, ...], clock: Clock
) -> None:
    """→ failed with the reason; what was active stays active."""
    row = ctx.deployment
    move(session, row, to=S.failed, frm=frm, finished_at=clock(), message=reason[:4000])
    record(session, ctx, "deployment.failed", clock=clock)
    if row.kind == DeploymentKind.promote:
        PROMOTIONS.labels(ctx.env.name, "failed").inc()
    BAD_RELEASES_STOPPED.labels(ctx.env.name, "rollout_failed").inc()
    announce(session, row, clock)
    session.commit()
