"""Hardware page: numbers from gpu_usage_hourly, A100 vs L4, findings, Prometheus down."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from modeldeck.core.errors import BackendUnavailable
from modeldeck.core.hardware import service as hardware_service
from modeldeck.core.hardware.models import GpuUsageHourly
from tests.dashboard.conftest import metric, open_page, texts
from tests.dashboard.world import World
from tests.utils.servers import free_port


def stored_hours(engine: Engine, gpu: str) -> float:
    with Session(engine) as s:
        rows = s.exec(
            select(GpuUsageHourly).where(
                col(GpuUsageHourly.version_id).is_not(None),
                col(GpuUsageHourly.gpu_model).contains(gpu),
            )
        ).all()
    return sum(r.gpu_seconds for r in rows) / 3600


def test_usage_cost_and_comparison_match_the_aggregates(
    seeded: World, sqlite_engine: Engine
) -> None:
    at = open_page("hardware")
    a100, l4 = stored_hours(sqlite_engine, "A100"), stored_hours(sqlite_engine, "L4")
    assert (a100, l4) == (120.0, 48.0)
    assert metric(at, "GPU-hours of versions") == f"{a100 + l4:,.1f}"
    cost = (
        a100 * seeded.settings.gpu_cost_per_hour["A100"]
        + l4 * seeded.settings.gpu_cost_per_hour["L4"]
    )
    assert metric(at, "Cost") == f"${cost:,.2f}"
    assert metric(at, "Unattributed GPU-hours") == "120.0"  # mystery-pod-1
    tables = [df.value for df in at.dataframe]
    [usage] = [t for t in tables if "Cost / 1k predictions" in t.columns and "Model" in t]
    assert sorted(zip(usage["Environment"], usage["GPU"], usage["Util %"], strict=True)) == [
        (
            "production",
            "A100",
            60.0,
        ),
        ("staging", "L4", 30.0),
    ]
    [comparison] = [t for t in tables if "Environments" in t.columns]
    assert list(comparison["GPU"]) == ["A100", "L4"]
    assert "fraud-detector 1.1.0" in texts(at)
    said = texts(at)
    assert "holds GPU GPU-a100-7 at 0.4% utilisation" in said  # idle finding
    assert "matches no model target: mystery-pod-1" in said  # why attribution failed
    assert "label the serving pods" in said  # …and how to fix it
    assert "GPU metrics up to date" in said


def test_series_per_cluster_and_per_version(seeded: World) -> None:
    at = open_page("hardware")
    util = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {t["name"] for t in util["data"]} == {"gpu-a100", "gpu-l4"}
    a100 = [t for t in util["data"] if t["name"] == "gpu-a100"][0]
    assert set(a100["y"]) == {31.0}  # fraud at 60 % and the mystery pod at 2 %, per GPU
    at.segmented_control(key="hw_group").set_value("Version").run()
    at.selectbox(key="hw_model").set_value("fraud-detector").run()
    names = {t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
    assert names == {"fraud-detector 1.1.0"}


def test_prometheus_down(seeded: World, sqlite_engine: Engine) -> None:
    """A failed scrape (Prometheus unreachable) turns the banner into 'metrics unavailable
    since …' while the stored aggregates stay on the page."""
    down = seeded.settings.model_copy(
        update={
            "prometheus": seeded.settings.prometheus.model_copy(
                update={"url": f"http://127.0.0.1:{free_port()}", "timeout_seconds": 2}
            )
        }
    )
    with Session(sqlite_engine) as s, pytest.raises(BackendUnavailable):
        hardware_service.scrape(
            s, settings=down, start=seeded.now - timedelta(hours=1), end=seeded.now
        )
    at = open_page("hardware")
    warning = " ".join(w.value for w in at.warning)
    assert "metrics unavailable since" in warning
    assert "showing stored data until" in warning
    assert metric(at, "GPU-hours of versions") == "168.0"


def test_no_gpu_data_yet(sqlite_engine: Engine, dash_settings: Any) -> None:
    from tests.dashboard import world

    world.build(sqlite_engine, dash_settings, gpu=False)
    at = open_page("hardware")
    assert "no GPU metrics collected yet" in " ".join(w.value for w in at.warning)
    assert "No GPU usage stored" in texts(at)
    assert metric(at, "Cost") == "—"
