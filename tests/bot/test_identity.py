"""Who gets a role: people of the bot's own workspace (auth.test's team) or of an allowed one;
user-group memberships that could not be refreshed for too long count for nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from sqlalchemy.engine import Engine

from modeldeck.bot.app import create_app
from modeldeck.bot.identity import GroupDirectory, slack_actor
from modeldeck.bot.server import http_app
from modeldeck.core.auth.models import Role
from modeldeck.core.config import Settings
from modeldeck.core.notify.actions import ActionId
from tests.bot.conftest import (
    ALERTS,
    APPROVER_GROUP,
    DEPLOYER,
    GROUPIE,
    NOBODY,
    Bot,
    bot_settings,
    drain,
    fire_alert,
    seed_world,
)
from tests.bot.slack import SIGNING_SECRET, TEAM, SlackWorkspace, button
from tests.bot.test_approvals import posted
from tests.utils.fake_slack import FakeSlack
from tests.utils.servers import serve_asgi

GUEST_TEAM = "T0OTHERORG"  # a Slack Connect partner's workspace
PARTNER_TEAM = "T0PARTNER"


def test_a_guest_from_another_workspace_gets_no_role(bot: Bot) -> None:
    """The guest's member ID is even listed as a deployer: another workspace's user never gets
    a role (IDs are the other organisation's to hand out)."""
    alert_id = fire_alert(bot)
    drain(bot)
    message = posted(bot, ALERTS, f"alert #{alert_id}")
    before = bot.snapshot()
    value = button(message.blocks, ActionId.snooze_1h)["value"]
    guest = bot.slack.click(
        ActionId.snooze_1h,
        value,
        user=DEPLOYER,
        channel=ALERTS,
        message_ts=message.ts,
        team=GUEST_TEAM,
    )
    assert "slack:U0CAROL has no modeldeck role" in guest.text()
    command = bot.slack.command("status", user=DEPLOYER, team=GUEST_TEAM)
    assert "has no modeldeck role" in command.text()
    assert bot.snapshot() == before
    # The same person from the bot's own workspace is a deployer.
    assert "role *deployer*" in bot.slack.command("whoami", user=DEPLOYER, team=TEAM).text()


@contextmanager
def running(settings: Settings, engine: Engine, fake: FakeSlack) -> Iterator[SlackWorkspace]:
    seed_world(engine, settings)
    with serve_asgi(http_app(create_app(settings, engine, http=True))) as url:
        workspace = SlackWorkspace(url, fake)
        try:
            yield workspace
        finally:
            workspace.close()


def test_roles_default_is_for_the_home_workspace_and_allowed_teams_only(
    tmp_path: Path, sqlite_engine: Engine, fake_slack: FakeSlack
) -> None:
    base = bot_settings(tmp_path, fake_slack)
    roles: dict[str, Any] = {**base.roles.model_dump(), "default": "viewer"}
    slack: dict[str, Any] = {
        **base.slack.model_dump(mode="json"),
        "bot_token": fake_slack.token,
        "signing_secret": SIGNING_SECRET,
        "allowed_teams": [PARTNER_TEAM],
    }
    settings = bot_settings(tmp_path, fake_slack, roles=roles, slack=slack)
    with running(settings, sqlite_engine, fake_slack) as slack_ws:
        assert "role *viewer*" in slack_ws.command("whoami", user=NOBODY).text()
        assert "role *none*" in slack_ws.command("whoami", user=NOBODY, team=GUEST_TEAM).text()
        partner = slack_ws.command("whoami", user=DEPLOYER, team=PARTNER_TEAM).text()
        assert "role *deployer*" in partner


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_group_memberships_expire_when_slack_cannot_refresh_them(
    settings: Settings, fake_slack: FakeSlack
) -> None:
    clock = Clock()
    client = WebClient(token=fake_slack.token, base_url=fake_slack.url)
    directory = GroupDirectory(client, settings.roles, ttl=300, max_age=3600, monotonic=clock)
    directory.refresh()
    assert directory.groups_of(GROUPIE) == [APPROVER_GROUP]
    assert slack_actor(settings.roles, directory, GROUPIE).role == Role.approver

    fake_slack.fail_next("usergroups.list", "internal_error", times=100)
    clock.now += 1800
    directory.refresh()  # refused: the last good memberships are still served…
    assert directory.groups_of(GROUPIE) == [APPROVER_GROUP]
    clock.now += 1801
    directory.refresh()  # …until they are older than max_age: then none (fail closed)
    assert directory.groups_of(GROUPIE) == []
    assert slack_actor(settings.roles, directory, GROUPIE).role is None

    fake_slack.reset()  # Slack answers again
    directory.refresh()
    assert directory.groups_of(GROUPIE) == [APPROVER_GROUP]
