"""Nothing secret on screen: credentials in URLs are stripped from every message a page shows,
and a failure nobody planned for shows a generic message (the traceback goes to the log)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from modeldeck.core.alerts import service as alerts_service
from modeldeck.core.alerts.models import Alert, Severity
from modeldeck.core.hardware.models import HardwareScrape
from modeldeck.core.rollouts.models import Deployment
from modeldeck.dashboard import safe
from tests.dashboard.conftest import button, dump, open_page, texts
from tests.dashboard.world import World

PROM = "http://scraper:hunter2@prometheus.internal:9090"
SECRETS = ("hunter2", "scraper:", "tok-abc123")


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (
            "Prometheus at http://u:p@w@prom:9090/api is unreachable",
            "Prometheus at http://prom:9090/api is unreachable",
        ),
        ("see https://token@hooks.example.com/x", "see https://hooks.example.com/x"),
        ("https://prom?x=1&token=abc&y=2", "https://prom?x=1&token=***&y=2"),
        ("postgresql+psycopg://app:pw@db/modeldeck", "postgresql+psycopg://db/modeldeck"),
        ("mail ana@acme.io about http://prom:9090", "mail ana@acme.io about http://prom:9090"),
    ],
)
def test_redact(raw: str, shown: str) -> None:
    assert safe.redact(raw) == shown


def test_redact_data_walks_details() -> None:
    data = {"error": f"{PROM} down", "tries": 3, "urls": [PROM, None]}
    assert safe.redact_data(data) == {
        "error": "http://prometheus.internal:9090 down",
        "tries": 3,
        "urls": ["http://prometheus.internal:9090", None],
    }


def test_prometheus_credentials_never_reach_the_hardware_page(
    seeded: World, sqlite_engine: Engine
) -> None:
    """A failed scrape stores Prometheus' message, URL included (core/hardware/prom.py);
    the page shows the message without the URL's user and password."""
    failure = f"Prometheus at {PROM}/?token=tok-abc123 is unreachable: connection refused"
    finding = {
        "kind": "metrics_missing",
        "severity": "warning",
        "cluster": "gpu-a100",
        "summary": f"no DCGM series at {PROM}",
        "fix": "check the scrape config",
    }
    with Session(sqlite_engine) as s:
        for minutes, ok in ((60, True), (20, False)):
            s.add(
                HardwareScrape(
                    started_at=seeded.now - timedelta(minutes=minutes),
                    finished_at=seeded.now - timedelta(minutes=minutes),
                    window_start=seeded.now - timedelta(hours=2),
                    window_end=seeded.now - timedelta(minutes=minutes),
                    ok=ok,
                    error="" if ok else failure,
                    findings=[finding] if ok else [],
                )
            )
        s.commit()
    at = open_page("hardware")
    warning = " ".join(w.value for w in at.warning)
    assert "metrics unavailable since" in warning
    assert "Prometheus at http://prometheus.internal:9090/?token=*** is unreachable" in warning
    assert "no DCGM series at http://prometheus.internal:9090" in texts(at)
    everything = dump(at)
    for secret in SECRETS:
        assert secret not in everything, secret


def test_alert_texts_are_redacted(seeded: World, sqlite_engine: Engine) -> None:
    with Session(sqlite_engine, expire_on_commit=False) as s:
        alert = alerts_service.fire(
            s,
            settings=seeded.settings,
            rule="gpu_metrics_unavailable",
            severity=Severity.warning,
            summary=f"GPU metrics unavailable: Prometheus at {PROM} is unreachable",
            details={"error": f"Prometheus at {PROM} is unreachable", "fix": f"curl {PROM}"},
        )
    at = open_page("alerts")
    at.selectbox(key="alert_pick").set_value(alert.id).run()
    assert "Prometheus at http://prometheus.internal:9090 is unreachable" in texts(at)
    everything = dump(at)
    for secret in SECRETS:
        assert secret not in everything, secret


def _count(engine: Engine, entity: type) -> int:
    with Session(engine) as s:
        return int(s.exec(select(func.count()).select_from(entity)).one())


def test_an_unexpected_failure_in_an_action_shows_no_traceback(
    seeded: World, sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The database loses a table under a promote: the page says the promote failed with a
    reference, the log holds the traceback, nothing is half-written."""
    at = open_page("model", state={"model": "search-ranker"}, email="deployer@acme.io")
    at.selectbox(key="promote_env").set_value("staging")
    button(at, "Promote…").click().run()
    before = _count(sqlite_engine, Deployment)
    with sqlite_engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_event RENAME TO audit_event_gone"))
    with caplog.at_level(logging.ERROR, logger="modeldeck.dashboard"):
        button(at, "Confirm promote").click().run()
    assert not at.exception
    said = texts(at)
    assert "Promote failed unexpectedly (reference " in said
    assert "audit_event" not in dump(at) and "Traceback" not in dump(at)
    [record] = [r for r in caplog.records if r.name == "modeldeck.dashboard"]
    assert record.exc_info is not None and "audit_event" in str(record.exc_info[1])
    ref = said.split("(reference ")[1].split(")")[0]
    assert ref in record.getMessage()
    assert _count(sqlite_engine, Deployment) == before  # rolled back with its audit event


def test_an_unexpected_failure_while_snoozing(
    seeded: World, sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    at = open_page("alerts", email="deployer@acme.io")
    at.selectbox(key="alert_pick").set_value(seeded.alerts["drift"]).run()
    with sqlite_engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_event RENAME TO audit_event_gone"))
    with caplog.at_level(logging.ERROR, logger="modeldeck.dashboard"):
        button(at, "Snooze").click().run()
    assert not at.exception
    assert f"Snooze of alert #{seeded.alerts['drift']} failed unexpectedly" in texts(at)
    assert "audit_event" not in dump(at)
    assert any(r.exc_info for r in caplog.records if r.name == "modeldeck.dashboard")
    with Session(sqlite_engine) as s:
        row = s.get(Alert, seeded.alerts["drift"])
        assert row is not None and row.status == "firing"
