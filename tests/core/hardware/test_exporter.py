"""The demo exporter, scraped live by a real Prometheus, then by `hardware.service.scrape`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from modeldeck.core.alerts.models import OPEN, Alert
from modeldeck.core.clock import utcnow
from modeldeck.core.config import Settings
from modeldeck.core.environments.models import Environment
from modeldeck.core.hardware import exporter, service
from modeldeck.core.hardware.models import GpuUsageHourly
from modeldeck.core.rollouts.models import Deployment, DeploymentState
from tests.conftest import make_settings
from tests.core.hardware.world import _version
from tests.utils.prometheus import PrometheusServer
from tests.utils.servers import free_port, wait_until

STEP = 2  # seconds; Prometheus scrapes the exporter every second


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)  # the exporter fixture adds the Prometheus URL


@pytest.fixture
def live(session: Session) -> dict[str, tuple[int, int]]:
    """fraud-detector 1.0.0 in production and staging, search-ranker (idle) in staging."""
    envs = {e.name: e.id for e in session.exec(select(Environment)).all()}
    ids = {
        key: _version(session, *key.split("@"))
        for key in ("fraud-detector@1.0.0", "fraud-detector@2.0.0", "search-ranker@3.1.0")
    }
    since = utcnow() - timedelta(days=1)
    for key, env in (
        ("fraud-detector@1.0.0", "production"),
        ("fraud-detector@1.0.0", "staging"),
        ("search-ranker@3.1.0", "staging"),
    ):
        session.add(
            Deployment(
                model_id=ids[key][0],
                version_id=ids[key][1],
                environment_id=envs[env],
                state=DeploymentState.active,
                requested_by="t",
                activated_at=since,
            )
        )
    session.commit()
    return ids


@pytest.fixture
def scraped_live(
    tmp_path: Path, settings: Settings, engine: Engine, live: dict[str, tuple[int, int]]
) -> Iterator[tuple[str, PrometheusServer]]:
    port = free_port()
    server, _ = exporter.serve(settings, engine, port=port, refresh_seconds=0.5)
    try:
        with PrometheusServer(
            tmp_path / "prom", scrape_targets=[f"127.0.0.1:{port}"], scrape_interval="1s"
        ) as prom:
            yield f"http://127.0.0.1:{port}/metrics", prom
    finally:
        server.shutdown()
        server.server_close()


def _settings(settings: Settings, prom: PrometheusServer) -> Settings:
    return settings.model_copy(
        update={
            "prometheus": settings.prometheus.model_copy(
                update={"url": prom.url, "step_seconds": STEP, "idle_hours": 5 / 3600}
            )
        }
    )


def _wait_samples(prom: PrometheusServer, pod_prefix: str, count: int) -> None:
    wait_until(
        lambda: any(
            float(r["value"][1]) >= count
            for r in prom.query(
                f'count_over_time(DCGM_FI_DEV_GPU_UTIL{{pod=~"{pod_prefix}.*"}}[5m])'
            )
        ),
        timeout=60,
        interval=0.25,
        what=f"{count} scraped samples of {pod_prefix}",
    )


def test_exporter_serves_dcgm_shaped_series(scraped_live: tuple[str, PrometheusServer]) -> None:
    url, _ = scraped_live
    body = httpx.get(url, timeout=5, trust_env=False).text
    util = [line for line in body.splitlines() if line.startswith("DCGM_FI_DEV_GPU_UTIL{")]
    assert len(util) == 16  # 8 A100 + 8 L4 (make_settings clusters)
    held = [line for line in util if 'pod="' in line and 'pod=""' not in line]
    assert len(held) == 3
    assert any(
        'pod="fraud-detector-' in line
        and 'namespace="ml-prod"' in line
        and 'modelName="NVIDIA A100-SXM4-80GB"' in line
        for line in held
    )
    for name in (
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    ):
        assert f"\n{name}{{" in body


def test_live_scrape_attributes_versions_and_flags_the_idle_gpu(
    scraped_live: tuple[str, PrometheusServer],
    session: Session,
    settings: Settings,
    live: dict[str, tuple[int, int]],
) -> None:
    _, prom = scraped_live
    started = utcnow()
    _wait_samples(prom, "search-ranker", 12)
    cfg = _settings(settings, prom)
    end = utcnow()
    result = service.scrape(session, settings=cfg, start=started - timedelta(minutes=1), end=end)
    assert result.rows > 0 and result.series == 16

    rows = session.exec(
        select(GpuUsageHourly).where(col(GpuUsageHourly.version_id).is_not(None))
    ).all()
    held = {(r.version_id, r.environment_id, r.attribution) for r in rows}
    envs = {e.name: e.id for e in session.exec(select(Environment)).all()}
    fraud1, ranker = live["fraud-detector@1.0.0"][1], live["search-ranker@3.1.0"][1]
    assert held == {
        (fraud1, envs["production"], "pod_name"),
        (fraud1, envs["staging"], "pod_name"),
        (ranker, envs["staging"], "pod_name"),
    }

    # By hand from the raw samples Prometheus stored for the idle GPU.
    idle = [r for r in rows if r.version_id == ranker]
    raw = prom.query(
        'DCGM_FI_DEV_GPU_UTIL{pod=~"search-ranker.*"}[10m]', time=int(result.window_end.timestamp())
    )
    values = [float(v) for _, v in raw[0]["values"]]
    first = float(raw[0]["values"][0][0])
    mean = sum(r.util_mean * r.samples for r in idle) / sum(r.samples for r in idle)
    assert mean == pytest.approx(float(np.mean(values)), abs=0.3) and mean < 5
    held_seconds = sum(r.gpu_seconds for r in idle)
    assert held_seconds == pytest.approx(result.window_end.timestamp() - first, abs=2 * STEP)

    alerts = session.exec(select(Alert).where(col(Alert.status).in_(OPEN))).all()
    idle_alerts = [a for a in alerts if a.rule == "gpu_idle"]
    assert [a.version_id for a in idle_alerts] == [ranker]
    assert "search-ranker 3.1.0 in staging" in idle_alerts[0].summary


def test_live_promotion_moves_gpu_time_to_the_new_version(
    scraped_live: tuple[str, PrometheusServer],
    session: Session,
    settings: Settings,
    live: dict[str, tuple[int, int]],
) -> None:
    _, prom = scraped_live
    _wait_samples(prom, "fraud-detector", 6)
    prod = session.exec(select(Environment).where(Environment.name == "production")).one()
    old = session.exec(select(Deployment).where(Deployment.environment_id == prod.id)).one()
    switched = utcnow()
    old.state, old.finished_at = DeploymentState.superseded, switched
    model_id, v2 = live["fraud-detector@2.0.0"]
    session.add(old)
    session.add(
        Deployment(
            model_id=model_id,
            version_id=v2,
            environment_id=prod.id,
            state=DeploymentState.active,
            requested_by="t",
            activated_at=switched,
        )
    )
    session.commit()
    wait_until(
        lambda: (
            len(
                {
                    r["metric"]["pod"]
                    for r in prom.query(
                        'DCGM_FI_DEV_GPU_UTIL{namespace="ml-prod", pod=~"fraud-detector.*"}[30s]'
                    )
                }
            )
            == 2
        ),
        timeout=60,
        interval=0.25,
        what="the new pod of fraud-detector 2.0.0",
    )
    _wait_samples(prom, "fraud-detector", 20)
    service.scrape(
        session,
        settings=_settings(settings, prom),
        start=switched - timedelta(minutes=5),
        end=utcnow(),
    )
    seconds = {
        r.version_id: r.gpu_seconds
        for r in session.exec(
            select(GpuUsageHourly).where(GpuUsageHourly.environment_id == prod.id)
        ).all()
    }
    assert set(seconds) == {live["fraud-detector@1.0.0"][1], v2}
    assert seconds[v2] > 0
    pods = {
        r.pod
        for r in session.exec(select(GpuUsageHourly).where(GpuUsageHourly.version_id == v2)).all()
    }
    assert len(pods) == 1 and next(iter(pods)).startswith("fraud-detector-")


def test_world_without_deployments_has_only_free_gpus(session: Session, settings: Settings) -> None:
    gpus = exporter.world(session, settings.clusters)
    assert len(gpus) == 16 and not any(g.pod for g in gpus)
    assert {g.spec.name for g in gpus} == {"NVIDIA A100-SXM4-80GB", "NVIDIA L4"}
    assert all(g.utilisation(datetime(2026, 11, 1, tzinfo=UTC).timestamp()) == 0 for g in gpus)
