"""Alerts page (snooze, resolve through the alerts service) and the searchable audit log."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from streamlit.testing.v1 import AppTest

from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import Alert, AlertStatus, Severity
from modeldeck.core.audit import service as audit
from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.registry.models import Model
from modeldeck.core.rollouts.models import Deployment
from tests.dashboard.conftest import button, dump, labels, open_page, texts
from tests.dashboard.world import World


def alert(engine: Engine, alert_id: int) -> Alert:
    with Session(engine) as s:
        row = s.get(Alert, alert_id)
    assert row is not None
    return row


def table(at: AppTest) -> pd.DataFrame:
    frame: pd.DataFrame = at.dataframe[0].value
    return frame


def test_open_alerts_by_default_and_by_status(seeded: World, sqlite_engine: Engine) -> None:
    at = open_page("alerts")
    with Session(sqlite_engine) as s:
        open_ids = sorted(
            s.exec(
                select(Alert.id).where(
                    col(Alert.status).in_([AlertStatus.firing, AlertStatus.snoozed])
                )
            ).all()
        )
    assert sorted(table(at)["#"]) == open_ids
    assert "2 firing · 0 snoozed · 1 resolved" in texts(at)
    at.segmented_control(key="alerts_view").set_value("Resolved").run()
    assert list(table(at)["#"]) == [seeded.alerts["old"]]
    at.segmented_control(key="alerts_view").set_value("All").run()
    assert len(table(at)) == 3


def test_link_from_slack_opens_one_alert(seeded: World) -> None:
    from tests.dashboard.conftest import app

    at = app()
    at.run()
    at.switch_page("views/alerts.py")
    at.query_params["alert"] = str(seeded.alerts["drift"])
    at.run()
    assert list(table(at)["#"]) == [seeded.alerts["drift"]]
    assert f"Showing alert #{seeded.alerts['drift']} only" in texts(at)
    assert "share of drifted columns" in texts(at)  # the alert explains itself


def test_viewer_cannot_snooze(seeded: World) -> None:
    for who in ({}, {"email": "viewer@acme.io"}):
        at = open_page("alerts", **who)
        assert "Snooze" not in labels(at) and "Resolve" not in labels(at)
        assert "need the deployer role" in texts(at)


def test_deployer_snoozes_and_resolves(seeded: World, sqlite_engine: Engine) -> None:
    at = open_page("alerts", email="deployer@acme.io")
    at.selectbox(key="alert_pick").set_value(seeded.alerts["drift"]).run()
    at.text_input(key=f"snooze_for_{seeded.alerts['drift']}").input("3h")
    button(at, "Snooze").click().run()
    row = alert(sqlite_engine, seeded.alerts["drift"])
    assert (row.status, row.snoozed_by) == ("snoozed", "dashboard:deployer@acme.io")
    assert f"Snoozed alert #{seeded.alerts['drift']} until" in texts(at)
    assert "1 snoozed" in texts(at)  # caches were cleared
    at.selectbox(key="alert_pick").set_value(seeded.alerts["quality"]).run()
    button(at, "Resolve").click().run()
    row = alert(sqlite_engine, seeded.alerts["quality"])
    assert (row.status, row.resolved_by) == ("resolved", "dashboard:deployer@acme.io")
    with Session(sqlite_engine) as s:
        actions = set(
            s.exec(
                select(AuditEvent.action).where(AuditEvent.actor == "dashboard:deployer@acme.io")
            ).all()
        )
    assert {"alert.snooze", "alert.resolve"} <= actions


def test_bad_snooze_duration_changes_nothing(seeded: World, sqlite_engine: Engine) -> None:
    at = open_page("alerts", email="deployer@acme.io")
    at.selectbox(key="alert_pick").set_value(seeded.alerts["drift"]).run()
    for bad in ("5 weeks", "10s", "0m", "31d", ""):
        at.text_input(key=f"snooze_for_{seeded.alerts['drift']}").input(bad)
        button(at, "Snooze").click().run()
        assert "Snooze refused" in texts(at), bad
        assert alert(sqlite_engine, seeded.alerts["drift"]).status == "firing"


def test_audit_search_matches_the_log(seeded: World, sqlite_engine: Engine) -> None:
    at = open_page("audit", state={"range": "1y"})
    with Session(sqlite_engine) as s:
        total = s.exec(select(func.count()).select_from(AuditEvent)).one()
        promotes = audit.search(s, action="deployment.promote").count
    assert f"{total} events" in texts(at)
    at.text_input(key="audit_action").input("deployment.promote")
    button(at, "Search").click().run()
    shown = table(at)
    assert len(shown) == promotes and set(shown["Action"]) == {"deployment.promote"}
    at.text_input(key="audit_action").input("")
    at.text_input(key="audit_target").input("model:churn-predictor")
    button(at, "Search").click().run()
    assert all(t.startswith("model:churn-predictor") for t in table(at)["Target"])
    at.text_input(key="audit_target").input("")
    at.text_input(key="audit_text").input("no-such-thing-anywhere")
    button(at, "Search").click().run()
    assert "No audit events match." in texts(at)


def test_no_page_shows_a_secret(seeded: World, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "MODELDECK_SLACK__BOT_TOKEN": "xoxb-never-show-me",
        "MODELDECK_SLACK__SIGNING_SECRET": "signing-never-show-me",
        "MODELDECK_PROMETHEUS__BEARER_TOKEN": "prom-never-show-me",
    }
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    for page in ("overview", "model", "decay", "quality", "drift", "hardware", "alerts", "audit"):
        at = open_page(page, email="deployer@acme.io")
        everything = dump(at)
        assert "deployer@acme.io" in everything  # the scan does see the page's text
        for value in secrets.values():
            assert value not in everything, (page, value)
        assert "not-a-real-secret" not in everything  # the OIDC client secret


def test_an_alert_opens_the_page_with_its_evidence(seeded: World) -> None:
    at = open_page("alerts", state={"model": "churn-predictor", "env": "staging"})
    at.selectbox(key="alert_pick").set_value(seeded.alerts["drift"]).run()
    button(at, "Open Drift of fraud-detector in production").click().run()
    assert not at.exception
    assert at.title[0].value == "Data drift"
    assert at.selectbox(key="_pick_model").value == "fraud-detector"
    assert at.selectbox(key="_pick_env").value == "production"
    assert "Drifting now: **amount**" in texts(at)


def test_a_gpu_alert_opens_hardware_on_its_model(seeded: World, sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as session:
        model = session.exec(select(Model).where(Model.name == "fraud-detector")).one()
        dep = session.get(Deployment, seeded.deployments["fraud-prod-1.1.0"])
        assert dep is not None
        idle = alerts.fire(
            session,
            settings=seeded.settings,
            rule="gpu_idle",
            severity=Severity.warning,
            summary="fraud-detector 1.1.0 in production holds GPU GPU-a100-7 at 0.4%",
            details={"metric": "gpu_utilisation_percent", "value": 0.4, "threshold": 5},
            key="gpu-a100/GPU-a100-7",
            model_id=model.id,
            version_id=dep.version_id,
            environment_id=dep.environment_id,
        ).id
    at = open_page("alerts")
    at.selectbox(key="alert_pick").set_value(idle).run()
    button(at, "Open Hardware of fraud-detector in production").click().run()
    assert not at.exception
    assert at.title[0].value == "GPU hardware"
    assert at.selectbox(key="hw_model").value == "fraud-detector"
    assert at.selectbox(key="hw_env").value == "production"
