"""Structured logs: one JSON object per line, the request id on every line, no secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from modeldeck.core import logs
from modeldeck.core.api.app import create_app
from tests.conftest import make_settings


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    logs.configure("json", "INFO", stream=out)
    yield out
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "modeldeck"]:
        root.removeHandler(handler)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_our_lines_and_library_lines_share_one_json_shape(stream: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(request_id="req-7")
    try:
        logs.get("modeldeck.test").info("model.registered", model="fraud")
        logging.getLogger("uvicorn.error").warning("a library speaks")
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    ours, theirs = lines(stream)
    assert ours["event"] == "model.registered" and ours["model"] == "fraud"
    assert ours["request_id"] == "req-7" and ours["level"] == "info"
    assert ours["logger"] == "modeldeck.test" and ours["timestamp"].endswith("Z")
    assert theirs["event"] == "a library speaks" and theirs["request_id"] == "req-7"
    assert theirs["level"] == "warning" and theirs["logger"] == "uvicorn.error"


def test_secret_looking_keys_are_masked(stream: io.StringIO) -> None:
    logs.get("modeldeck.test").info(
        "slack.connect", bot_token="xoxb-123", signing_secret="s", password="p", channel="C1"
    )
    (line,) = lines(stream)
    assert line["bot_token"] == line["signing_secret"] == line["password"] == "***"
    assert line["channel"] == "C1"
    assert "xoxb-123" not in stream.getvalue()


def test_level_filters_and_alembic_stays_quiet(stream: io.StringIO) -> None:
    logs.configure("json", "WARNING", stream=stream)
    logs.get("modeldeck.test").info("hidden")
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    logs.get("modeldeck.test").warning("shown")
    assert [line["event"] for line in lines(stream)] == ["shown"]


def test_every_api_request_is_logged_with_its_request_id(
    stream: io.StringIO, sqlite_engine: Engine, tmp_path: Path
) -> None:
    app = create_app(make_settings(tmp_path), engine=sqlite_engine)
    with TestClient(app) as client:
        response = client.get(
            "/api/v1/models",
            headers={"X-Request-ID": "abc-123", "Authorization": "Bearer mdk_secret"},
        )
        generated = client.get("/api/v1/whoami")
        client.get("/healthz")  # probes are not logged
    assert response.headers["x-request-id"] == "abc-123"
    new_id = generated.headers["x-request-id"]
    assert len(new_id) == 16
    requests = [line for line in lines(stream) if line["event"] == "http.request"]
    assert [(r["request_id"], r["path"], r["status"]) for r in requests] == [
        ("abc-123", "/api/v1/models", 401),
        (new_id, "/api/v1/whoami", 401),
    ]
    assert "mdk_secret" not in stream.getvalue()


def test_a_hostile_request_id_is_replaced(sqlite_engine: Engine, tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), engine=sqlite_engine)
    with TestClient(app) as client:
        response = client.get("/healthz", headers={"X-Request-ID": "x" * 100})
        assert response.headers["x-request-id"] == "x" * 64  # bounded
        tab = client.get("/healthz", headers={"X-Request-ID": "a\tb"})
        assert tab.headers["x-request-id"] != "a\tb" and len(tab.headers["x-request-id"]) == 16
