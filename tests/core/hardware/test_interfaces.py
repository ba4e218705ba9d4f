"""GET /api/v1/hardware and `modeldeck gpu` / `gpu-scrape`, from the stored aggregates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from modeldeck.core.api.app import create_app
from modeldeck.core.auth import service as auth
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.cli.main import app as cli_app
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.errors import BackendUnavailable
from modeldeck.core.hardware import service
from tests.core.hardware.conftest import History
from tests.utils.servers import free_port


@pytest.fixture
def scraped(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    service.scrape(session, settings=settings, start=history.t0, end=history.end, clock=clock)


@pytest.fixture
def api(settings: Settings, engine: Engine, clock: FixedClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine, clock=clock)) as client:
        yield client


@pytest.fixture
def viewer_headers(session: Session, admin: Actor) -> dict[str, str]:
    created = auth.create_token(session, name="viewer-token", role=Role.viewer, actor=admin)
    return {"Authorization": f"Bearer {created.token}"}


def test_rest_report_per_version_with_status(
    api: TestClient, scraped: None, viewer_headers: dict[str, str]
) -> None:
    answer = api.get(
        "/api/v1/hardware", headers=viewer_headers, params={"model": "fraud-detector", "days": 7}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"]["available"] is True
    got = {
        (v["version"], v["environment"], v["gpu_model"]): v["gpu_hours"] for v in body["versions"]
    }
    assert got == {
        ("1.0.0", "production", "A100"): pytest.approx(37.6667, abs=1e-4),
        ("2.0.0", "production", "A100"): pytest.approx(10.3333, abs=1e-4),
        ("2.0.0", "staging", "L4"): pytest.approx(24.0),
    }
    assert body["comparisons"][0]["model"] == "fraud-detector"
    assert any(f["kind"] == "attribution" for f in body["findings"])

    prod = api.get(
        "/api/v1/hardware",
        headers=viewer_headers,
        params={"environment": "prod", "cluster": "gpu-a100"},
    ).json()
    assert {v["environment"] for v in prod["versions"]} == {"production"}


def test_rest_status_says_metrics_unavailable_since(
    api: TestClient,
    scraped: None,
    session: Session,
    settings: Settings,
    viewer_headers: dict[str, str],
    clock: FixedClock,
    history: History,
) -> None:
    down = settings.model_copy(
        update={
            "prometheus": settings.prometheus.model_copy(
                update={"url": f"http://127.0.0.1:{free_port()}"}
            )
        }
    )
    with pytest.raises(BackendUnavailable):
        service.scrape(
            session,
            settings=down,
            start=history.end - timedelta(hours=1),
            end=history.end,
            clock=clock,
        )
    body = api.get("/api/v1/hardware", headers=viewer_headers).json()
    assert body["status"]["available"] is False
    assert body["status"]["message"].startswith("metrics unavailable since ")
    assert body["versions"]  # the last aggregates stay
    status = api.get("/api/v1/hardware/status", headers=viewer_headers)
    assert status.status_code == 200 and status.json()["unavailable_since"]


@pytest.mark.parametrize(
    ("params", "code", "text"),
    [
        ({"model": "nope"}, 404, "nope"),
        ({"start": "2026-11-01T00:00:00"}, 422, "time zone"),
        ({"start": "2026-11-01T00:00:00Z", "end": "2026-10-01T00:00:00Z"}, 422, "range is empty"),
        ({"days": 0}, 422, "days"),
        ({"version": "1.0.0"}, 422, "needs the model"),
    ],
)
def test_rest_refusals(
    api: TestClient,
    viewer_headers: dict[str, str],
    ids: dict[str, tuple[int, int]],
    params: dict[str, object],
    code: int,
    text: str,
) -> None:
    answer = api.get("/api/v1/hardware", headers=viewer_headers, params=params)
    assert answer.status_code == code
    assert text in answer.text


def test_rest_needs_a_token(api: TestClient) -> None:
    assert api.get("/api/v1/hardware").status_code == 401


@pytest.fixture
def config_file(tmp_path: Path, settings: Settings) -> Path:
    path = tmp_path / "modeldeck.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database_url": settings.database_url,
                "clusters": [c.model_dump(mode="json") for c in settings.clusters],
                "environments": [e.model_dump(mode="json") for e in settings.environments],
                "prometheus": {"url": settings.prometheus.url},
            }
        )
    )
    return path


def _cli(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app, ["--config", str(config), *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_gpu_table_and_json(config_file: Path, scraped: None) -> None:
    code, out, _ = _cli(config_file, "--json", "gpu", "eta-regressor")
    assert code == 0, out
    body = json.loads(out)
    assert [(v["version"], v["gpu_hours"]) for v in body["versions"]] == [("1.0.0", 48.0)]
    code, out, _ = _cli(config_file, "gpu", "fraud-detector", "--env", "staging")
    assert code == 0
    assert "GPU metrics up to date" in out and "fraud-detector" in out
    assert "modeldeck.io/version]" in out  # findings are printed verbatim, not as markup


def test_cli_refusals_and_unavailable_prometheus(
    config_file: Path, scraped: None, tmp_path: Path
) -> None:
    code, _, err = _cli(config_file, "gpu", "nope")
    assert code == 1 and "nope" in err
    code, _, err = _cli(config_file, "gpu", "--days", "0")
    assert code == 2
    dead = yaml.safe_load(config_file.read_text())
    dead["prometheus"]["url"] = f"http://127.0.0.1:{free_port()}"
    dead_file = tmp_path / "dead.yaml"
    dead_file.write_text(yaml.safe_dump(dead))
    code, _, err = _cli(dead_file, "gpu-scrape", "--hours", "1")
    assert code == 1 and "unreachable" in err
    code, out, _ = _cli(dead_file, "gpu")
    assert code == 0 and "metrics unavailable since" in out
