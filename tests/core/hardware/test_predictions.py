"""Cost per 1k predictions from the predictions actually ingested, in every interface; split by
GPU-seconds (and marked approximate) when a version ran on two GPU models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from modeldeck.core.api.app import create_app
from modeldeck.core.auth import service as auth
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.cli.main import app as cli_app
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.environments.models import Environment
from modeldeck.core.hardware import report, service
from modeldeck.core.monitoring import service as monitoring
from tests.core.hardware import world
from tests.core.hardware.conftest import History

A100_PRICE, L4_PRICE = 3.67, 0.81
SERVED = 6_200  # fraud-detector 2.0.0 in production, all while it was active


@pytest.fixture
def served(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
    admin: Actor,
) -> None:
    """Scraped GPU history, and SERVED predictions ingested through monitoring."""
    service.scrape(session, settings=settings, start=history.t0, end=history.end, clock=clock)
    rng = np.random.default_rng(5)
    monitoring.set_reference(
        session,
        settings=settings,
        model="fraud-detector",
        version="2.0.0",
        frame=pd.DataFrame(
            {"amount": rng.gamma(2.0, 50.0, 500), "prediction": rng.integers(0, 2, 500)}
        ),
        actor=admin,
        clock=clock,
    )
    active = history.t0 + timedelta(minutes=world.V2_START)
    minutes = rng.integers(0, world.V2_END - world.V2_START, SERVED)
    monitoring.ingest_predictions(
        session,
        settings=settings,
        model="fraud-detector",
        version="2.0.0",
        environment="production",
        frame=pd.DataFrame(
            {
                "prediction_id": [f"p-{i}" for i in range(SERVED)],
                "timestamp": [active + timedelta(minutes=int(m)) for m in minutes],
                "amount": rng.gamma(2.0, 50.0, SERVED),
                "prediction": rng.integers(0, 2, SERVED),
            }
        ),
        actor=admin,
        clock=clock,
    )


V2_COST = (world.V2_END - world.V2_START) / 60 * A100_PRICE


@pytest.fixture
def api(settings: Settings, engine: Engine, clock: FixedClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine, clock=clock)) as client:
        yield client


def test_rest_report_has_cost_per_1k_predictions(
    api: TestClient, session: Session, admin: Actor, served: None
) -> None:
    token = auth.create_token(session, name="viewer", role=Role.viewer, actor=admin).token
    body = api.get(
        "/api/v1/hardware", headers={"Authorization": f"Bearer {token}"}, params={"days": 3}
    ).json()
    by_key = {(v["model"], v["version"], v["environment"]): v for v in body["versions"]}
    v2 = by_key[("fraud-detector", "2.0.0", "production")]
    assert v2["predictions"] == SERVED and not v2["predictions_approximate"]
    assert v2["cost_per_1k_predictions"] == pytest.approx(V2_COST / SERVED * 1000, rel=1e-4)
    staging = by_key[("fraud-detector", "2.0.0", "staging")]
    assert staging["predictions"] == 0 and staging["cost_per_1k_predictions"] is None


def test_cli_report_has_cost_per_1k_predictions(
    tmp_path: Path, settings: Settings, served: None
) -> None:
    config = tmp_path / "modeldeck.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": settings.database_url,
                "data_dir": settings.data_dir,
                "clusters": [c.model_dump(mode="json") for c in settings.clusters],
                "environments": [e.model_dump(mode="json") for e in settings.environments],
                "prometheus": {"url": settings.prometheus.url},
            }
        )
    )
    result = CliRunner().invoke(
        cli_app, ["--config", str(config), "--json", "gpu", "fraud-detector", "--env", "prod"]
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    (v2,) = [v for v in json.loads(result.stdout)["versions"] if v["version"] == "2.0.0"]
    assert v2["predictions"] == SERVED
    assert v2["cost_per_1k_predictions"] == pytest.approx(V2_COST / SERVED * 1000, rel=1e-4)


def test_predictions_of_a_version_on_two_gpu_models_are_split_by_gpu_seconds(
    session: Session, settings: Settings, ids: dict[str, tuple[int, int]], history: History
) -> None:
    """fraud-detector 2.0.0 in production: 3 h on an A100 and 1 h on an L4 of the same
    cluster, 4,000 predictions in all: 3,000 and 1,000, both marked approximate."""
    model_id, version_id = ids["fraud-detector@2.0.0"]
    prod = session.exec(select(Environment.id).where(Environment.name == "production")).one()
    rows = [
        (model_id, version_id, prod, "gpu-a100", gpu_model, uuid, "fraud-detector-1", hour,
         50.0, 60, 3600.0, None, None, None, None, False)
        for gpu_model, uuid, hours in ((world.A100, "GPU-A", 3), (world.L4, "GPU-L", 1))
        for hour in [history.t0 + timedelta(hours=h) for h in range(hours)]
    ]  # fmt: skip
    rep = report.build(
        session,
        settings,
        rows,
        history.t0,
        history.end,
        {("fraud-detector", "2.0.0", "production"): 4000},
        status=service.status(session),
        findings=[],
    )
    got = {v.gpu_model: v for v in rep.versions}
    assert (got["A100"].predictions, got["L4"].predictions) == (3000, 1000)
    assert got["A100"].predictions_approximate and got["L4"].predictions_approximate
    assert got["A100"].cost_per_1k_predictions == pytest.approx(3 * A100_PRICE / 3)
    assert got["L4"].cost_per_1k_predictions == pytest.approx(1 * L4_PRICE / 1)
    (compared,) = rep.comparisons
    assert [
        (g.gpu_model, g.predictions, g.predictions_approximate) for g in compared.by_gpu_model
    ] == [
        ("A100", 3000, True),
        ("L4", 1000, True),
    ]
