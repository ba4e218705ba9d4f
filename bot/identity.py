"""Who is clicking: a Slack user (and their user groups) mapped to a modeldeck Actor.

The Actor's name is `slack:<user id>`, never the display name: display names change and can
be copied, and the two-person rule compares names. Messages show people as mentions, which
Slack renders with the current display name.

Only people of the bot's own workspace (auth.test's team) or of `slack.allowed_teams` get a
role: a Slack Connect guest from another organisation gets none, not even `roles.default`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from slack_bolt import BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from modeldeck.core import logs
from modeldeck.core.auth.models import Actor
from modeldeck.core.auth.service import role_for
from modeldeck.core.config import RolesConfig

log = logs.get("modeldeck.bot.identity")
GROUPS_TTL_SECONDS = 300.0
GROUPS_MAX_AGE_SECONDS = 3600.0


class GroupDirectory:
    """Which Slack user groups each user is in (usergroups.list), refreshed in the background.

    Looked up on every request, so it never calls Slack on the request path once loaded: a
    stale cache is served while a background thread refreshes it (the ack stays fast).
    Without `slack_groups` in the role mapping it never calls Slack at all.

    Fails closed: memberships last loaded more than `max_age` seconds ago (Slack refused or
    was unreachable since) count for nothing, so a person removed from a group while the
    refresh failed does not keep the group's role.
    """

    def __init__(
        self,
        client: WebClient | None,
        roles: RolesConfig,
        *,
        ttl: float = GROUPS_TTL_SECONDS,
        max_age: float = GROUPS_MAX_AGE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.wanted = set(roles.slack_groups)
        self.ttl = ttl
        self.max_age = max_age
        self.monotonic = monotonic
        self._members: dict[str, frozenset[str]] = {}
        self._loaded_at: float | None = None  # last attempt
        self._fresh_at: float | None = None  # last successful load
        self._lock = threading.Lock()
        self._refreshing = False

    def groups_of(self, user_id: str) -> list[str]:
        if not self.wanted or self.client is None:
            return []
        if self._loaded_at is None:
            self.refresh()  # first use only; `modeldeck bot` primes it at start-up
        elif self.monotonic() - self._loaded_at > self.ttl:
            self._refresh_in_background()
        if self._fresh_at is None or self.monotonic() - self._fresh_at > self.max_age:
            return []  # too old to trust (see the class docstring)
        return sorted(self._members.get(user_id, frozenset()))

    def refresh(self) -> None:
        """Load memberships of the groups named in the role mapping (usergroups:read)."""
        if not self.wanted or self.client is None:
            return
        members: dict[str, set[str]] = {}
        try:
            response = self.client.usergroups_list(include_users=True)
        except SlackApiError as exc:
            log.warning("slack.usergroups_unavailable", error=exc.response.get("error"))
            self._loaded_at = self.monotonic()  # do not hammer Slack; try again after the TTL
            return
        except OSError as exc:
            log.warning("slack.usergroups_unreachable", error=str(exc))
            self._loaded_at = self.monotonic()
            return
        for group in response.get("usergroups") or []:
            if group.get("id") in self.wanted:
                for user in group.get("users") or []:
                    members.setdefault(user, set()).add(group["id"])
        self._members = {user: frozenset(groups) for user, groups in members.items()}
        self._loaded_at = self._fresh_at = self.monotonic()

    def _refresh_in_background(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True

        def run() -> None:
            try:
                self.refresh()
            finally:
                self._refreshing = False

        threading.Thread(target=run, name="modeldeck-usergroups", daemon=True).start()


def user_team(body: dict[str, Any]) -> str | None:
    """The workspace the acting person belongs to (a click: user.team_id; a command: team_id)."""
    user = body.get("user")
    if isinstance(user, dict) and user.get("team_id"):
        return str(user["team_id"])
    team = body.get("team")
    found = (
        body.get("user_team_id")
        or body.get("team_id")
        or (team.get("id") if isinstance(team, dict) else team)
    )
    return str(found) if found else None


def is_home_team(team: str | None, bot_team: str | None, allowed: list[str]) -> bool:
    """The person's workspace is the bot's own or an allowed one (unknown: no)."""
    return team is not None and (team == bot_team or team in allowed)


def request_actor(
    roles: RolesConfig,
    directory: GroupDirectory,
    allowed_teams: list[str],
    body: dict[str, Any],
    context: BoltContext,
) -> Actor:
    """The Actor behind one command or click. The bot's own workspace comes from auth.test
    (bolt's authorization, done once at start); the request id is Slack's trigger id."""
    user = context.user_id or ""
    request_id = body.get("trigger_id") or body.get("action_ts")
    bot_team = context.authorize_result.team_id if context.authorize_result else None
    team = user_team(body)
    home = is_home_team(team, bot_team, allowed_teams)
    if not home:
        log.info("slack.foreign_team", user=user, team=team, bot_team=bot_team)
    return slack_actor(
        roles,
        directory,
        user,
        request_id=str(request_id) if request_id else None,
        home_team=home,
    )


def slack_actor(
    roles: RolesConfig,
    directory: GroupDirectory,
    user_id: str,
    request_id: str | None = None,
    *,
    home_team: bool = True,
) -> Actor:
    """The Actor for a Slack user: highest role of the user id and their groups, else default;
    no role at all for someone from another workspace (`home_team` False)."""
    groups = directory.groups_of(user_id) if home_team else []
    return Actor(
        name=f"slack:{user_id}",
        role=role_for(roles, user=user_id, groups=groups) if home_team else None,
        via="slack",
        request_id=request_id[:64] if request_id else None,
    )
