"""The typed client's error mapping (the HTTP round trips are in tests/e2e/test_api_http.py)."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from modeldeck.core import client
from modeldeck.core.api.routes import API_PREFIX
from modeldeck.core.errors import (
    BackendUnavailable,
    Conflict,
    Forbidden,
    InvalidInput,
    ModeldeckError,
    NotFound,
    Unauthorized,
)


def test_prefix_matches_the_server() -> None:
    assert client.API_PREFIX == API_PREFIX


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (413, InvalidInput),
        (422, InvalidInput),
        (503, BackendUnavailable),
        (500, ModeldeckError),
        (418, ModeldeckError),
    ],
)
def test_error_answers_map_to_core_exceptions(status: int, kind: type[ModeldeckError]) -> None:
    response = httpx.Response(status, json={"error": "x", "detail": "it broke", "hint": "try"})
    error = client.error_from_response(response)
    assert type(error) is kind
    assert (error.message, error.hint, error.status_code) == ("it broke", "try", status)


def test_answers_that_are_not_ours_still_explain_themselves() -> None:
    proxy = client.error_from_response(httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert isinstance(proxy, BackendUnavailable) and proxy.message == "HTTP 502 Bad Gateway"
    plain = client.error_from_response(
        httpx.Response(
            422,
            json={
                "detail": [{"loc": ["body", "name"], "msg": "field required", "type": "missing"}]
            },
        )
    )
    assert isinstance(plain, InvalidInput) and plain.message == "body.name: field required"


def test_the_client_does_not_import_the_server() -> None:
    """The bot and dashboard import the client when core runs elsewhere: it must not pull in
    FastAPI's routers (and with them evidently)."""
    code = (
        "import sys, modeldeck.core.client; "
        "print(sorted(m for m in sys.modules if m.startswith(('fastapi', 'evidently', "
        "'modeldeck.core.api'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"
