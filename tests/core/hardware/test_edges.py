"""Series real exporters produce that the 48 h world does not: a pod that stopped just before
the window (energy samples only), MIG slices without GPU_UTIL, GPUs without UUID and node, a
pod rescheduled to another GPU; plus errors nobody planned for.

Edge world (cluster gpu-a100, namespace ml-prod, 4 h from T0, one sample per minute):
GPU-E-0  fraud-detector-aaa-1 minutes 0..119, with the energy counter; then nothing
GPU-E-3  fraud-detector-bbb-2 minutes 120..239 (the same Deployment, rescheduled)
gpu "0"  no UUID, no Hostname: eta-regressor-x-1 and eta-regressor-y-2 (two real GPUs)
GPU-E-2  MIG slices 1 and 2: churn-predictor-m-1 / -m-2, engine activity 0.4, no GPU_UTIL
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.hardware import jobs, report, service
from modeldeck.core.hardware.models import FindingKind, GpuUsageHourly, HardwareScrape
from modeldeck.core.scheduler import JobContext
from tests.conftest import make_settings
from tests.core.hardware import world
from tests.core.hardware.test_faults import with_prometheus
from tests.utils.prometheus import PrometheusServer, Series, canned_api
from tests.utils.servers import serve_asgi

# The module-scoped fixture is built once: keep these tests on one xdist worker.
pytestmark = pytest.mark.xdist_group("hardware-edges")

HOURS = 4
A100 = world.A100


def _t0() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS)


def _series(
    t0: float, labels: dict[str, str], minutes: range, values: dict[str, float]
) -> list[Series]:
    base = {"cluster": "gpu-a100", "modelName": A100, "namespace": "ml-prod", "job": "dcgm"}
    return [
        Series(name, base | labels, [(t0 + 60 * m + 30, value) for m in minutes])
        for name, value in values.items()
    ]


def edge_history(t0: datetime) -> list[Series]:
    ts = t0.timestamp()
    gauges = {
        "DCGM_FI_DEV_GPU_UTIL": 50.0,
        "DCGM_FI_DEV_FB_USED": 1000.0,
        "DCGM_FI_DEV_FB_FREE": 80920.0,
        "DCGM_FI_DEV_POWER_USAGE": 100.0,
        "DCGM_FI_DEV_GPU_TEMP": 50.0,
    }
    first, second = range(0, 120), range(120, HOURS * 60)
    out = _series(
        ts,
        {"UUID": "GPU-E-0", "gpu": "0", "Hostname": "e-n1", "pod": "fraud-detector-aaa-1"},
        first,
        gauges,
    )
    out.append(
        Series(
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
            {
                "cluster": "gpu-a100",
                "modelName": A100,
                "namespace": "ml-prod",
                "UUID": "GPU-E-0",
                "gpu": "0",
                "Hostname": "e-n1",
                "pod": "fraud-detector-aaa-1",
            },
            [(ts + 60 * m + 30, 1e9 + m * 6e6) for m in first],
        )
    )
    out += _series(
        ts,
        {"UUID": "GPU-E-3", "gpu": "3", "Hostname": "e-n1", "pod": "fraud-detector-bbb-2"},
        second,
        gauges,
    )
    for pod in ("eta-regressor-x-1", "eta-regressor-y-2"):
        out += _series(ts, {"gpu": "0", "pod": pod}, range(HOURS * 60), gauges)
    for slice_, pod in (("1", "churn-predictor-m-1"), ("2", "churn-predictor-m-2")):
        out += _series(
            ts,
            {"UUID": "GPU-E-2", "gpu": "2", "Hostname": "e-n2", "GPU_I_ID": slice_, "pod": pod},
            range(HOURS * 60),
            {
                "DCGM_FI_PROF_GR_ENGINE_ACTIVE": 0.4,
                "DCGM_FI_DEV_FB_USED": 2000.0,
                "DCGM_FI_DEV_FB_FREE": 8000.0,
            },
        )
    return out


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrometheusServer, datetime]]:
    t0 = _t0()
    with PrometheusServer(tmp_path_factory.mktemp("edge"), backfill=edge_history(t0)) as server:
        yield server, t0


@pytest.fixture
def edge_settings(tmp_path: Path, edge: tuple[PrometheusServer, datetime]) -> Settings:
    return make_settings(tmp_path, prometheus={"url": edge[0].url, "timeout_seconds": 10})


@pytest.fixture
def edge_clock(edge: tuple[PrometheusServer, datetime]) -> FixedClock:
    return FixedClock(edge[1] + timedelta(hours=HOURS, minutes=5))


def _seconds(session: Session, **where: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for r in session.exec(select(GpuUsageHourly)).all():
        if all(getattr(r, k) == v for k, v in where.items()):
            out[(r.gpu_uuid, r.pod)] = out.get((r.gpu_uuid, r.pod), 0.0) + r.gpu_seconds
    return out


def test_a_pod_that_stopped_just_before_the_window_does_not_crash_the_scrape(
    session: Session,
    edge_settings: Settings,
    edge: tuple[PrometheusServer, datetime],
    edge_clock: FixedClock,
) -> None:
    """The energy query starts one step before the gauges: fraud-detector-aaa-1 (gone at
    minute 120) has only an energy sample in the window from 02:00. It holds nothing."""
    world.seed(session, edge[1])
    t0 = edge[1]
    result = service.scrape(
        session,
        settings=edge_settings,
        start=t0 + timedelta(hours=2),
        end=t0 + timedelta(hours=HOURS),
        clock=edge_clock,
    )
    assert result.rows > 0
    seconds = _seconds(session, cluster="gpu-a100")
    assert ("GPU-E-0", "fraud-detector-aaa-1") not in seconds
    assert seconds[("GPU-E-3", "fraud-detector-bbb-2")] == pytest.approx(2 * 3600)
    assert service.status(session, clock=edge_clock).available


def test_mig_slices_without_gpu_util_count_with_engine_activity(
    session: Session,
    edge_settings: Settings,
    edge: tuple[PrometheusServer, datetime],
    edge_clock: FixedClock,
) -> None:
    ids = world.seed(session, edge[1])
    t0 = edge[1]
    service.scrape(
        session, settings=edge_settings, start=t0, end=t0 + timedelta(hours=HOURS), clock=edge_clock
    )
    rows = session.exec(select(GpuUsageHourly).where(GpuUsageHourly.gpu_uuid == "GPU-E-2")).all()
    assert {r.mig_instance for r in rows} == {"1", "2"}
    assert {r.version_id for r in rows} == {ids["churn-predictor@2.0.0"][1]}
    assert sum(r.gpu_seconds for r in rows) == pytest.approx(HOURS * 3600)  # one GPU, split
    assert all(r.shared and r.util_mean == pytest.approx(40.0) for r in rows)


def test_gpus_without_uuid_and_node_stay_apart_and_are_reported(
    session: Session,
    edge_settings: Settings,
    edge: tuple[PrometheusServer, datetime],
    edge_clock: FixedClock,
) -> None:
    ids = world.seed(session, edge[1])
    t0 = edge[1]
    result = service.scrape(
        session, settings=edge_settings, start=t0, end=t0 + timedelta(hours=HOURS), clock=edge_clock
    )
    eta = {
        pod: s
        for (gpu, pod), s in _seconds(session, cluster="gpu-a100").items()
        if pod.startswith("eta-regressor")
    }
    assert eta == {
        "eta-regressor-x-1": pytest.approx(HOURS * 3600),
        "eta-regressor-y-2": pytest.approx(HOURS * 3600),
    }
    rows = session.exec(
        select(GpuUsageHourly).where(GpuUsageHourly.version_id == ids["eta-regressor@1.0.0"][1])
    ).all()
    assert not any(r.shared for r in rows)
    labels = [f.summary for f in result.findings if f.kind == FindingKind.missing_labels]
    assert any("2 GPU series have a gpu index but neither a UUID nor a node" in s for s in labels)


def test_gpu_count_is_gpus_held_at_once_not_every_gpu_a_pod_visited(
    session: Session,
    edge_settings: Settings,
    edge: tuple[PrometheusServer, datetime],
    edge_clock: FixedClock,
) -> None:
    """fraud-detector ran on GPU-E-0 for two hours, then (rescheduled) on GPU-E-3."""
    world.seed(session, edge[1])
    t0, end = edge[1], edge[1] + timedelta(hours=HOURS)
    service.scrape(session, settings=edge_settings, start=t0, end=end, clock=edge_clock)
    rep = report.usage(
        session, settings=edge_settings, start=t0, end=end, clock=edge_clock, predictions={}
    )
    (fraud,) = [v for v in rep.versions if v.model == "fraud-detector"]
    assert fraud.gpu_hours == pytest.approx(HOURS)
    assert (fraud.gpu_count, fraud.gpus_seen) == (1, 2)


def test_an_unexpected_error_is_a_failed_run_that_status_explains(
    engine: Engine, session: Session, settings: Settings, clock: FixedClock
) -> None:
    """A Prometheus answer no real server gives (a sample without a value) raises an error
    the scrape does not expect: it is still recorded, so the status says why and the
    catch-up does not silently retry the same window forever."""
    sample = [[clock().timestamp() - 600]]  # [time] without the value
    series = {"metric": {"__name__": "DCGM_FI_DEV_GPU_UTIL", "UUID": "GPU-X"}, "values": sample}
    with serve_asgi(canned_api([series])) as url:
        broken = with_prometheus(settings, url=url)
        with pytest.raises(ValueError):
            service.scrape(
                session,
                settings=broken,
                start=clock() - timedelta(hours=1),
                end=clock(),
                clock=clock,
            )
        run = session.exec(select(HardwareScrape)).one()
        assert not run.ok and "internal error in the GPU scrape (ValueError" in run.error
        status = service.status(session, clock=clock)
        assert not status.available and "internal error" in status.message

        clock.advance(minutes=10)
        assert jobs.scrape_job(JobContext(engine, broken, clock)) is None  # logged, not raised
    assert len(session.exec(select(HardwareScrape)).all()) == 2
