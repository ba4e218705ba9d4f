"""Slack as the bot sees it: signed slash commands and block_actions sent over real HTTP.

Requests are signed like Slack signs them (v0 HMAC-SHA256 of "v0:{timestamp}:{body}" with the
app's signing secret), and their response_url points at the fake Slack, so what the bot
answers after the ack is recorded there.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

from tests.utils.fake_slack import FakeSlack, SlackCall
from tests.utils.servers import wait_until

SIGNING_SECRET = "4f1c0ffee7e57b0t5ecre7f0rmodeldeck"
TEAM = "T0MODELDECK"


def signed_headers(
    body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": str(signature),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def command_body(
    text: str,
    *,
    user: str,
    channel: str,
    response_url: str,
    trigger_id: str,
    team: str = TEAM,
) -> str:
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": team,
            "team_domain": "modeldeck",
            "channel_id": channel,
            "channel_name": channel.lower(),
            "user_id": user,
            "user_name": user.lower(),
            "command": "/modeldeck",
            "text": text,
            "api_app_id": "A0MODELDECK",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )


def action_body(
    action_id: str,
    value: str,
    *,
    user: str,
    channel: str,
    message_ts: str,
    response_url: str,
    trigger_id: str,
    ephemeral: bool = False,
    team: str = TEAM,
    url: str | None = None,
) -> str:
    """A click by `user` of workspace `team` (a Slack Connect guest: another team than the
    bot's, in the bot's workspace `TEAM`)."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "api_app_id": "A0MODELDECK",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": ephemeral,
        },
        "trigger_id": trigger_id,
        "team": {"id": TEAM, "domain": "modeldeck"},
        "channel": {"id": channel, "name": channel.lower()},
        "message": {"type": "message", "ts": message_ts, "text": "", "user": "U0MODELBOT"},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "b",
                "type": "button",
                "value": value,
                "text": {"type": "plain_text", "text": action_id},
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    if url is not None:  # a link button
        payload["actions"][0]["url"] = url
    return urlencode({"payload": json.dumps(payload)})


@dataclass
class Sent:
    """One request to the bot: its HTTP answer (the ack) and where its replies land."""

    status: int
    body: str
    elapsed: float
    key: str
    fake: FakeSlack
    trigger_id: str = ""  # the audit event's request_id

    def replies(self) -> list[SlackCall]:
        return self.fake.responses(self.key)

    def reply(self, count: int = 1, timeout: float = 10.0) -> SlackCall:
        """The `count`-th answer posted to this request's response_url (waits for it)."""
        found = wait_until(
            lambda: len(self.replies()) >= count and self.replies(),
            timeout=timeout,
            what=f"{count} response_url post(s) for {self.key}",
        )
        return list(found)[count - 1]

    def text(self, count: int = 1) -> str:
        """Everything a person reads in the `count`-th reply: fallback text and block texts."""
        return message_text(self.reply(count).args)


def message_text(message: dict[str, Any]) -> str:
    parts = [str(message.get("text") or "")]
    parts += [json.dumps(b, ensure_ascii=False) for b in message.get("blocks") or []]
    return "\n".join(parts)


class SlackWorkspace:
    """Sends signed requests to the bot as Slack would, on behalf of any user."""

    def __init__(self, bot_url: str, fake: FakeSlack, *, secret: str = SIGNING_SECRET) -> None:
        self.url = bot_url.rstrip("/") + "/slack/events"
        self.fake = fake
        self.secret = secret
        self.http = httpx.Client(timeout=10)

    def close(self) -> None:
        self.http.close()

    def post(
        self,
        body: str,
        *,
        headers: dict[str, str] | None = None,
        key: str = "",
        trigger_id: str = "",
    ) -> Sent:
        start = time.perf_counter()
        response = self.http.post(
            self.url, content=body, headers=headers or signed_headers(body, secret=self.secret)
        )
        return Sent(
            response.status_code,
            response.text,
            time.perf_counter() - start,
            key,
            self.fake,
            trigger_id,
        )

    def command(
        self,
        text: str,
        *,
        user: str,
        channel: str = "C0OPS",
        trigger_id: str | None = None,
        team: str = TEAM,
    ) -> Sent:
        key = f"cmd-{uuid.uuid4().hex[:10]}"
        trigger = trigger_id or f"trig.{uuid.uuid4().hex}"
        body = command_body(
            text,
            user=user,
            channel=channel,
            response_url=self.fake.response_url(key),
            trigger_id=trigger,
            team=team,
        )
        return self.post(body, key=key, trigger_id=trigger)

    def click(
        self,
        action_id: str,
        value: str,
        *,
        user: str,
        channel: str,
        message_ts: str,
        ephemeral: bool = False,
        team: str = TEAM,
        url: str | None = None,
    ) -> Sent:
        key = f"act-{uuid.uuid4().hex[:10]}"
        trigger = f"trig.{uuid.uuid4().hex}"
        body = action_body(
            action_id,
            value,
            user=user,
            channel=channel,
            message_ts=message_ts,
            response_url=self.fake.response_url(key),
            trigger_id=trigger,
            ephemeral=ephemeral,
            team=team,
            url=url,
        )
        return self.post(body, key=key, trigger_id=trigger)


def button(message: dict[str, Any] | list[Any] | None, action_id: str) -> dict[str, Any]:
    """The button with `action_id` in a message's blocks (fails clearly when absent)."""
    blocks = message.get("blocks") if isinstance(message, dict) else message
    for block in blocks or []:
        for element in [*(block.get("elements") or []), block.get("accessory") or {}]:
            if element.get("action_id") == action_id:
                return dict(element)
    raise AssertionError(f"no button {action_id!r} in {json.dumps(blocks)[:500]}")


def has_button(message: dict[str, Any] | list[Any] | None, action_id: str) -> bool:
    try:
        button(message, action_id)
    except AssertionError:
        return False
    return True
