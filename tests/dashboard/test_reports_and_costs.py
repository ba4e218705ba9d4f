"""With real ingested predictions: the evidently report of a real drift check shown in the
dashboard, and cost per 1k predictions on the Hardware page counted from the Parquet store."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core.monitoring import reports
from modeldeck.core.monitoring import service as monitoring
from modeldeck.core.monitoring.models import CheckKind
from modeldeck.core.rollouts.models import Deployment
from tests.dashboard import world
from tests.dashboard.conftest import button, open_page, texts
from tests.dashboard.world import World


def test_report_of_a_real_drift_check(seeded: World, sqlite_engine: Engine) -> None:
    with Session(sqlite_engine, expire_on_commit=False) as s:
        world.seed_predictions(s, seeded)
        dep = s.get(Deployment, seeded.deployments["fraud-prod-1.1.0"])
        assert dep is not None and dep.id is not None
        check = monitoring.run_check(
            s,
            settings=seeded.settings,
            deployment_id=dep.id,
            kind=CheckKind.drift,
            window_end=seeded.now,
        )
    at = open_page("drift", state={"model": "fraud-detector", "env": "production"})
    at.selectbox(key="report_check_drift").set_value(check.id).run()
    button(at, "Show report").click().run()
    [frame] = at.get("iframe")
    with Session(sqlite_engine) as s:  # what the API's /reports route serves
        served = reports.html(s, settings=seeded.settings, check_id=check.id or 0)
    assert frame.proto.srcdoc == served
    assert "<html" in served.lower() and "amount" in served
    assert [d.proto.label for d in at.get("download_button")] == ["Download the report (HTML)"]


def test_report_of_a_check_without_data_says_so(seeded: World) -> None:
    at = open_page("drift", state={"model": "fraud-detector", "env": "production"})
    button(at, "Show report").click().run()  # the newest synthetic check: no stored window
    assert "No report for this check" in texts(at)
    assert not at.get("iframe")


def test_cost_per_1k_predictions(seeded: World, sqlite_engine: Engine) -> None:
    with Session(sqlite_engine, expire_on_commit=False) as s:
        stored = world.seed_predictions(s, seeded)
    at = open_page("hardware")
    assert "Cost per 1k predictions appears once" in texts(at)  # fleet-wide: not counted
    at.selectbox(key="hw_model").set_value("fraud-detector").run()
    [usage] = [
        df.value
        for df in at.dataframe
        if "Cost / 1k predictions" in df.value.columns and "Model" in df.value.columns
    ]
    prod = usage[usage["Environment"] == "production"].iloc[0]
    assert prod["Predictions"] == stored
    expected = round(prod["Cost"] / stored * 1000, 6)
    assert abs(prod["Cost / 1k predictions"] - expected) < 1e-6
    staging = usage[usage["Environment"] == "staging"].iloc[0]
    assert staging["Predictions"] == 0  # nothing ingested there
