"""REST (/api/v1/alerts) and CLI (`alerts`, `snooze`, `resolve`), with their refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from modeldeck.core.alerts import service
from modeldeck.core.alerts.models import Alert, AlertStatus, Severity
from modeldeck.core.api.app import create_app
from modeldeck.core.auth import service as auth
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.cli.main import app as cli_app
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.rollouts.models import Deployment
from tests.core.alerts.world import snapshot


@pytest.fixture
def alert(session: Session, settings: Settings, clock: FixedClock, dep: Deployment) -> Alert:
    return service.fire(
        session,
        settings=settings,
        rule="drift",
        severity=Severity.warning,
        summary="Data drift in fraud 1.0.0 in production: 60% of columns",
        details={"metric": "share of drifted columns", "value": 0.6},
        model_id=dep.model_id,
        version_id=dep.version_id,
        environment_id=dep.environment_id,
        clock=clock,
    )


@pytest.fixture
def api(settings: Settings, engine: Engine, clock: FixedClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine, clock=clock)) as client:
        yield client


def _token(session: Session, admin: Actor, role: Role) -> dict[str, str]:
    created = auth.create_token(session, name=f"{role}-token", role=role, actor=admin)
    return {"Authorization": f"Bearer {created.token}"}


def test_rest_list_snooze_resolve(
    api: TestClient, session: Session, admin: Actor, alert: Alert
) -> None:
    deployer = _token(session, admin, Role.deployer)
    listed = api.get("/api/v1/alerts", headers=deployer, params={"status": "firing"})
    assert listed.status_code == 200
    body = listed.json()
    assert body["count"] == 1 and body["data"][0]["id"] == alert.id
    assert body["data"][0]["model"] == "fraud" and body["data"][0]["environment"] == "production"

    snoozed = api.post(
        f"/api/v1/alerts/{alert.id}/snooze", json={"duration": "2h"}, headers=deployer
    )
    assert snoozed.status_code == 200, snoozed.text
    assert snoozed.json()["status"] == "snoozed"
    assert snoozed.json()["snoozed_by"] == "token:deployer-token"
    assert snoozed.json()["snoozed_until"].startswith("2026-11-01T14:00:00")

    resolved = api.post(f"/api/v1/alerts/{alert.id}/resolve", headers=deployer)
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert resolved.json()["resolved_by"] == "token:deployer-token"


@pytest.mark.parametrize("duration", ["2x", "-1h", "999d", "", "1.5h"])
def test_rest_bad_durations_are_422_and_change_nothing(
    api: TestClient, session: Session, admin: Actor, alert: Alert, duration: str
) -> None:
    headers = _token(session, admin, Role.deployer)
    before = snapshot(session)
    response = api.post(
        f"/api/v1/alerts/{alert.id}/snooze", json={"duration": duration}, headers=headers
    )
    assert response.status_code == 422
    assert "duration" in response.json()["detail"] or "30-day" in response.json()["detail"]
    assert snapshot(session) == before


def test_rest_refusals(
    api: TestClient,
    session: Session,
    admin: Actor,
    alert: Alert,
    deployer: Actor,
    settings: Settings,
) -> None:
    viewer = _token(session, admin, Role.viewer)
    deploy = _token(session, admin, Role.deployer)
    done = service.fire(
        session,
        settings=settings,
        rule="other",
        severity=Severity.info,
        summary="x",
        details={},
        model_id=alert.model_id,
    )
    assert done.id is not None
    service.resolve_by(session, settings=settings, alert_id=done.id, actor=deployer)
    before = snapshot(session)

    assert api.get("/api/v1/alerts").status_code == 401
    forbidden = api.post(
        f"/api/v1/alerts/{alert.id}/snooze", json={"duration": "2h"}, headers=viewer
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"] == (
        "snooze alerts needs the deployer role; token:viewer-token is viewer"
    )
    assert api.post(f"/api/v1/alerts/{alert.id}/resolve", headers=viewer).status_code == 403
    missing = api.post("/api/v1/alerts/9999/snooze", json={"duration": "2h"}, headers=deploy)
    assert missing.status_code == 404 and missing.json()["detail"] == "no alert with id 9999"
    assert api.post("/api/v1/alerts/9999/resolve", headers=deploy).status_code == 404
    conflict = api.post(f"/api/v1/alerts/{done.id}/snooze", json={"duration": "2h"}, headers=deploy)
    assert conflict.status_code == 409
    assert "already resolved" in conflict.json()["detail"]
    assert api.post(f"/api/v1/alerts/{done.id}/resolve", headers=deploy).status_code == 409
    assert api.get("/api/v1/alerts", params={"status": "bogus"}, headers=viewer).status_code == 422
    assert api.get("/api/v1/alerts", params={"model": "nope"}, headers=viewer).status_code == 404
    assert snapshot(session) == before


@pytest.fixture
def config_file(tmp_path: Path, settings: Settings) -> Path:
    path = tmp_path / "modeldeck.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database_url": settings.database_url,
                "clusters": [c.model_dump(mode="json") for c in settings.clusters],
                "environments": [e.model_dump(mode="json") for e in settings.environments],
            }
        )
    )
    return path


def _cli(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app, ["--config", str(config), *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_alerts_snooze_resolve(config_file: Path, alert: Alert, session: Session) -> None:
    code, out, _ = _cli(config_file, "--json", "alerts", "--status", "firing")
    assert code == 0
    assert [a["id"] for a in json.loads(out)] == [alert.id]

    code, out, err = _cli(config_file, "snooze", str(alert.id), "2h")
    assert code == 0, err
    assert f"alert {alert.id} (drift) snoozed until" in out
    assert service.get_alert(session, alert.id or 0).snoozed_by is not None

    code, out, _ = _cli(config_file, "--json", "alerts", "--status", "snoozed")
    assert code == 0 and [a["rule"] for a in json.loads(out)] == ["drift"]
    code, out, _ = _cli(config_file, "alerts")
    assert code == 0 and "snoozed" in out and "drift" in out

    code, out, _ = _cli(config_file, "resolve", str(alert.id))
    assert code == 0 and f"alert {alert.id} (drift) resolved" in out
    assert service.get_alert(session, alert.id or 0).status == AlertStatus.resolved


def test_cli_refusals_exit_codes_and_unchanged_database(
    config_file: Path, alert: Alert, session: Session
) -> None:
    before = snapshot(session)
    code, _, err = _cli(config_file, "snooze", str(alert.id), "2x")
    assert code == 2 and "'2x' is not a duration" in err
    code, _, err = _cli(config_file, "snooze", str(alert.id), "999d")
    assert code == 2 and "30-day maximum" in err
    code, _, err = _cli(config_file, "snooze", "424242", "2h")
    assert code == 1 and "no alert with id 424242" in err
    code, _, err = _cli(config_file, "resolve", "424242")
    assert code == 1 and "no alert with id 424242" in err
    code, _, err = _cli(config_file, "alerts", "--status", "bogus")
    assert code == 2
    assert snapshot(session) == before
    _cli(config_file, "resolve", str(alert.id))
    code, _, err = _cli(config_file, "snooze", str(alert.id), "1h")
    assert code == 1 and "already resolved" in err
