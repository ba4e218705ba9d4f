from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.rollouts.models import Deployment
from tests.conftest import make_settings
from tests.core.alerts.world import live_deployment
from tests.utils.fake_slack import FakeSlack
from tests.utils.servers import free_port


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def settings(tmp_path: Path, slack: FakeSlack) -> Settings:
    """Slack configured against the fake Web API; small backoff numbers to read easily."""
    return make_settings(
        tmp_path,
        slack={
            "bot_token": slack.token,
            "api_url": slack.url,
            "alert_channel": "C0ALERTS",
            "approval_channel": "C0APPROVE",
        },
        notify={"backoff_seconds": 5, "max_backoff_seconds": 60, "max_attempts": 5},
    )


@pytest.fixture
def dep(session: Session, clock: FixedClock) -> Deployment:
    return live_deployment(session, at=clock() - timedelta(days=2))


class Receiver:
    """A webhook receiver on 127.0.0.1 that records requests and answers a chosen status."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.headers: dict[str, str] = {}
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"body": json.loads(body), "headers": dict(self.headers)})
                self.send_response(receiver.status)
                for key, value in receiver.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
