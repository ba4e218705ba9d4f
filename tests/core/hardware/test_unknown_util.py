"""A GPU series with memory readings but no utilisation (a MIG slice exposing neither GPU_UTIL
nor GR_ENGINE_ACTIVE) has unknown utilisation, not 0 %: the scrape stores it, it counts for
GPU-hours and memory, it is never idle, and it does not pull a version's mean or p95 down.

World (cluster gpu-a100, namespace ml-prod, 4 h from T0, one sample per minute):
GPU-H-0        eta-regressor-h-1    utilisation 20/40/60/80 % in hours 0..3, 1000 MiB used
GPU-M-0 MIG 1  eta-regressor-h-2    2000 MiB used, no utilisation readings at all
GPU-M-1 MIG 1  churn-predictor-m-9  3000 MiB used, no utilisation readings at all
GPU-I-0        fraud-detector-i-1   2 % (really idle: the idle alert still fires for it)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from modeldeck.core.alerts.models import Alert
from modeldeck.core.cli.main import app as cli_app
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.hardware import alerting, queries, report, service
from modeldeck.core.hardware.models import FindingKind, GpuUsageHourly, VersionUsage
from tests.conftest import make_settings
from tests.core.hardware import world
from tests.utils.prometheus import PrometheusServer, Series

pytestmark = pytest.mark.xdist_group("hardware-unknown-util")

HOURS = 4
HEALTHY = {h: 20.0 * (h + 1) for h in range(HOURS)}  # hourly utilisation of GPU-H-0


def _series(t0: float, labels: dict[str, str], values: dict[str, object]) -> list[Series]:
    base = {"cluster": "gpu-a100", "modelName": world.A100, "namespace": "ml-prod", "job": "dcgm"}
    out = []
    for name, value in values.items():
        points = [
            (t0 + 60 * m + 30, float(value(m) if callable(value) else value))  # type: ignore[arg-type]
            for m in range(HOURS * 60)
        ]
        out.append(Series(name, base | labels, points))
    return out


def history(t0: datetime) -> list[Series]:
    ts = t0.timestamp()
    full = {
        "DCGM_FI_DEV_FB_USED": 1000.0,
        "DCGM_FI_DEV_FB_FREE": 80920.0,
        "DCGM_FI_DEV_POWER_USAGE": 100.0,
        "DCGM_FI_DEV_GPU_TEMP": 50.0,
    }
    out = _series(
        ts,
        {"UUID": "GPU-H-0", "gpu": "0", "Hostname": "u-n1", "pod": "eta-regressor-h-1"},
        {"DCGM_FI_DEV_GPU_UTIL": lambda m: HEALTHY[m // 60], **full},
    )
    for uuid, pod, used in (
        ("GPU-M-0", "eta-regressor-h-2", 2000.0),
        ("GPU-M-1", "churn-predictor-m-9", 3000.0),
    ):
        out += _series(
            ts,
            {"UUID": uuid, "gpu": "1", "Hostname": "u-n2", "GPU_I_ID": "1", "pod": pod},
            {"DCGM_FI_DEV_FB_USED": used, "DCGM_FI_DEV_FB_FREE": 10000.0 - used},
        )
    out += _series(
        ts,
        {"UUID": "GPU-I-0", "gpu": "2", "Hostname": "u-n1", "pod": "fraud-detector-i-1"},
        {"DCGM_FI_DEV_GPU_UTIL": 2.0, **full},
    )
    return out


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrometheusServer, datetime]]:
    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS)
    with PrometheusServer(tmp_path_factory.mktemp("no-util"), backfill=history(t0)) as server:
        yield server, t0


def _usage(versions: list[VersionUsage], model: str) -> VersionUsage:
    (found,) = [v for v in versions if v.model == model and v.environment == "production"]
    return found


def test_a_slice_without_utilisation_is_stored_never_idle_and_leaves_the_mean_alone(
    any_engine: Engine, tmp_path: Path, prom: tuple[PrometheusServer, datetime]
) -> None:
    server, t0 = prom
    end = t0 + timedelta(hours=HOURS)
    # Idle after 2 h, so the 4 h world can page: the slices are held long enough to qualify.
    settings: Settings = make_settings(
        tmp_path, prometheus={"url": server.url, "timeout_seconds": 10, "idle_hours": 2}
    )
    clock = FixedClock(end + timedelta(minutes=5))
    with Session(any_engine, expire_on_commit=False) as session:
        environments.sync(session, settings)
        ids = world.seed(session, t0)
        result = service.scrape(session, settings=settings, start=t0, end=end, clock=clock)

        assert service.status(session, clock=clock).available
        rows = session.exec(select(GpuUsageHourly)).all()
        by_gpu = {g: [r for r in rows if r.gpu_uuid == g] for g in ("GPU-H-0", "GPU-M-0")}
        assert len(by_gpu["GPU-H-0"]) == HOURS and len(by_gpu["GPU-M-0"]) == HOURS
        slice_rows = by_gpu["GPU-M-0"]
        assert {r.version_id for r in slice_rows} == {ids["eta-regressor@1.0.0"][1]}
        assert all(r.samples == 0 and r.memory_used_mib == 2000.0 for r in slice_rows)
        assert sum(r.gpu_seconds for r in slice_rows) == pytest.approx(HOURS * 3600)

        idle = session.exec(select(Alert).where(col(Alert.rule) == alerting.IDLE)).all()
        assert [a.key for a in idle] == ["gpu-a100/GPU-I-0"]  # the idle GPU, not the slices
        found = [f.gpu_uuid for f in result.findings if f.kind == FindingKind.idle]
        assert found == ["GPU-I-0"]

        # The stored report and the dashboard's bucketed one agree: utilisation is the healthy
        # GPU's alone, GPU-hours and memory count the slice too.
        stored = report.usage(
            session, settings=settings, start=t0, end=end, clock=clock, predictions={}
        )
        view = queries.view(
            session, settings=settings, start=t0, end=end, group_by="version", predictions={}
        )
        for versions in (stored.versions, view.report.versions):
            eta = _usage(versions, "eta-regressor")
            assert eta.util_mean == pytest.approx(50.0)
            assert eta.util_p95 == pytest.approx(77.0)  # of the hourly means 20/40/60/80
            assert eta.gpu_hours == pytest.approx(2 * HOURS)
            assert eta.memory_used_gib == pytest.approx(1500 / 1024, abs=1e-3)
            churn = _usage(versions, "churn-predictor")  # its only GPU has no readings
            assert (churn.util_mean, churn.util_p95) == (None, None)
            assert churn.gpu_hours == pytest.approx(HOURS)
            assert churn.memory_used_gib == pytest.approx(3000 / 1024, abs=1e-3)
        eta_series = [p for p in view.series if p.model == "eta-regressor"]
        assert {p.util for p in eta_series} == set(HEALTHY.values())
        assert all(p.util is None for p in view.series if p.model == "churn-predictor")

    # The CLI shows the unknown utilisation as such, not as 0 % (nor a crash).
    config = tmp_path / "cli.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": any_engine.url.render_as_string(hide_password=False),
                "clusters": [c.model_dump(mode="json") for c in settings.clusters],
                "environments": [e.model_dump(mode="json") for e in settings.environments],
            }
        )
    )
    result = CliRunner().invoke(
        cli_app,
        ["--config", str(config), "gpu", "churn-predictor", "--days", "2"],
        env={"COLUMNS": "200"},  # one table row per line
    )
    assert result.exit_code == 0, result.output
    (row,) = [line for line in result.stdout.splitlines() if "churn-predictor " in line]
    assert "n/a" in row and "production" in row
    # Findings about other models stay out of one model's report; cluster-wide ones stay in.
    assert "no GPU metrics from cluster gpu-l4" in result.stdout
    assert "fraud-detector" not in result.stdout
    everyone = CliRunner().invoke(
        cli_app, ["--config", str(config), "gpu", "--days", "2"], env={"COLUMNS": "200"}
    )
    assert "fraud-detector 1.0.0 in production holds GPU GPU-I-0" in everyone.stdout
