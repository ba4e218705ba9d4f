"""Hardware page: numbers from gpu_usage_hourly, A100 vs L4, findings, Prometheus down."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from modeldeck.core.errors import BackendUnavailable
from modeldeck.core.hardware import service as hardware_service
from modeldeck.core.hardware.models import GpuUsageHourly
from modeldeck.core.rollouts.models import Deployment
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


def test_findings_follow_the_model_and_say_how_bad_they_are(seeded: World) -> None:
    at = open_page("hardware")
    idle = "search-ranker 3.1.0 holds GPU GPU-a100-7"
    assert any(idle in w.value for w in at.warning)
    assert any("matches no model target" in w.value for w in at.warning)
    # An explanation (no pod labels: pods matched by name) is not an error box.
    assert any("attributed by their names only" in i.value for i in at.info)
    assert not at.error
    assert metric(at, "Idle-GPU findings") == "1"
    at.selectbox(key="hw_model").set_value("fraud-detector").run()
    assert idle not in texts(at)  # another model's idle GPU
    assert metric(at, "Idle-GPU findings") == "0"
    assert "matches no model target: mystery-pod-1" in texts(at)  # about the cluster: stays


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


def test_whole_fleet_on_sqlite_says_it_shows_31_days_and_a_model_shows_the_range(
    seeded: World, sqlite_engine: Engine
) -> None:
    """Summing a year of every GPU is over SQLite's page budget, so the fleet-wide view is
    cut to 31 days: the page says so where the numbers are, and a model shows the range."""
    with Session(sqlite_engine) as s:
        (recent,) = s.exec(
            select(GpuUsageHourly).where(GpuUsageHourly.gpu_uuid == "GPU-a100-0").limit(1)
        ).all()
        old = {k: v for k, v in recent.model_dump().items() if k not in ("id", "hour")}
        s.add_all(
            GpuUsageHourly(hour=seeded.now - timedelta(days=60, hours=h), **old) for h in range(10)
        )
        s.commit()

    at = open_page("hardware", state={"range": "90d"})
    [notice] = [i.value for i in at.info if "Showing the last 31 days" in i.value]
    assert "not the last 90 days" in notice and "Pick a model" in notice
    assert metric(at, "GPU-hours of versions") == "168.0"  # the 10 old hours are not in it

    at.selectbox(key="hw_model").set_value("fraud-detector").run()
    assert not [i for i in at.info if "Showing the last" in i.value]
    assert metric(at, "GPU-hours of versions") == "178.0"

    at = open_page("hardware", state={"range": "30d"})  # within 31 days: nothing is cut
    assert not [i for i in at.info if "Showing the last" in i.value]


def test_a_gpu_without_utilisation_readings_shows_no_utilisation_not_zero(
    seeded: World, sqlite_engine: Engine
) -> None:
    """A MIG slice exporting only memory: its GPU-hours and memory count, its utilisation is
    blank (unknown), and the fleet's KPIs still add up."""
    with Session(sqlite_engine) as s:
        dep = s.get(Deployment, seeded.deployments["churn-staging-2.0.0"])
        assert dep is not None
        s.add_all(
            GpuUsageHourly(
                hour=seeded.now - timedelta(hours=h),
                cluster="gpu-l4",
                node="l4-node-2",
                gpu_uuid="GPU-l4-9",
                mig_instance="1",
                gpu_model="NVIDIA L4",
                namespace="ml-staging",
                pod="churn-predictor-m-1",
                model_id=dep.model_id,
                version_id=dep.version_id,
                environment_id=dep.environment_id,
                attribution="pod_labels",
                memory_used_mib=4096.0,
                memory_total_mib=5632.0,
                gpu_seconds=3600.0,
                samples=0,  # no utilisation reading at all
            )
            for h in range(1, 5)
        )
        s.commit()
    at = open_page("hardware")
    assert metric(at, "GPU-hours of versions") == "172.0"
    tables = [df.value for df in at.dataframe]
    [usage] = [t for t in tables if "Cost / 1k predictions" in t.columns and "Model" in t]
    [churn] = usage[usage["Model"] == "churn-predictor"].to_dict("records")
    assert churn["GPU-hours"] == 4.0 and churn["Memory GiB"] == 4.0
    assert pd.isna(churn["Util %"]) and pd.isna(churn["Util p95 %"])
