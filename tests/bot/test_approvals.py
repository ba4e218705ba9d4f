"""Approval requests: posted by the outbox, decided by button, redrawn in place."""

from __future__ import annotations

import copy
import threading

from sqlmodel import col, select

from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.notify.actions import ActionId
from modeldeck.core.rollouts.models import Approval, Deployment, DeploymentState
from tests.bot.conftest import (
    ADMIN,
    APPROVALS,
    APPROVER,
    APPROVER2,
    DEPLOYER,
    GROUPIE,
    VIEWER,
    Bot,
    drain,
)
from tests.bot.slack import Sent, button, has_button, message_text
from tests.utils.fake_slack import Posted
from tests.utils.servers import wait_until


def request_approval(bot: Bot, requester: str = DEPLOYER) -> tuple[int, Posted]:
    """Someone asks for fraud-detector 1.2.0 in production; the outbox posts the request."""
    sent = bot.slack.command(
        "promote fraud-detector 1.2.0 to prod because recall +4%", user=requester
    )
    assert "Approval needed" in sent.text()
    with bot.session() as session:
        dep = session.exec(select(Deployment).order_by(col(Deployment.id).desc())).first()
    assert dep is not None and dep.id is not None
    assert dep.state == DeploymentState.awaiting_approval
    drain(bot)
    return dep.id, posted(bot, APPROVALS, f"deployment #{dep.id}")


def posted(bot: Bot, channel: str, marker: str) -> Posted:
    """A copy of the message as first posted: what a person still sees on a slow phone."""

    def find() -> Posted | None:
        return next(
            (m for m in bot.fake.messages if m.channel == channel and marker in text_of(m)), None
        )

    found: Posted = wait_until(find, what=f"a message with {marker!r} in {channel}")
    return copy.deepcopy(found)


def text_of(message: Posted) -> str:
    return message_text({"text": message.text, "blocks": message.blocks})


def click(bot: Bot, message: Posted, action: ActionId, user: str) -> Sent:
    value = button(message.blocks, action)["value"]
    return bot.slack.click(action, value, user=user, channel=message.channel, message_ts=message.ts)


def approvals(bot: Bot, deployment_id: int) -> list[Approval]:
    with bot.session() as session:
        return list(
            session.exec(select(Approval).where(Approval.deployment_id == deployment_id)).all()
        )


def state(bot: Bot, deployment_id: int) -> DeploymentState:
    with bot.session() as session:
        row = session.get(Deployment, deployment_id)
        assert row is not None
        return row.state


def test_the_request_shows_who_what_why_and_the_buttons(bot: Bot) -> None:
    dep_id, message = request_approval(bot)
    text = text_of(message)
    assert "Approval needed: Promote fraud-detector 1.2.0 → production" in text
    assert "1.2.0 (from 1.1.0)" in text and "<@U0CAROL> via slack" in text
    assert ">recall +4%" in text and "*Approvals* 0 of 1" in text
    assert "cannot approve their own request" in text
    approve = button(message.blocks, ActionId.approve)
    reject = button(message.blocks, ActionId.reject)
    assert approve["value"] == reject["value"] == str(dep_id)
    assert approve["style"] == "primary" and reject["style"] == "danger"
    assert reject["confirm"]["confirm"]["text"] == "Reject"  # a confirm dialog first
    assert (
        button(message.blocks, ActionId.open_dashboard)["url"]
        == "https://dash.example.org/model?model=fraud-detector&env=production"
    )


