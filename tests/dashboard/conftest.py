"""Dashboard fixtures: a config file the app reads through MODELDECK_CONFIG, a seeded world,
and AppTest helpers (pages are opened the way a user clicks them in the navigation)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from modeldeck.core.config import Settings
from tests.dashboard import world as world_module
from tests.dashboard.world import World

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
AUTH_SECRETS = {
    "auth": {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "test-cookie-secret-0123456789",
        "client_id": "modeldeck",
        "client_secret": "not-a-real-secret",
        "server_metadata_url": "https://idp.example.test/.well-known/openid-configuration",
    }
}


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def dash_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    path, settings = world_module.write_config(tmp_path)
    monkeypatch.setenv("MODELDECK_CONFIG", str(path))
    return settings


@pytest.fixture
def seeded(sqlite_engine: Engine, dash_settings: Settings) -> World:
    return world_module.build(sqlite_engine, dash_settings)


def app(
    *,
    email: str | None = None,
    verified: bool = True,
    login: bool | None = None,
    state: dict[str, Any] | None = None,
) -> AppTest:
    """The dashboard as a browser sees it. `email` signs in through (mocked) OIDC; `login`
    False configures OIDC without signing in; `state` pre-sets session state (the model and
    environment a user picked on an earlier page)."""
    at = AppTest.from_file(str(APP), default_timeout=60)
    if email is not None or login is not None:
        at.secrets = dict(AUTH_SECRETS)
        at.user = (
            {"is_logged_in": True, "email": email, "email_verified": verified}
            if email is not None
            else {"is_logged_in": False}
        )
    for key, value in (state or {}).items():
        at.session_state[key] = value
    return at


def open_page(page: str, **kwargs: Any) -> AppTest:
    """Run the app once (the Overview), then switch to `views/<page>.py` and run it."""
    at = app(**kwargs)
    at.run()
    if page != "overview":
        at.switch_page(f"views/{page}.py")
        at.run()
    no_exceptions(at)
    return at


def button(at: AppTest, label: str) -> Any:
    """The one button (or form submit button) with this label."""
    found = [b for b in at.button if b.label == label]
    assert len(found) == 1, (
        f"{len(found)} buttons labelled {label!r}: {[b.label for b in at.button]}"
    )
    return found[0]


def labels(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def texts(at: AppTest) -> str:
    """Everything the page says in prose (markdown, captions, alerts), for assertions."""
    parts: list[str] = []
    for kind in (
        "markdown",
        "caption",
        "info",
        "warning",
        "error",
        "success",
        "title",
        "subheader",
        "header",
    ):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def metric(at: AppTest, label: str) -> str:
    found = [m.value for m in at.metric if m.label == label]
    assert found, f"no metric {label!r}: {[m.label for m in at.metric]}"
    return str(found[0])


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def dump(at: AppTest) -> str:
    """Every element's full protobuf (text, tables, charts) as one string: what the browser
    receives, for 'never shows X' assertions."""
    out: list[str] = []

    def walk(node: Any) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(out)
