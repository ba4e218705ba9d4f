"""Approvals: the two-person rule, approver role, one decision per person.

The last approval needed sends the rollout to its cluster (after the approval commits).
"""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from modeldeck.core.auth import service as auth
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.errors import Conflict, Forbidden
from modeldeck.core.metrics import PROMOTIONS
from modeldeck.core.rollouts import admission, policy, queries, transitions
from modeldeck.core.rollouts.models import (
    Approval,
    Decision,
    Deployment,
    DeploymentKind,
    DeploymentPublic,
    DeploymentState,
)

S = DeploymentState


def approve(
    session: Session,
    *,
    settings: Settings,
    deployment_id: int,
    actor: Actor,
    comment: str = "",
    clock: Clock = utcnow,
) -> DeploymentPublic:
    """Approve a rollout; the last approval needed sends it to the cluster."""
    auth.require(actor, Role.approver, "approve rollouts")
    comment = policy.clean_text(comment, "comment")
    row = queries.get(session, deployment_id)
    with admission.locked(session, row.model_id):
        session.refresh(row)
        _check_decidable(row)
        _refuse_requester(settings, row, actor)
        ctx = transitions.load(session, row)
        _recheck_policy(session, ctx)
        _add_decision(session, settings, row, actor, Decision.approve, comment, clock)
        given = session.exec(
            select(func.count())
            .select_from(Approval)
            .where(Approval.deployment_id == row.id, Approval.decision == Decision.approve)
        ).one()
        needed = ctx.env.approvals_required
        if given >= needed:
            transitions.move(
                session,
                row,
                to=S.pending,
                frm=(S.awaiting_approval,),
                pending_since=clock(),
                message=f"approved by {actor.name}",
            )
        transitions.record(
            session,
            ctx,
            "deployment.approve",
            actor=actor,
            clock=clock,
            comment=comment,
            approvals=given,
            required=needed,
        )
        transitions.notify(session, "deployment_update", row, clock)
        session.commit()
    return admission.start(session, row, settings=settings, clock=clock)


def reject(
    session: Session,
    *,
    settings: Settings,
    deployment_id: int,
    actor: Actor,
    comment: str = "",
    clock: Clock = utcnow,
) -> DeploymentPublic:
    """Reject a rollout awaiting approval (an approver), or withdraw one's own request."""
    row = queries.get(session, deployment_id)
    own = auth.same_person(settings.roles, row.requested_by, actor.name)
    auth.require(actor, Role.deployer if own else Role.approver, "reject rollouts")
    comment = policy.clean_text(comment, "comment")
    with admission.locked(session, row.model_id):
        session.refresh(row)
        _check_decidable(row)
        _add_decision(session, settings, row, actor, Decision.reject, comment, clock)
        ctx = transitions.load(session, row)
        verb = "withdrawn" if own else "rejected"
        transitions.move(
            session,
            row,
            to=S.rejected,
            frm=(S.awaiting_approval,),
            finished_at=clock(),
            message=f"{verb} by {actor.name}" + (f": {comment}" if comment else ""),
        )
        transitions.record(
            session, ctx, "deployment.reject", actor=actor, clock=clock, comment=comment
        )
        transitions.notify(session, "deployment_update", row, clock)
        session.commit()
    PROMOTIONS.labels(ctx.env.name, "rejected").inc()
    return admission.public(session, row)


def _check_decidable(row: Deployment) -> None:
    if row.state != S.awaiting_approval:
        raise Conflict(
            f"deployment #{row.id} is {row.state}; only a rollout awaiting approval "
            "can be approved or rejected"
        )


def _refuse_requester(settings: Settings, row: Deployment, actor: Actor) -> None:
    """The two-person rule, by person: asking through one interface and approving through
    another is still one person."""
    if row.requested_by == actor.name:
        raise Forbidden(
            f"{actor.name} requested deployment #{row.id} and cannot approve it (two-person rule)",
            hint="ask another approver",
        )
    person = auth.person_of(settings.roles, actor.name)
    if person == auth.person_of(settings.roles, row.requested_by):
        raise Forbidden(
            f"{actor.name} is {person}, who requested deployment #{row.id} as "
            f"{row.requested_by}, and cannot approve it (two-person rule)",
            hint="ask another approver",
        )


def _recheck_policy(session: Session, ctx: transitions.Context) -> None:
    """What held when the request was made may not hold now (the version was rolled back in
    the previous environment, a monitor paused promotions): check again before sending."""
    policy.refuse_paused(session, ctx.model, ctx.env)
    if ctx.deployment.kind == DeploymentKind.promote:
        policy.check_previous(session, ctx.env, ctx.model, ctx.version)


def _add_decision(
    session: Session,
    settings: Settings,
    row: Deployment,
    actor: Actor,
    decision: Decision,
    comment: str,
    clock: Clock,
) -> None:
    """One decision per person (any of their identities) on one request."""
    assert row.id is not None
    person = auth.person_of(settings.roles, actor.name)
    earlier = next(
        (
            a
            for a in session.exec(select(Approval).where(Approval.deployment_id == row.id)).all()
            if a.approver == actor.name or auth.person_of(settings.roles, a.approver) == person
        ),
        None,
    )
    if earlier is not None:
        who = actor.name if earlier.approver == actor.name else f"{person} (as {earlier.approver})"
        raise Conflict(f"{who} already decided on deployment #{row.id} ({earlier.decision})")
    session.add(
        Approval(
            deployment_id=row.id,
            approver=actor.name,
            decision=decision,
            comment=comment,
            at=clock(),
        )
    )
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"{actor.name} already decided on deployment #{row.id}") from exc
