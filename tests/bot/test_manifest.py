"""deploy/slack/manifest.yaml creates an app the bot can actually work with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modeldeck.bot.ids import COMMAND

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "slack" / "manifest.yaml"
# Web API methods the bot and the outbox call, and the bot scope each needs.
NEEDED = {
    "slash command": "commands",
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "usergroups.list": "usergroups:read",
}


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    return data


def test_the_slash_command_and_interactivity_are_declared() -> None:
    data = manifest()
    assert [c["command"] for c in data["features"]["slash_commands"]] == [COMMAND]
    assert data["features"]["slash_commands"][0]["should_escape"] is False
    assert data["settings"]["interactivity"]["is_enabled"] is True
    assert data["settings"]["socket_mode_enabled"] is True  # the default transport
    assert data["features"]["bot_user"]["display_name"] == "modeldeck"


def test_every_call_the_bot_makes_has_its_scope() -> None:
    scopes = set(manifest()["oauth_config"]["scopes"]["bot"])
    missing = {call: scope for call, scope in NEEDED.items() if scope not in scopes}
    assert missing == {}
    assert "user" not in manifest()["oauth_config"]["scopes"]  # a bot, never a user token


def test_http_mode_urls_point_at_the_events_path() -> None:
    text = MANIFEST.read_text(encoding="utf-8")
    urls = [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.strip().startswith(("# url:", "# request_url:"))
    ]
    assert len(urls) == 2 and all(u.endswith("/slack/events") for u in urls)
