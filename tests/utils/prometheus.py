"""A real Prometheus server for tests: history backfilled with promtool, live scrape targets.

    with PrometheusServer(tmp_path, backfill=series, scrape_targets=["127.0.0.1:9400"]) as prom:
        settings = make_settings(tmp_path, prometheus={"url": prom.url})

History goes in with `promtool tsdb create-blocks-from openmetrics` before the server starts
(blocks in the data dir are loaded at start-up); the server runs as a user process on a free
loopback port with its own data dir and is killed afterwards. It can also be paused
(SIGSTOP) to play a Prometheus that accepts connections but never answers.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

from tests.utils.servers import free_port, wait_until


def require_prometheus() -> None:
    """Skip when the binaries are missing locally; in CI (CI=true) that is a failure."""
    missing = [b for b in ("prometheus", "promtool") if shutil.which(b) is None]
    if not missing:
        return
    why = f"{' and '.join(missing)} not installed (apt-get install prometheus)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why)
    pytest.skip(why)


@dataclass
class Series:
    """One time series to backfill: samples are (unix seconds, value)."""

    name: str
    labels: dict[str, str]
    samples: list[tuple[float, float]] = field(default_factory=list)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write_openmetrics(path: Path, series: Iterable[Series]) -> Path:
    """OpenMetrics text: one family per metric name, samples in time order, `# EOF`."""
    families: dict[str, list[Series]] = defaultdict(list)
    for s in series:
        families[s.name].append(s)
    with path.open("w", encoding="utf-8") as out:
        for name, members in families.items():
            out.write(f"# TYPE {name} gauge\n")
            for s in members:
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(s.labels.items()))
                head = f"{name}{{{labels}}}" if labels else name
                for ts, value in sorted(s.samples):
                    out.write(f"{head} {value!r} {ts:.3f}\n")
        out.write("# EOF\n")
    return path


def create_blocks(source: Path, data_dir: Path) -> None:
    """promtool tsdb create-blocks-from openmetrics SOURCE DATA_DIR, or RuntimeError."""
    done = subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", str(source), str(data_dir)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"promtool failed ({done.returncode}): {done.stderr[-2000:]}")


def backfill(data_dir: Path, series: Iterable[Series], work_dir: Path) -> None:
    """Write TSDB blocks into `data_dir` (before Prometheus starts), one promtool run per day.

    promtool (2.42) re-reads its whole input once per 2-hour block, so one file for 30 days
    costs 360 passes; per-day files (days are whole blocks) cost 12 passes over a day each.
    """
    by_day: dict[int, list[Series]] = defaultdict(list)
    for s in series:
        days: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for sample in s.samples:
            days[int(sample[0] // 86400)].append(sample)
        for day, samples in days.items():
            by_day[day].append(Series(s.name, s.labels, samples))
    for day, members in sorted(by_day.items()):
        create_blocks(write_openmetrics(work_dir / f"backfill-{day}.om", members), data_dir)


class PrometheusServer:
    """A Prometheus process on 127.0.0.1 with a temp data dir; use as a context manager."""

    def __init__(
        self,
        root: Path,
        *,
        backfill: Iterable[Series] | None = None,
        scrape_targets: list[str] | None = None,
        scrape_interval: str = "1s",
        port: int | None = None,
    ) -> None:
        require_prometheus()
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir = root / "data"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.scrape_targets = scrape_targets or []
        self.scrape_interval = scrape_interval
        self._backfill = backfill
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = root / "prometheus.log"

    def _config(self) -> Path:
        lines = [
            "global:",
            f"  scrape_interval: {self.scrape_interval}",
            f"  scrape_timeout: {self.scrape_interval}",
            "scrape_configs:",
        ]
        if self.scrape_targets:
            targets = ", ".join(f'"{t}"' for t in self.scrape_targets)
            lines += [
                "  - job_name: dcgm-exporter",
                f"    static_configs: [{{targets: [{targets}]}}]",
            ]
        else:
            lines[-1] = "scrape_configs: []"
        path = self.root / "prometheus.yml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> PrometheusServer:
        if self._backfill is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            backfill(self.data_dir, self._backfill, self.root)
        config = self._config()
        self.process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=3650d",
                "--log.level=warn",
            ],
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, timeout=30, interval=0.05, what=f"Prometheus on {self.url}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"Prometheus exited with {self.process.returncode}: "
                f"{self.log_path.read_text()[-2000:]}"
            )
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.resume()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        """Keep the socket open but stop answering: a Prometheus that hangs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def query(self, promql: str, **params: Any) -> list[dict[str, Any]]:
        """An instant query (for the tests' own checks)."""
        answer = httpx.get(
            f"{self.url}/api/v1/query",
            params={"query": promql, **params},
            timeout=10,
            trust_env=False,
        )
        answer.raise_for_status()
        result: list[dict[str, Any]] = answer.json()["data"]["result"]
        return result

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def canned_api(result: list[dict[str, Any]]) -> Any:
    """A Prometheus HTTP API (an ASGI app for tests.utils.servers.serve_asgi) that answers
    every range query with `result` and knows the metric names in it: for answers a real
    Prometheus would never give (a malformed sample)."""
    from fastapi import FastAPI

    app = FastAPI()
    metrics = sorted({str(r.get("metric", {}).get("__name__", "")) for r in result} - {""})

    @app.get("/api/v1/query_range")
    def query_range() -> dict[str, Any]:
        return {"status": "success", "data": {"resultType": "matrix", "result": result}}

    @app.get("/api/v1/label/__name__/values")
    def names() -> dict[str, Any]:
        return {"status": "success", "data": metrics}

    return app
