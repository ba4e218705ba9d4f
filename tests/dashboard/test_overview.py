"""Overview page and first run: the grid matches the database; empty and broken databases
get a page that says what to do."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from modeldeck.core import db
from modeldeck.core.alerts.models import Alert, AlertStatus
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.monitoring.models import CheckResult
from modeldeck.core.registry.models import Model
from modeldeck.core.rollouts import service as rollouts
from tests.dashboard import world
from tests.dashboard.conftest import app, metric, no_exceptions, open_page, texts
from tests.dashboard.world import World

PAGES = ("overview", "model", "decay", "quality", "drift", "hardware", "alerts", "audit")


def grid(at: AppTest) -> pd.DataFrame:
    frames = [d.value for d in at.dataframe]
    assert frames, "no grid on the page"
    return frames[0]


def test_grid_shows_every_model_in_every_environment(seeded: World, sqlite_engine: Engine) -> None:
    at = open_page("overview")
    df = grid(at)
    with Session(sqlite_engine) as s:
        models = s.exec(select(func.count()).select_from(Model)).one()
        firing = s.exec(
            select(func.count()).select_from(Alert).where(Alert.status == AlertStatus.firing)
        ).one()
    assert len(df) == models * 2  # two environments
    assert metric(at, "Models") == str(models)
    assert metric(at, "Firing alerts") == str(firing)
    assert metric(at, "Running deployments") == "3"
    prod = df[df["Model"].str.contains("model=fraud-detector&env=production")].iloc[0]
    assert prod["Version"] == "1.1.0"
    assert prod["Promoted by"] == "carol"
    assert prod["Drift"] == "warn"  # the newest drift check warns (amount drifts)
    assert prod["Quality"] == "fail"  # the newest quality check fails (new category XX)
    assert prod["Decay"] == "ok"
    assert prod["GPU"] == "60% util"  # mean of the last 24 h of gpu_usage_hourly
    assert prod["Alerts"] == "2 firing"
    # Problems first: the failing cell leads, cells where nothing runs come last.
    assert df.iloc[0]["Model"] == prod["Model"]
    assert list(df["Version"])[-2:] == ["not deployed", "not deployed"]
    churn = df[df["Model"].str.contains("churn-predictor&env=staging")].iloc[0]
    assert churn["Drift"] == "no checks"


def test_team_filter_and_sort(seeded: World) -> None:
    at = open_page("overview")
    at.multiselect(key="overview_teams").set_value(["growth"]).run()
    df = grid(at)
    assert set(df["Team"]) == {"growth"} and len(df) == 2
    at.multiselect(key="overview_teams").set_value([]).run()
    at.selectbox(key="overview_sort").set_value("Model").run()
    names = [m.split("model=")[1].split("&")[0] for m in grid(at)["Model"]]
    assert names == sorted(names)
    at.toggle(key="overview_problems").set_value(True).run()
    assert list(grid(at)["Version"]) == ["1.1.0"]


def test_stale_checks_are_marked(sqlite_engine: Engine, dash_settings: Settings) -> None:
    """A monitor that stopped writing results shows 'stale', not its last green."""
    with Session(sqlite_engine, expire_on_commit=False) as s:
        w = world.seed_registry(s, dash_settings, world.now_hour())
        world.seed_checks(s, w, hours=20 * 24)
    with Session(sqlite_engine) as s:  # every check 3 days older: nothing recent ran
        for r in s.exec(select(CheckResult)).all():
            r.window_end = r.window_end - timedelta(days=3)
            r.window_start = r.window_start - timedelta(days=3)
            s.add(r)
        s.commit()
    at = open_page("overview")
    prod = grid(at)
    prod = prod[prod["Model"].str.contains("fraud-detector&env=production")].iloc[0]
    assert prod["Drift"].startswith("stale 3 d"), prod["Drift"]


@pytest.mark.parametrize("page", PAGES)
def test_empty_database_gets_the_first_run_page(
    page: str, sqlite_engine: Engine, dash_settings: Settings
) -> None:
    with Session(sqlite_engine) as s:
        environments.sync(s, dash_settings)
    at = open_page(page)
    said = texts(at)
    if page == "audit":  # the audit log of a fresh install holds the environment sync
        assert "environment.sync" in set(at.dataframe[0].value["Action"])
        return
    assert "Welcome to modeldeck" in said
    assert "No models are registered yet" in said
    assert "modeldeck demo" in [c.value for c in at.code][0]
    assert any("modeldeck register" in c.value for c in at.code)


def test_first_run_without_environments_says_so(
    sqlite_engine: Engine, dash_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = world.write_config(tmp_path, environments=[], clusters=[])
    monkeypatch.setenv("MODELDECK_CONFIG", str(path))
    at = open_page("overview")
    assert "No environments are configured" in texts(at)


def test_database_without_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "other"
    empty.mkdir()
    path, _ = world.write_config(empty)
    monkeypatch.setenv("MODELDECK_CONFIG", str(path))
    db.make_engine(f"sqlite:///{empty}/modeldeck.db").dispose()
    at = open_page("overview")
    assert "no modeldeck schema" in texts(at)
    assert "modeldeck db upgrade" in texts(at)
    assert str(empty) not in texts(at)  # the database URL is never shown


def test_unreachable_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = world.write_config(tmp_path)
    monkeypatch.setenv("MODELDECK_CONFIG", str(path))
    monkeypatch.setenv(
        "MODELDECK_DATABASE_URL", "postgresql+psycopg://modeldeck:hunter2@127.0.0.1:1/modeldeck"
    )
    at = open_page("overview")
    said = texts(at)
    assert "cannot be reached" in said
    assert "hunter2" not in said


def test_broken_config_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "modeldeck.yaml"
    bad.write_text("environments: [{name: prod, cluster: nowhere}]\n")
    monkeypatch.setenv("MODELDECK_CONFIG", str(bad))
    at = app()
    at.run()
    no_exceptions(at)
    assert "configuration could not be loaded" in texts(at)
    assert "unknown cluster" in texts(at)


def test_a_rollout_waiting_for_approval_shows_in_its_cell(
    seeded: World, sqlite_engine: Engine
) -> None:
    with Session(sqlite_engine) as s:
        dep = rollouts.promote(
            s,
            settings=seeded.settings,
            model="churn-predictor",
            version="2.0.0",
            environment="production",
            actor=world.CAROL,
            reason="ship 2.0.0",
            clock=FixedClock(seeded.now),
        )
        assert dep.state == "awaiting_approval"
    at = open_page("overview")
    df = grid(at)
    cell = df[df["Model"].str.contains("churn-predictor&env=production")].iloc[0]
    assert cell["Rollout"] == "2.0.0 awaiting approval"
    assert metric(at, "Rollouts in flight") == "1"