def test_approve_rechecks_role_and_the_two_person_rule_then_updates_in_place(bot: Bot) -> None:
    dep_id, message = request_approval(bot, requester=APPROVER2)
    before = bot.snapshot()

    own = click(bot, message, ActionId.approve, APPROVER2)
    assert "cannot approve it (two-person rule)" in own.text()
    assert own.reply().args["response_type"] == "ephemeral"
    viewer = click(bot, message, ActionId.approve, VIEWER)
    assert "approve rollouts needs the approver role; slack:U0DAVE is viewer" in viewer.text()
    assert bot.snapshot() == before
    assert bot.fake.message(message.channel, message.ts).updates == 0

    bob = click(bot, message, ActionId.approve, APPROVER)
    assert bob.status == 200 and bob.elapsed < 1.0
    wait_until(
        lambda: bot.fake.message(message.channel, message.ts).updates == 1,
        what="the request redrawn with chat.update",
    )
    redrawn = bot.fake.message(message.channel, message.ts)
    text = text_of(redrawn)
    assert ":white_check_mark: <@U0BOB> approved" in text and "active" in text
    assert not has_button(redrawn.blocks, ActionId.approve)
    assert state(bot, dep_id) == DeploymentState.active
    assert [a.approver for a in approvals(bot, dep_id)] == ["slack:U0BOB"]
    update = bot.fake.calls_to("chat.update", ok_only=True)[-1]
    assert (update.args["channel"], update.args["ts"]) == (APPROVALS, message.ts)

    # A stale button: another approver clicks the old message.
    stale = click(bot, message, ActionId.approve, ADMIN)
    assert "This request was already decided (<@U0BOB> approved)" in stale.text()
    assert "is active now. Nothing changed." in stale.text()
    assert [a.approver for a in approvals(bot, dep_id)] == ["slack:U0BOB"]
    events = wait_until(
        lambda: len(bot.audit("slack.action")) >= 4 and bot.audit("slack.action"),
        what="4 audited clicks",
    )
    assert [(e.actor, e.after["outcome"]) for e in events] == [
        ("slack:U0FRANK", "refused"),
        ("slack:U0DAVE", "refused"),
        ("slack:U0BOB", "ok"),
        ("slack:U0ALICE", "refused"),
    ]
    assert all(e.after["action_id"] == ActionId.approve for e in events)


def test_a_double_click_on_approve_changes_the_state_once(bot: Bot) -> None:
    dep_id, message = request_approval(bot)
    answers: list[Sent] = []

    def press(user: str) -> None:
        answers.append(click(bot, message, ActionId.approve, user))

    threads = [
        threading.Thread(target=press, args=(u,))
        for u in (APPROVER, APPROVER, APPROVER2, APPROVER2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status for a in answers] == [200] * 4
    # The click that won redraws the message; the three others are told why nothing happened.
    wait_until(lambda: sum(1 for a in answers if a.replies()) >= 3, what="three answers")
    wait_until(lambda: state(bot, dep_id) == DeploymentState.active, what="active")
    texts = [a.text() for a in answers if a.replies()]
    assert len(texts) == 3 and all("already decided" in t for t in texts), texts
    assert len(approvals(bot, dep_id)) == 1
    with bot.session() as session:
        decided = session.exec(
            select(AuditEvent).where(AuditEvent.action == "deployment.approve")
        ).all()
    assert len([e for e in decided if e.target.endswith(f"deployment:{dep_id}")]) == 1


def test_reject_updates_the_message_and_ends_the_request(bot: Bot) -> None:
    dep_id, message = request_approval(bot)
    click(bot, message, ActionId.reject, APPROVER)
    wait_until(
        lambda: bot.fake.message(message.channel, message.ts).updates == 1,
        what="the request redrawn",
    )
    text = text_of(bot.fake.message(message.channel, message.ts))
    assert ":no_entry: <@U0BOB> rejected" in text and "rejected" in text
    assert state(bot, dep_id) == DeploymentState.rejected
    late = click(bot, message, ActionId.approve, APPROVER2)
    assert "already decided (<@U0BOB> rejected)" in late.text()


def test_an_approver_by_user_group(bot: Bot) -> None:
    dep_id, message = request_approval(bot)
    click(bot, message, ActionId.approve, GROUPIE)
    wait_until(lambda: state(bot, dep_id) == DeploymentState.active, what="approved by group")
    assert [a.approver for a in approvals(bot, dep_id)] == ["slack:U0GRACE"]
    assert bot.fake.calls_to("usergroups.list", ok_only=True)  # membership came from Slack


def test_a_damaged_or_forged_button_value_changes_nothing(bot: Bot) -> None:
    dep_id, message = request_approval(bot)
    before = bot.snapshot()
    for value in (f"{dep_id}; DROP TABLE deployment", "", "99999999999999999999"):
        sent = bot.slack.click(
            ActionId.approve, value, user=APPROVER, channel=APPROVALS, message_ts=message.ts
        )
        assert "this button is damaged" in sent.text()
    missing = bot.slack.click(
        ActionId.approve, "424242", user=APPROVER, channel=APPROVALS, message_ts=message.ts
    )
    assert "no deployment with id 424242" in missing.text()
    assert bot.snapshot() == before
