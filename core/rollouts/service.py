"""Promote, roll back, approve, reject, advance: the only code that changes rollouts.

A request is checked (role, policy, history), then recorded in one transaction with its audit
event while the model is locked, so concurrent requests queue instead of racing. Sending the
version to the cluster happens after that commit: a slow or unreachable cluster never holds a
database lock, and a failure leaves a `failed` row with the cluster's reason and the active
version untouched. `advance` (CLI --wait, scheduler) follows a rollout to active or failed.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import timedelta

from sqlalchemy import or_
from sqlmodel import Session, col, select

from modeldeck.core import logs
from modeldeck.core.audit import service as audit
from modeldeck.core.auth import service as auth
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.clock import Clock, as_utc, utcnow
from modeldeck.core.clusters import connect
from modeldeck.core.config import ClusterConfig, Settings
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import BackendUnavailable, Conflict, NotFound
from modeldeck.core.metrics import BAD_RELEASES_STOPPED, PROMOTIONS
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import Model, ModelVersion
from modeldeck.core.rollouts import admission, policy, queries, transitions
from modeldeck.core.rollouts.approvals import approve, reject
from modeldeck.core.rollouts.models import (
    ROLLING_OUT,
    Deployment,
    DeploymentKind,
    DeploymentPublic,
    DeploymentState,
    RollbackPlan,
)
from modeldeck.core.rollouts.reconcile import reconcile

__all__ = [
    "advance",
    "advance_in_flight",
    "approve",
    "auto_rollback",
    "plan_rollback",
    "promote",
    "reconcile",
    "reject",
    "rollback",
]

S = DeploymentState
AUTO_ROLLBACK = Actor(name="modeldeck-auto-rollback", role=Role.deployer, via="auto")
PENDING_GRACE = timedelta(seconds=30)  # a younger `pending` row is still being launched
AUTO_ROLLBACK_ATTEMPTS = 3  # per judged deployment; each failure is announced
log = logs.get("modeldeck.rollouts")


def promote(
    session: Session,
    *,
    settings: Settings,
    model: str,
    version: str,
    environment: str,
    actor: Actor,
    reason: str = "",
    idempotency_key: str | None = None,
    slack_channel: str | None = None,
    clock: Clock = utcnow,
) -> DeploymentPublic:
    """Ask for `version` to run in `environment`; awaits approval when the policy says so."""
    auth.require(actor, Role.deployer, "promote models")
    reason, key = policy.clean_text(reason, "reason"), policy.clean_key(idempotency_key)
    m = registry.get_model(session, model)
    v = registry.get_version(session, m, version)
    env = policy.environment(session, settings, environment)
    policy.check_channel(settings, env, actor, slack_channel)
    assert m.id is not None and env.id is not None
    with admission.locked(session, m.id):
        if first := admission.first_with_key(session, key, DeploymentKind.promote, m, env, v):
            return admission.public(session, first)
        policy.refuse_in_flight(session, m, env)
        policy.refuse_paused(session, m, env)
        current = policy.active(session, m.id, env.id)
        if current is not None and current.version_id == v.id:
            raise Conflict(
                f"{m.name} {v.version} is already active in {env.name} (deployment #{current.id})"
            )
        policy.check_previous(session, env, m, v)
        waits = env.approvals_required > 0
        row, created = admission.insert(
            session,
            key,
            Deployment(
                model_id=m.id,
                environment_id=env.id,
                version_id=v.id,
                previous_deployment_id=current.id if current else None,
                kind=DeploymentKind.promote,
                state=S.awaiting_approval if waits else S.pending,
                reason=reason,
                requested_by=actor.name,
                requested_via=admission.via(actor),
                idempotency_key=key,
                started_at=clock(),
                pending_since=None if waits else clock(),
                slack_channel=slack_channel,
                message=f"waiting for {env.approvals_required} approval(s)" if waits else "",
            ),
        )
        if not created:
            return admission.public(session, row)
        ctx = transitions.load(session, row)
        transitions.record(
            session,
            ctx,
            "deployment.promote",
            actor=actor,
            clock=clock,
            reason=reason,
            previous_deployment_id=row.previous_deployment_id,
        )
        if waits:
            transitions.notify(session, "approval_request", row, clock)
        session.commit()
    PROMOTIONS.labels(env.name, "requested").inc()
    return admission.start(session, row, settings=settings, clock=clock)


def rollback(
    session: Session,
    *,
    settings: Settings,
    model: str,
    environment: str,
    actor: Actor,
    to_version: str | None = None,
    reason: str = "",
    idempotency_key: str | None = None,
    slack_channel: str | None = None,
    expected_current_id: int | None = None,
    clock: Clock = utcnow,
) -> DeploymentPublic:
    """Go back to the previous good version, or to any version that ran here before.

    The emergency rollback (to the previous good version) skips approvals, the promotion
    pause and `requires_previous`, and supersedes a request awaiting approval. A rollback to
    any other version follows the environment's approval policy like a promote.
    `expected_current_id` (a confirmation step) refuses with Conflict when the active
    deployment is no longer the one the person saw.
    """
    auth.require(actor, Role.deployer, "roll back models")
    reason, key = policy.clean_text(reason, "reason"), policy.clean_key(idempotency_key)
    m = registry.get_model(session, model)
    wanted = registry.get_version(session, m, to_version) if to_version else None
    env = policy.environment(session, settings, environment)
    policy.check_channel(settings, env, actor, slack_channel)
    row, created = admission.request_rollback(
        session,
        m,
        env,
        wanted,
        actor=actor,
        reason=reason,
        key=key,
        slack_channel=slack_channel,
        clock=clock,
        expected_current_id=expected_current_id,
    )
    if not created:
        return admission.public(session, row)
    return admission.start(session, row, settings=settings, clock=clock)


def plan_rollback(
    session: Session,
    *,
    settings: Settings,
    model: str,
    environment: str,
    actor: Actor,
    to_version: str | None = None,
    slack_channel: str | None = None,
) -> RollbackPlan:
    """Check a rollback as `rollback` would (role, channel, something runs, the target, what
    is in flight, the pause) and say what it would do, changing nothing. Pass
    `current_deployment_id` back to `rollback` as `expected_current_id` so the confirmation
    runs exactly this plan."""
    auth.require(actor, Role.deployer, "roll back models")
    m = registry.get_model(session, model)
    wanted = registry.get_version(session, m, to_version) if to_version else None
    env = policy.environment(session, settings, environment)
    policy.check_channel(settings, env, actor, slack_channel)
    assert m.id is not None and env.id is not None
    current = policy.active(session, m.id, env.id)
    if current is None or current.id is None:
        raise Conflict(
            f"nothing is active for {m.name} in {env.name}, so there is nothing to roll back",
            hint="promote a version instead",
        )
    target = admission.rollback_version(session, m, env, current, wanted)
    running = session.get(ModelVersion, current.version_id)
    assert running is not None
    emergency = admission.is_emergency(session, current, target)
    waiting = admission.check_rollback_allowed(session, m, env, emergency=emergency)
    return RollbackPlan(
        model=m.name,
        environment=env.name,
        current_deployment_id=current.id,
        from_version=running.version,
        to_version=target.version,
        approvals_required=0 if emergency else env.approvals_required,
        supersedes=waiting.id if waiting is not None else None,
    )


def advance(
    session: Session, *, settings: Settings, deployment_id: int, clock: Clock = utcnow
) -> DeploymentPublic:
    """Move a rollout on by what the cluster says: rolling_out → active | failed.

    A `pending` row that became pending more than PENDING_GRACE ago was left by a crash
    between commit and apply; it is sent again (applying the same version twice is harmless).
    The grace runs from `pending_since`, not `started_at`: an approved request is old, but its
    approver's launch may still be running. One still pending after the grace plus the
    cluster's rollout timeout is failed instead: nobody advanced it for that long (no
    scheduler, or every launch crashed), and applying a request that stale would surprise.
    """
    row = queries.get(session, deployment_id)
    if row.state == S.rolling_out:
        transitions.poll(session, row, settings=settings, clock=clock)
    elif row.state == S.pending:
        waited = clock() - as_utc(row.pending_since or row.started_at)
        if waited > PENDING_GRACE:
            ctx = transitions.load(session, row)
            timeout = _rollout_timeout(settings, ctx.env.cluster)
            if waited <= PENDING_GRACE + timedelta(seconds=timeout):
                transitions.launch(session, row, settings=settings, clock=clock)
            else:
                reason = (
                    f"gave up after {waited.total_seconds():.0f}s pending: it was never "
                    f"confirmed on cluster {ctx.env.cluster} within its {timeout:g}s rollout "
                    "timeout; nothing was sent now, request it again if it is still wanted"
                )
                with suppress(Conflict):  # another process moved it: its decision stands
                    transitions.fail(session, ctx, reason, frm=(S.pending,), clock=clock)
    return admission.public(session, row)


def _rollout_timeout(settings: Settings, cluster: str) -> float:
    try:
        return connect.cluster_config(settings, cluster).rollout_timeout_seconds
    except BackendUnavailable:  # the cluster left the configuration: the default
        return float(ClusterConfig.model_fields["rollout_timeout_seconds"].default)


def advance_in_flight(
    session: Session, *, settings: Settings, clock: Clock = utcnow
) -> list[DeploymentPublic]:
    """`advance` every rollout under way (the scheduler's job); one failure stops no other."""
    ids = session.exec(
        select(Deployment.id)
        .where(col(Deployment.state).in_([S.rolling_out, S.pending]))
        .order_by(Deployment.id)
    ).all()
    out = []
    for deployment_id in ids:
        assert deployment_id is not None
        try:
            out.append(
                advance(session, settings=settings, deployment_id=deployment_id, clock=clock)
            )
        except (Conflict, BackendUnavailable, NotFound):
            session.rollback()
        except Exception as exc:  # noqa: BLE001 - a bug in one rollout must not stop the others
            session.rollback()
            log.error("rollouts.advance_failed", deployment_id=deployment_id, error=repr(exc))
    return out


def auto_rollback(
    session: Session,
    *,
    settings: Settings,
    model_id: int,
    environment_id: int,
    reason: str,
    clock: Clock = utcnow,
    deployment_id: int | None = None,
) -> DeploymentPublic | None:
    """Roll back after a failed health or quality check, as the audited automation identity.

    None when the environment has auto_rollback off, nothing earlier ran there, a rollout is
    being sent to the cluster (audited as skipped), or `deployment_id` (the deployment the
    check judged) is no longer the active one, so a repeated alert never rolls back twice. A
    request awaiting approval is superseded. The result may be `failed` (the cluster refused):
    the next failed check tries again, up to AUTO_ROLLBACK_ATTEMPTS times per deployment.
    """
    env = session.get(Environment, environment_id)
    model = session.get(Model, model_id)
    if env is None or model is None:
        raise NotFound(f"no model {model_id} / environment {environment_id}")
    if not env.auto_rollback:
        return None
    current = policy.active(session, model_id, environment_id)
    if current is None or (deployment_id is not None and current.id != deployment_id):
        return None
    previous = policy.previous_good(session, current)
    if previous is None:
        return None
    flying = policy.in_flight(session, model_id, environment_id)
    if flying is not None and flying.state in ROLLING_OUT:
        audit.record(
            session,
            actor=AUTO_ROLLBACK,
            action="deployment.auto_rollback_skipped",
            target=f"model:{model.name}/env:{env.name}/deployment:{current.id}",
            after={"reason": reason, "why": f"deployment #{flying.id} is in flight"},
            clock=clock,
        )
        session.commit()
        return None
    assert current.id is not None
    key, earlier = _auto_rollback_key(session, current.id)
    if key is None:
        assert earlier is not None
        return admission.public(session, earlier)
    target = session.get(ModelVersion, previous.version_id)
    row, created = admission.request_rollback(
        session,
        model,
        env,
        target,
        actor=AUTO_ROLLBACK,
        reason=policy.clean_text(f"automatic rollback: {reason}"[:2000], "reason"),
        key=key,
        slack_channel=None,
        clock=clock,
    )
    if not created:
        return admission.public(session, row)
    BAD_RELEASES_STOPPED.labels(env.name, "check_failed").inc()
    return admission.start(session, row, settings=settings, clock=clock, raise_on_failure=False)


def _auto_rollback_key(session: Session, current_id: int) -> tuple[str | None, Deployment | None]:
    """The idempotency key of the next automatic rollback of deployment `current_id`, or
    (None, the earlier row) when an attempt is under way or done, or attempts are used up.

    The first attempt is `auto-rollback:<id>`, retries `auto-rollback:<id>:<n>`: a key that
    replays a failed row would make one failure permanent.
    """
    base = f"auto-rollback:{current_id}"
    earlier = session.exec(
        select(Deployment)
        .where(
            or_(
                Deployment.idempotency_key == base,
                col(Deployment.idempotency_key).startswith(base + ":"),
            )
        )
        .order_by(col(Deployment.id).desc())
    ).all()
    if not earlier:
        return base, None
    last = earlier[0]
    if last.state != S.failed or len(earlier) >= AUTO_ROLLBACK_ATTEMPTS:
        return None, last
    return f"{base}:{len(earlier) + 1}", None
