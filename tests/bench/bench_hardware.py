"""A 30-day GPU-hours report for 200 versions: from the stored hourly aggregates vs Prometheus.

    .venv/bin/python tests/bench/bench_hardware.py [--versions 200] [--days 30]
        [--interval 300] [--repeat 5]

Builds a world of versions/2 models with two versions each (the second promoted half-way, so
attribution follows the deployment history) and one A100 per model in production; backfills
`--days` of DCGM history (utilisation, memory, power every `--interval` seconds) into a real
Prometheus with promtool; scrapes it once into SQLite (`hardware.service.scrape`, timed as the
backfill); then times `report.usage` (stored aggregates: what the API, CLI and dashboard call)
against `report.live_usage` (the same report computed from Prometheus directly), and checks
that both give the same GPU-hours per version. Figures are printed, not asserted (DESIGN §6).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlmodel import Session, select  # noqa: E402

from modeldeck.core import db  # noqa: E402
from modeldeck.core.auth.models import SYSTEM  # noqa: E402
from modeldeck.core.clock import FixedClock  # noqa: E402
from modeldeck.core.config import Settings  # noqa: E402
from modeldeck.core.environments import service as environments  # noqa: E402
from modeldeck.core.environments.models import Environment  # noqa: E402
from modeldeck.core.hardware import report, service  # noqa: E402
from modeldeck.core.registry.models import Model, ModelVersion  # noqa: E402
from modeldeck.core.rollouts.models import Deployment, DeploymentState  # noqa: E402
from tests.utils.prometheus import PrometheusServer, create_blocks  # noqa: E402


def settings_for(root: Path, url: str, interval: int) -> Settings:
    return Settings(
        database_url=f"sqlite:///{root}/bench.db",
        data_dir=str(root / "data"),
        clusters=[{"name": "gpu-a100", "gpu_model": "A100", "gpus": 512}],
        environments=[{"name": "production", "cluster": "gpu-a100", "namespace": "ml-prod"}],
        prometheus={"url": url, "step_seconds": interval, "timeout_seconds": 120},
    )


def write_history(
    directory: Path, models: int, t0: float, samples: int, interval: int
) -> list[Path]:
    """OpenMetrics, streamed, one file per UTC day (see tests/utils/prometheus.backfill):
    one A100 per model, its pod named after the model."""
    metrics = (
        ("DCGM_FI_DEV_GPU_UTIL", lambda g, i: (g * 7 + i) % 90 + 5),
        ("DCGM_FI_DEV_FB_USED", lambda g, i: 20000 + (i % 50) * 100),
        ("DCGM_FI_DEV_FB_FREE", lambda g, i: 61920 - (i % 50) * 100),
        ("DCGM_FI_DEV_POWER_USAGE", lambda g, i: 100 + (g + i) % 200),
    )
    days: dict[int, list[int]] = {}
    for i in range(samples):
        days.setdefault(int((t0 + i * interval + 30) // 86400), []).append(i)
    files = []
    for day, indexes in sorted(days.items()):
        path = directory / f"history-{day}.om"
        with path.open("w") as out:
            for name, value in metrics:
                out.write(f"# TYPE {name} gauge\n")
                for g in range(models):
                    labels = (
                        f'Hostname="n{g // 8}",UUID="GPU-{g:05d}",cluster="gpu-a100",'
                        f'gpu="{g % 8}",modelName="NVIDIA A100-SXM4-80GB",'
                        f'namespace="ml-prod",pod="model-{g:03d}-7d9f8-x{g:03d}"'
                    )
                    out.writelines(
                        f"{name}{{{labels}}} {value(g, i)} {t0 + i * interval + 30:.0f}\n"
                        for i in indexes
                    )
            out.write("# EOF\n")
        files.append(path)
    return files


def seed(settings: Settings, models: int, t0: datetime, days: int) -> None:
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    with Session(engine) as session:
        environments.sync(session, settings, actor=SYSTEM)
        env = session.exec(select(Environment)).one()
        switch = t0 + timedelta(days=days / 2)
        for g in range(models):
            model = Model(name=f"model-{g:03d}")
            session.add(model)
            session.flush()
            v1 = ModelVersion(model_id=model.id, version="1.0.0")
            v2 = ModelVersion(model_id=model.id, version="2.0.0")
            session.add_all([v1, v2])
            session.flush()
            session.add_all(
                [
                    Deployment(
                        model_id=model.id,
                        environment_id=env.id,
                        version_id=v1.id,
                        state=DeploymentState.superseded,
                        requested_by="bench",
                        activated_at=t0 - timedelta(days=1),
                        finished_at=switch,
                    ),
                    Deployment(
                        model_id=model.id,
                        environment_id=env.id,
                        version_id=v2.id,
                        state=DeploymentState.active,
                        requested_by="bench",
                        activated_at=switch,
                    ),
                ]
            )
        session.commit()
    engine.dispose()


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--interval", type=int, default=300, help="seconds between samples")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    models = args.versions // 2
    samples = args.days * 86400 // args.interval
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    t0 = end - timedelta(days=args.days)
    clock = FixedClock(end + timedelta(minutes=1))

    with tempfile.TemporaryDirectory(prefix="bench-hardware-") as tmp:
        root = Path(tmp)
        began = time.perf_counter()
        files = write_history(root, models, t0.timestamp(), samples, args.interval)
        server = PrometheusServer(root / "prom")
        server.data_dir.mkdir(parents=True)
        for path in files:
            create_blocks(path, server.data_dir)
        total = models * samples * 4
        print(
            f"history: {models} GPUs × {args.days} days × {samples} samples × 4 metrics "
            f"= {total:,} samples, backfilled in {time.perf_counter() - began:.1f} s",
            flush=True,
        )
        with server:
            settings = settings_for(root, server.url, args.interval)
            seed(settings, models, t0, args.days)
            engine = db.make_engine(settings.database_url)
            with Session(engine, expire_on_commit=False) as session:
                scrape_s, result = timed(
                    lambda: service.scrape(
                        session, settings=settings, start=t0, end=end, clock=clock
                    ),
                    1,
                )
                print(
                    f"scrape into the database: {scrape_s[0]:.2f} s, {result.rows:,} hourly "
                    f"rows, {result.queries} queries, ≤ {result.max_points_per_query} points "
                    "per series"
                )

                def stored() -> report.HardwareReport:
                    return report.usage(session, settings=settings, start=t0, end=end, clock=clock)

                def live() -> report.HardwareReport:
                    return report.live_usage(
                        session, settings=settings, start=t0, end=end, clock=clock
                    )

                db_times, db_report = timed(stored, args.repeat)
                prom_times, prom_report = timed(live, max(1, args.repeat // 2))
            engine.dispose()

    versions = len(db_report.versions)
    same = {(v.model, v.version): v.gpu_hours for v in db_report.versions} == {
        (v.model, v.version): v.gpu_hours for v in prom_report.versions
    }
    db_med, prom_med = statistics.median(db_times), statistics.median(prom_times)
    print(
        f"{args.days}-day GPU-hours report, {versions} versions, "
        f"{db_report.gpu_hours:,.0f} GPU-hours, same GPU-hours per version: {same}"
    )
    print(
        f"  from stored aggregates: median {db_med * 1000:.0f} ms "
        f"(min {min(db_times) * 1000:.0f}, n={len(db_times)})"
    )
    print(
        f"  from Prometheus:        median {prom_med * 1000:.0f} ms "
        f"(min {min(prom_times) * 1000:.0f}, n={len(prom_times)})"
    )
    print(f"  ratio: stored aggregates are {prom_med / db_med:.1f}x faster")


if __name__ == "__main__":
    main()
