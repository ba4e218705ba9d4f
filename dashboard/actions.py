"""Promote, roll back, approve and reject from the Model page, through the rollouts service.

The dashboard decides only what to *show*; the service decides what is *allowed* (role,
approvals, two-person rule, requires_previous, paused promotions) exactly as for Slack, the
CLI and the API. Every change asks for a confirmation first, and carries an idempotency key
minted when the confirmation opens, so a double click cannot start two rollouts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import streamlit as st

from modeldeck.core.auth import service as people
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.errors import ModeldeckError
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import DeploymentPublic, DeploymentState, RollbackPlan
from modeldeck.dashboard import auth, loaders, safe, state

CONFIRM = "_confirm_action"
FLASH = "_flash"


def flash() -> None:
    """Show the outcome of the last action once (it survives the rerun that follows it)."""
    message = st.session_state.pop(FLASH, None)
    if message:
        kind, text = message
        (st.success if kind == "ok" else st.error)(text)


def _done(kind: str, text: str) -> None:
    st.session_state[FLASH] = (kind, safe.redact(text))
    st.session_state.pop(CONFIRM, None)
    loaders.clear()


def run(what: str, call: Callable[..., DeploymentPublic], **kwargs: Any) -> None:
    """Call the service with a fresh session; report the result, the refusal, or (for a
    failure nobody planned for) a generic message whose details go to the log."""
    try:
        with state.session() as session:
            result = call(session, settings=state.settings(), **kwargs)
    except ModeldeckError as exc:
        _done("error", f"{what} refused: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - a database or backend fault: no traceback shown
        _done("error", safe.unexpected(what, exc))
        return
    note = f" — {result.message}" if result.message else ""
    _done("ok", f"{what}: deployment #{result.id} is {result.state}{note}")


def _ask(action: str, summary: str, **params: Any) -> None:
    st.session_state[CONFIRM] = {
        "action": action,
        "summary": summary,
        "params": params,
        "key": f"dashboard-{uuid.uuid4().hex}",
    }


def confirmation(actor: Actor) -> bool:
    """The pending confirmation, if any (drawn instead of the forms). True when shown."""
    pending = st.session_state.get(CONFIRM)
    if not pending:
        return False
    box = st.container(border=True)
    box.warning(pending["summary"], icon=":material/warning:")
    left, right = box.columns(2)
    if left.button(f"Confirm {pending['action']}", type="primary", key="confirm_yes"):
        params = dict(pending["params"])
        call = rollouts.promote if pending["action"] == "promote" else rollouts.rollback
        run(
            pending["action"].capitalize(),
            call,
            actor=actor,
            idempotency_key=pending["key"],
            **params,
        )
        st.rerun()
    if right.button("Cancel", key="confirm_no"):
        st.session_state.pop(CONFIRM, None)
        st.rerun()
    return True


def promote_form(
    actor: Actor,
    model: str,
    versions: list[str],
    envs: list[str],
    running: dict[str, str | None],
    approvals: dict[str, int],
) -> None:
    with st.container(border=True):
        st.markdown("**Promote** a version to an environment")
        c1, c2 = st.columns(2)
        version = c1.selectbox("Version", versions[::-1], key="promote_version")
        env = c2.selectbox("Environment", envs, key="promote_env")
        reason = st.text_input("Reason (shown to approvers)", max_chars=2000, key="promote_reason")
        asked = st.button("Promote…", type="primary", key="promote_ask")
    if asked and version and env:
        needed = approvals.get(env, 0)
        policy = (
            f" It needs {needed} approval(s) from someone other than you "
            "(two-person rule) before it rolls out."
            if needed
            else " It rolls out right away."
        )
        _ask(
            "promote",
            f"Promote **{model} {version}** to **{env}** (running there now: "
            f"{running.get(env) or 'nothing'}).{policy}",
            model=model,
            version=version,
            environment=env,
            reason=reason,
        )
        st.rerun()


def rollback_form(
    actor: Actor,
    model: str,
    versions: list[str],
    running: dict[str, str | None],
    history: list[DeploymentPublic],
) -> None:
    live = [env for env, version in running.items() if version]
    if not live:
        st.caption("Nothing runs yet, so there is nothing to roll back.")
        return
    # No st.form: the versions offered depend on the environment chosen, so it must rerun.
    with st.container(border=True):
        st.markdown("**Roll back** an environment to an earlier version")
        c1, c2 = st.columns(2)
        env = c1.selectbox("Environment", live, key="rollback_env")
        done = {
            d.version
            for d in history
            if d.environment == env and d.activated_at and d.version != running.get(env)
        }
        # Newest registration first ("1.10.0" after "1.9.0"; never sorted as text).
        ran = [v for v in reversed(versions) if v in done]
        target = c2.selectbox(
            "To version", ["previous good version", *ran], key=f"rollback_to_{env}"
        )
        reason = st.text_input("Reason", max_chars=2000, key="rollback_reason")
        asked = st.button("Roll back…", type="primary", key="rollback_ask")
    if asked and env:
        to_version = None if target == "previous good version" else target
        try:  # the service checks it now, as it will on confirm; nothing changes yet
            with state.session() as session:
                plan = rollouts.plan_rollback(
                    session,
                    settings=state.settings(),
                    model=model,
                    environment=env,
                    actor=actor,
                    to_version=to_version,
                )
        except ModeldeckError as exc:
            _done("error", f"Rollback refused: {exc}")
            st.rerun()
            return
        _ask(
            "rollback",
            f"Roll back **{model}** in **{env}** from {plan.from_version} to "
            f"**{plan.to_version}**. {_rollback_policy(plan)}",
            model=model,
            environment=env,
            to_version=plan.to_version,
            reason=reason,
            # refused (nothing changes) if someone else moved this environment meanwhile
            expected_current_id=plan.current_deployment_id,
        )
        st.rerun()


def _rollback_policy(plan: RollbackPlan) -> str:
    if not plan.approvals_required:
        text = "An emergency rollback to the previous good version needs no approval."
    else:
        text = (
            f"Going back past the previous good version needs {plan.approvals_required} "
            "approval(s) from someone other than you."
        )
    if plan.supersedes:
        text += f" It supersedes request #{plan.supersedes}, which awaits approval."
    return text


def approvals(actor: Actor, waiting: list[DeploymentPublic]) -> None:
    """Rollouts awaiting approval: approvers approve or reject; requesters may withdraw."""
    for d in waiting:
        given = sum(1 for a in d.approvals if a.decision == "approve")
        box = st.container(border=True)
        box.markdown(
            f"**#{d.id} {d.version} → {d.environment}** requested by "
            f"`{d.requested_by}` via {d.requested_via} · {given}/"
            f"{d.approvals_required} approvals"
        )
        if d.reason:
            box.caption(f"Reason: {d.reason}")
        # the same person through another interface counts as the requester (roles.people)
        own = people.same_person(state.settings().roles, d.requested_by, actor.name)
        cols = box.columns(3)
        if auth.can(actor, Role.approver) and not own:
            if cols[0].button("Approve", key=f"approve_{d.id}", type="primary"):
                run("Approve", rollouts.approve, actor=actor, deployment_id=d.id)
                st.rerun()
            if cols[1].button("Reject", key=f"reject_{d.id}"):
                run("Reject", rollouts.reject, actor=actor, deployment_id=d.id)
                st.rerun()
        elif own and auth.can(actor, Role.deployer):
            box.caption(
                "You asked for this rollout, so someone else must approve it (two-person rule)."
            )
            if cols[0].button("Withdraw", key=f"reject_{d.id}"):
                run("Withdraw", rollouts.reject, actor=actor, deployment_id=d.id)
                st.rerun()


def panel(
    actor: Actor,
    model: str,
    versions: list[str],
    envs: list[str],
    running: dict[str, str | None],
    required: dict[str, int],
    history: list[DeploymentPublic],
) -> None:
    """The Model page's actions, or why there are none."""
    waiting = [d for d in history if d.state == DeploymentState.awaiting_approval]
    if not auth.can(actor, Role.deployer):
        st.caption(
            ":material/lock: Promote, roll back and approve need a deployer or "
            "approver role: "
            + (
                "sign in (sidebar)."
                if auth.login_configured()
                else "the dashboard is read-only until sign-in is configured. Use Slack or "
                "the CLI meanwhile."
            )
        )
        if waiting:
            st.markdown("**Awaiting approval**")
            for d in waiting:
                st.markdown(f"- #{d.id} {d.version} → {d.environment} by `{d.requested_by}`")
        return
    if waiting:
        st.markdown("**Awaiting approval**")
        approvals(actor, waiting)
    pending = st.session_state.get(CONFIRM)
    if pending and pending["params"].get("model") != model:
        st.session_state.pop(CONFIRM)  # asked on another model's page: never confirm blind
    if confirmation(actor):
        return
    left, right = st.columns(2)
    with left:
        promote_form(actor, model, versions, envs, running, required)
    with right:
        rollback_form(actor, model, versions, running, history)
