"""GPU metrics for the demo: the demo dcgm-exporter, a real Prometheus, three days of history.

The hardware page reads what `hardware.service.scrape` stored from Prometheus, exactly as in
production. The demo runs Prometheus (when it is installed) scraping the demo exporter, and
backfills the last three days with `promtool tsdb create-blocks-from openmetrics`, sampling the
exporter's own collector at past times, so the idle-GPU alert (6 idle hours) fires while the
world is built instead of hours later. The timeline has no rollout in its last three days, so
the pods the exporter shows now are the pods of the whole backfill.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core.cli.up import Child
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.demo import world
from modeldeck.core.errors import BackendUnavailable
from modeldeck.core.hardware import exporter
from modeldeck.core.hardware import service as hardware
from modeldeck.core.hardware.models import ScrapeResult

BACKFILL = timedelta(hours=72)
SAMPLE_SECONDS = 300  # backfill resolution; the demo's prometheus.step_seconds
SCRAPE_INTERVAL = "60s"
BINARIES = ("prometheus", "promtool")


def missing_binaries() -> list[str]:
    """What is missing to run Prometheus here (empty: all there)."""
    return [b for b in BINARIES if shutil.which(b) is None]


def start_exporter(
    settings: Settings, engine: Engine, port: int
) -> tuple[WSGIServer, threading.Thread]:
    """The demo dcgm-exporter on 127.0.0.1:port, in this process."""
    return exporter.serve(
        settings, engine, host="127.0.0.1", port=port, idle_model=world.IDLE_GPU_MODEL
    )


def prometheus_child(base: Path, *, port: int, exporter_port: int) -> Child:
    """Prometheus scraping the exporter, its data kept in base/prometheus."""
    root = base / "prometheus"
    (root / "data").mkdir(parents=True, exist_ok=True)
    config = root / "prometheus.yml"
    config.write_text(
        "# Written by `modeldeck demo`: scrapes the demo GPU exporter.\n"
        f"global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  scrape_timeout: 10s\n"
        "scrape_configs:\n  - job_name: dcgm-exporter\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n",
        encoding="utf-8",
    )
    argv = [
        str(shutil.which("prometheus") or "prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=30d",
        "--log.level=warn",
    ]
    url = f"http://127.0.0.1:{port}"
    return Child("prometheus", argv, health_url=f"{url}/-/ready", url=url)


def backfill(settings: Settings, engine: Engine, base: Path, *, end: datetime) -> int:
    """Write the last BACKFILL of exporter readings into Prometheus' data dir (before it
    starts: blocks are loaded at start-up). Returns the number of samples."""
    clock = FixedClock(end - BACKFILL)
    collector = exporter.DemoGpuCollector(
        settings, engine, clock=clock, idle_model=world.IDLE_GPU_MODEL, refresh_seconds=1e9
    )
    series: dict[str, dict[tuple[tuple[str, str], ...], list[str]]] = defaultdict(
        lambda: defaultdict(list)
    )
    count = 0
    while clock.now < end:
        stamp = clock.now.timestamp()
        for family in collector.collect():
            for sample in family.samples:
                labels = tuple(sorted((k, v) for k, v in sample.labels.items() if v != ""))
                series[sample.name][labels].append(f"{sample.value!r} {stamp:.3f}")
                count += 1
        clock.advance(seconds=SAMPLE_SECONDS)
    source = base / "prometheus" / "backfill.om"
    source.parent.mkdir(parents=True, exist_ok=True)
    with source.open("w", encoding="utf-8") as out:
        for name, members in series.items():
            out.write(f"# TYPE {name} gauge\n")
            for labels, samples in members.items():
                head = name + "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"
                out.writelines(f"{head} {s}\n" for s in samples)
        out.write("# EOF\n")
    done = subprocess.run(
        [
            str(shutil.which("promtool") or "promtool"),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(source),
            str(base / "prometheus" / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    source.unlink(missing_ok=True)
    if done.returncode != 0:
        raise BackendUnavailable(
            f"promtool could not backfill the GPU history: {done.stderr.strip()[-500:]}"
        )
    return count


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def scrape_history(settings: Settings, engine: Engine, *, end: datetime) -> ScrapeResult:
    """Aggregate the backfilled hours into the database (what the hourly job does live)."""
    with Session(engine, expire_on_commit=False) as session:
        return hardware.scrape(
            session, settings=settings, start=end - BACKFILL, end=end, clock=FixedClock(end)
        )
