"""Who may make the server work for everyone (refresh the shared cache, build a report), what
"Refresh data" clears, settings as part of the loaders' cache keys, and report links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import ModelCreate, ModelVersionCreate
from tests.dashboard import world
from tests.dashboard.conftest import button, dump, labels, metric, open_page, texts
from tests.dashboard.world import World

FRAUD_PROD = {"model": "fraud-detector", "env": "production"}
CALLS: list[int] = []


@st.cache_data
def someone_elses_cache(x: int) -> int:
    """Another st.cache_data user in the same process (a plugin, a page of another app)."""
    CALLS.append(x)
    return x


@pytest.mark.parametrize(
    ("who", "shown"),
    [
        ({}, True),  # no sign-in configured: the operator chose an open dashboard
        ({"login": False}, False),  # sign-in configured, not signed in
        ({"email": "stranger@elsewhere.io"}, False),  # signed in, no role
        ({"email": "viewer@acme.io"}, True),
    ],
)
def test_who_may_refresh_and_build_reports(
    seeded: World, who: dict[str, object], shown: bool
) -> None:
    at = open_page("drift", state=FRAUD_PROD, **who)
    assert ("Refresh data" in labels(at)) is shown
    assert ("Show report" in labels(at)) is shown
    if not shown:
        assert "Sign in (sidebar) to open the evidently report" in texts(at)


def test_refresh_clears_only_the_dashboards_loaders(seeded: World, sqlite_engine: Engine) -> None:
    CALLS.clear()
    someone_elses_cache(1)
    at = open_page("overview")
    assert metric(at, "Models") == "3"
    with Session(sqlite_engine) as s:
        registry.register_version(
            s,
            model_name="ranker-v2",
            actor=Actor(name="cli:carol", role=Role.deployer, via="cli"),
            data=ModelVersionCreate(
                version="0.1.0", image="ghcr.io/acme/r:0.1.0", artifact_uri="s3://m/r/0.1.0"
            ),
            create_model_if_missing=ModelCreate(name="ranker-v2", team="search"),
        )
    at.run()
    assert metric(at, "Models") == "3"  # cached (TTL)
    button(at, "Refresh data").click().run()
    assert metric(at, "Models") == "4"  # the loaders read again…
    someone_elses_cache(1)
    assert CALLS == [1]  # …and nobody else's cache was thrown away


def test_changed_settings_are_part_of_the_cache_key(seeded: World, tmp_path: Path) -> None:
    """The Hardware loader prices GPU-hours from the settings: a new price shows at once, not
    after the cache's TTL."""
    at = open_page("hardware")
    before = metric(at, "Cost")
    path, changed = world.write_config(tmp_path, gpu_cost_per_hour={"A100": 10.0, "L4": 1.0})
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
    at.run()
    after = metric(at, "Cost")
    assert after != before
    assert after == f"${120 * 10.0 + 48 * 1.0:,.2f}"  # the seeded A100 and L4 GPU-hours
    assert changed.gpu_cost_per_hour["A100"] == 10.0


def test_no_link_to_the_token_protected_report_route(seeded: World) -> None:
    """A browser link cannot send the API's Bearer token (401): the pages build the report
    in-process instead (Show report, Download), and link nowhere else."""
    at = open_page("drift", state=FRAUD_PROD)
    assert not at.get("link_button")
    assert "/api/v1/reports" not in dump(at)
    recent = [df.value for df in at.dataframe if "Window end" in df.value.columns]
    assert recent and "Report" not in recent[0].columns
    assert "Show report" in labels(at)
