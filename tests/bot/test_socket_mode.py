"""Socket Mode: the bot opens a websocket (apps.connections.open) and acks envelopes on it.

Slack's side is a real websocket server on 127.0.0.1 speaking the Socket Mode protocol
(hello, envelopes, acks by envelope_id); slack_sdk's built-in client connects to it exactly as
to wss://wss-primary.slack.com.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from websockets.sync.server import ServerConnection, serve

from modeldeck.bot.app import create_app
from modeldeck.bot.server import socket_mode_handler
from modeldeck.core.config import Settings
from modeldeck.core.errors import ConfigError
from modeldeck.core.notify.actions import ActionId
from modeldeck.core.rollouts.models import Deployment
from tests.bot.conftest import DEPLOYER, OPS, VIEWER, bot_settings, seed_world
from tests.bot.slack import action_body, command_body, message_text
from tests.utils.fake_slack import FakeSlack
from tests.utils.servers import free_port, wait_until


class SocketModeServer:
    """Slack's end of a Socket Mode connection: says hello, sends envelopes, records acks."""

    def __init__(self) -> None:
        self.port = free_port()
        self.acks: list[dict[str, Any]] = []
        self.connections: list[ServerConnection] = []
        self.server = serve(self._session, "127.0.0.1", self.port)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket=test"

    def _session(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        ws.send(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "connection_info": {"app_id": "A0MODELDECK"},
                    "debug_info": {"host": "fake", "approximate_connection_time": 3600},
                }
            )
        )
        for raw in ws:
            self.acks.append(json.loads(raw))

    def send(self, kind: str, payload: dict[str, Any]) -> str:
        envelope_id = uuid.uuid4().hex
        wait_until(lambda: self.connections, what="the bot to connect")
        self.connections[-1].send(
            json.dumps(
                {
                    "envelope_id": envelope_id,
                    "type": kind,
                    "payload": payload,
                    "accepts_response_payload": kind == "slash_commands",
                }
            )
        )
        return envelope_id

    def ack_for(self, envelope_id: str) -> dict[str, Any]:
        found: dict[str, Any] = wait_until(
            lambda: next((a for a in self.acks if a.get("envelope_id") == envelope_id), None),
            what=f"the ack of {envelope_id}",
        )
        return found

    def __enter__(self) -> SocketModeServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture
def socket_settings(tmp_path: Path, fake_slack: FakeSlack) -> Settings:
    settings = bot_settings(tmp_path, fake_slack)
    slack = settings.slack.model_copy(
        update={
            "mode": "socket",
            "signing_secret": None,
            "app_token": SecretStr(fake_slack.app_token),
        }
    )
    return settings.model_copy(update={"slack": slack})


@pytest.fixture
def socket_bot(
    socket_settings: Settings, sqlite_engine: Engine, fake_slack: FakeSlack
) -> Iterator[SocketModeServer]:
    seed_world(sqlite_engine, socket_settings)
    with SocketModeServer() as slack_side:
        fake_slack.socket_url = slack_side.url
        handler = socket_mode_handler(
            create_app(socket_settings, sqlite_engine), socket_settings.slack
        )
        handler.connect()
        try:
            yield slack_side
        finally:
            handler.close()


def form(body: str) -> dict[str, Any]:
    data = dict(parse_qsl(body))
    return json.loads(data["payload"]) if "payload" in data else data


def test_slash_command_over_socket_mode(
    socket_bot: SocketModeServer, fake_slack: FakeSlack
) -> None:
    payload = form(
        command_body(
            "status fraud-detector",
            user=VIEWER,
            channel=OPS,
            response_url=fake_slack.response_url("sock-1"),
            trigger_id="trig.sock-1",
        )
    )
    envelope = socket_bot.send("slash_commands", payload)
    assert socket_bot.ack_for(envelope)["envelope_id"] == envelope
    reply = wait_until(lambda: fake_slack.responses("sock-1"), what="the reply")[0]
    assert "*production* `1.1.0`" in message_text(reply.args)
    assert (
        fake_slack.calls_to("apps.connections.open", ok_only=True)[0].token == fake_slack.app_token
    )


def test_buttons_over_socket_mode(
    socket_bot: SocketModeServer, fake_slack: FakeSlack, sqlite_engine: Engine
) -> None:
    promote = form(
        command_body(
            "rollback fraud-detector in prod",
            user=DEPLOYER,
            channel=OPS,
            response_url=fake_slack.response_url("sock-2"),
            trigger_id="trig.sock-2",
        )
    )
    socket_bot.ack_for(socket_bot.send("slash_commands", promote))
    ask = wait_until(lambda: fake_slack.responses("sock-2"), what="the confirmation")[0]
    value = next(
        e["value"]
        for b in ask.args["blocks"]
        for e in b.get("elements", [])
        if e.get("action_id") == ActionId.confirm_rollback
    )
    confirm = form(
        action_body(
            ActionId.confirm_rollback,
            value,
            user=DEPLOYER,
            channel=OPS,
            message_ts="1700000000.000009",
            response_url=fake_slack.response_url("sock-3"),
            trigger_id="trig.sock-3",
            ephemeral=True,
        )
    )
    socket_bot.ack_for(socket_bot.send("interactive", confirm))
    wait_until(lambda: len(fake_slack.responses("sock-3")) >= 2, what="the rollback answer")
    with sqlite_engine.connect() as conn:
        kinds = [r.kind for r in conn.execute(Deployment.__table__.select()).all()]
    assert kinds.count("rollback") == 1


def test_socket_mode_without_an_app_token_says_what_to_set(
    socket_settings: Settings, sqlite_engine: Engine
) -> None:
    no_token = socket_settings.slack.model_copy(update={"app_token": None})
    app = create_app(socket_settings, sqlite_engine)
    with pytest.raises(ConfigError, match="app_token"):
        socket_mode_handler(app, no_token)
