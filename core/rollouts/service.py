"""Promote, roll back, approve, reject, advance: the only code that changes rollouts.

A request is checked (role, policy, history), then recorded in one transaction with its audit
event while the model is locked, so concurrent requests queue instead of racing. Sending the
version to the cluster happens after that commit: a slow or unreachable cluster never holds a
database lock, and a failure leaves a `failed` row with the cluster's reason and the active
version untouched. `advance` (CLI --wait, scheduler) follows a rollout to active or failed.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from modeldeck.core.audit import service as audit
from modeldeck.core.auth import service as auth
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.clock import Clock, as_utc, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import BackendUnavailable, Conflict, NotFound
from modeldeck.core.metrics import BAD_RELEASES_STOPPED, PROMOTIONS
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import Model, ModelVersion
from modeldeck.core.rollouts import admission, policy, queries, transitions
from modeldeck.core.rollouts.approvals import approve, reject
from modeldeck.core.rollouts.models import (
    Deployment,
    DeploymentKind,
    DeploymentPublic,
    DeploymentState,
)
from modeldeck.core.rollouts.reconcile import reconcile

__all__ = [
    "advance",
    "advance_in_flight",
    "approve",
    "auto_rollback",
    "promote",
    "reconcile",
    "reject",
    "rollback",
]

S = DeploymentState
AUTO_ROLLBACK = Actor(name="modeldeck-auto-rollback", role=Role.deployer, via="auto")
PENDING_GRACE = timedelta(seconds=30)  # a younger `pending` row is still being launched


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
    clock: Clock = utcnow,
) -> DeploymentPublic:
    """Go back to the previous good version, or to any version that ran here before.

    Rollbacks skip approvals and `requires_previous`: the version already ran here.
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
    )
    if not created:
        return admission.public(session, row)
    return admission.start(session, row, settings=settings, clock=clock)


def advance(
    session: Session, *, settings: Settings, deployment_id: int, clock: Clock = utcnow
) -> DeploymentPublic:
    """Move a rollout on by what the cluster says: rolling_out → active | failed.

    A `pending` row older than a few seconds was left by a crash between commit and apply;
    it is sent again (applying the same version twice is harmless).
    """
    row = queries.get(session, deployment_id)
    if row.state == S.rolling_out:
        transitions.poll(session, row, settings=settings, clock=clock)
    elif row.state == S.pending and clock() - as_utc(row.started_at) > PENDING_GRACE:
        transitions.launch(session, row, settings=settings, clock=clock)
    return admission.public(session, row)


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
    already in flight (audited as skipped), or `deployment_id` (the deployment the check
    judged) is no longer the active one, so a repeated alert never rolls back twice.
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
    if (flying := policy.in_flight(session, model_id, environment_id)) is not None:
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
    target = session.get(ModelVersion, previous.version_id)
    row, created = admission.request_rollback(
        session,
        model,
        env,
        target,
        actor=AUTO_ROLLBACK,
        reason=policy.clean_text(f"automatic rollback: {reason}"[:2000], "reason"),
        key=f"auto-rollback:{current.id}",
        slack_channel=None,
        clock=clock,
    )
    if not created:
        return admission.public(session, row)
    BAD_RELEASES_STOPPED.labels(env.name, "check_failed").inc()
    return admission.start(session, row, settings=settings, clock=clock, raise_on_failure=False)
