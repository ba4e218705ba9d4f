"""API read latency with 100 concurrent clients (DESIGN §8: p99 < 50 ms, SQLite and Postgres).

    .venv/bin/python tests/bench/bench_api.py [--backend sqlite,postgres] [--clients 100]
        [--duration 20] [--think-ms 500] [--workers 1] [--models 200] [--saturate]

The API runs as in production, in its own process: `modeldeck api` (uvicorn) on a database
seeded with `--models` models × 5 versions, two environments, a deployment history and the
audit trail those writes left. This process plays the clients: `--clients` keep-alive HTTP/1.1
connections (a minimal asyncio client, so the load generator costs the shared CPU as little as
possible), each sending a mix of read requests (model list, model, versions, status, history,
environments, audit, whoami) with a bearer token, pausing a random 0..2×`--think-ms` between
requests like a dashboard or bot user does. `--saturate` also runs the same clients with no
pause at all, which measures throughput (latency is then queueing: clients / throughput).
Latency is measured from the first byte sent to the last byte received; the first 3 s are a
warm-up and not counted. Figures are printed, not asserted (DESIGN §6).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlmodel import Session  # noqa: E402

from modeldeck.core import db  # noqa: E402
from modeldeck.core.auth import service as auth  # noqa: E402
from modeldeck.core.auth.models import SYSTEM, Role  # noqa: E402
from modeldeck.core.config import Settings  # noqa: E402
from modeldeck.core.environments import service as environments  # noqa: E402
from modeldeck.core.registry import service as registry  # noqa: E402
from modeldeck.core.registry.models import ModelCreate, ModelVersionCreate  # noqa: E402
from modeldeck.core.rollouts.models import Deployment, DeploymentState, Via  # noqa: E402
from tests.utils import db as testdb  # noqa: E402
from tests.utils.servers import free_port, serve_asgi, wait_until  # noqa: E402

MODELDECK = Path(sys.executable).with_name("modeldeck")
TARGET_P99_MS = 50.0
WARMUP_S = 3.0


def bench_settings(database_url: str, data_dir: Path) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "data_dir": str(data_dir / "data"),
        "log_format": "json",
        "clusters": [{"name": "gpu-l4", "gpu_model": "L4"}, {"name": "gpu-a100"}],
        "environments": [
            {"name": "staging", "cluster": "gpu-l4"},
            {"name": "production", "cluster": "gpu-a100", "requires_previous": "staging"},
        ],
    }


def model_names(models: int) -> list[str]:
    return [f"model-{i:04d}" for i in range(models)]


def seed(settings: Settings, models: int) -> str:
    """Migrate, then write a registry and history through the service layer; a viewer token."""
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with Session(engine, expire_on_commit=False) as session:
        envs = environments.sync(session, settings)
        for i, name in enumerate(model_names(models)):
            for v in range(5):
                registry.register_version(
                    session,
                    model_name=name,
                    actor=SYSTEM,
                    data=ModelVersionCreate(
                        version=f"1.{v}.0",
                        image=f"ghcr.io/acme/{name}:1.{v}",
                        metrics={"auc": 0.8 + v / 100},
                    ),
                    create_model_if_missing=ModelCreate(name=name, team=f"team-{i % 7}"),
                )
            model = registry.get_model(session, name)
            versions = registry.list_versions(session, name).data
            for env in envs:
                for n, version in enumerate(reversed(versions[:3])):
                    began = start + timedelta(days=10 * n)
                    last = n == 2
                    assert model.id is not None and env.id is not None
                    session.add(
                        Deployment(
                            model_id=model.id,
                            environment_id=env.id,
                            version_id=version.id,
                            state=DeploymentState.active if last else DeploymentState.superseded,
                            requested_by="bench",
                            requested_via=Via.api,
                            started_at=began,
                            activated_at=began,
                            finished_at=None if last else began + timedelta(days=10),
                        )
                    )
            session.commit()
        token = auth.create_token(session, name="bench-viewer", role=Role.viewer, actor=SYSTEM)
    engine.dispose()
    return token.token


def request_mix(models: int) -> list[tuple[str, str]]:
    """(label, path) pairs; the list's proportions are the traffic's."""
    names = model_names(models)
    mix: list[tuple[str, str]] = []
    for name in random.Random(7).sample(names, min(len(names), 40)):
        mix += [
            ("GET /models/{name}", f"/api/v1/models/{name}"),
            ("GET /models/{name}/versions", f"/api/v1/models/{name}/versions"),
            ("GET /status?model=", f"/api/v1/status?model={name}"),
            ("GET /deployments?model=", f"/api/v1/deployments?model={name}&limit=20"),
        ]
    mix += [("GET /models", "/api/v1/models?limit=50")] * 10
    mix += [("GET /environments", "/api/v1/environments")] * 10
    mix += [("GET /audit", "/api/v1/audit?limit=20")] * 10
    mix += [("GET /whoami", "/api/v1/whoami")] * 10
    mix += [("GET /status (all)", "/api/v1/status")] * 4
    return mix


@dataclass
class Result:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    elapsed: float = 0.0

    @property
    def all(self) -> list[float]:
        return [x for values in self.latencies.values() for x in values]


async def _client(
    host: str,
    port: int,
    token: str,
    mix: list[tuple[str, str]],
    think: float,
    counting_from: float,
    until: float,
    seed_: int,
    result: Result,
) -> None:
    """One keep-alive connection sending requests until `until` (loop.time())."""
    rng = random.Random(seed_)
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(host, port)
    await asyncio.sleep(rng.uniform(0, think * 2 or 0.01))  # do not start in lock-step
    try:
        while loop.time() < until:
            label, path = rng.choice(mix)
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
            )
            started = time.perf_counter()
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            took = time.perf_counter() - started
            status = int(head.split(b" ", 2)[1])
            if loop.time() >= counting_from:
                if status == 200:
                    result.latencies[label].append(took)
                else:
                    result.errors[f"{label} -> {status}"] += 1
            if think:
                await asyncio.sleep(rng.uniform(0, 2 * think))
    finally:
        writer.close()


async def _load(
    url: str, token: str, mix: list[tuple[str, str]], clients: int, duration: float, think: float
) -> Result:
    host, port = url.removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()
    counting_from = loop.time() + WARMUP_S
    until = counting_from + duration
    result = Result()
    await asyncio.gather(
        *(
            _client(host, int(port), token, mix, think, counting_from, until, i, result)
            for i in range(clients)
        )
    )
    result.elapsed = duration
    return result


def load(
    url: str,
    token: str,
    mix: list[tuple[str, str]],
    *,
    clients: int,
    duration: float,
    think_ms: float,
) -> Result:
    return asyncio.run(_load(url, token, mix, clients, duration, think_ms / 1000))


@contextmanager
def api_process(config: Path, workers: int, log: Path) -> Iterator[str]:
    """`modeldeck api` in its own process; yields its base URL once it answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELDECK_")}
    env["MODELDECK_CONFIG"] = str(config)
    with log.open("w") as err:
        proc = subprocess.Popen(
            [str(MODELDECK), "api", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(
                lambda: proc.poll() is None and httpx.get(f"{url}/readyz").is_success,
                timeout=180,
                interval=0.2,
                what="modeldeck api",
            )
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def api_thread(settings: Settings) -> Iterator[str]:
    """The app under uvicorn in a thread of this process (the quick pytest smoke)."""
    from modeldeck.core.api.app import create_app

    app = create_app(settings)
    try:
        with serve_asgi(app) as url:
            yield url
    finally:
        app.state.engine.dispose()


@contextmanager
def database(backend: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder}/bench.db"
        return
    if testdb.postgres_reachable() is not None:
        raise RuntimeError(f"PostgreSQL not reachable at {testdb.PG_URL}")
    url, schema = testdb.postgres_schema_url()
    try:
        yield url
    finally:
        testdb.drop_schema(schema)


@dataclass
class Row:
    backend: str
    workers: int
    clients: int
    think_ms: float
    result: Result


def run(
    backend: str,
    *,
    clients: int,
    duration: float,
    think_ms: list[float],
    workers: int,
    models: int,
    in_process: bool = False,
) -> list[Row]:
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-api-") as tmp,
        database(backend, Path(tmp)) as url,
    ):
        data = bench_settings(url, Path(tmp))
        settings = Settings(**data)
        token = seed(settings, models)
        config = Path(tmp) / "modeldeck.yaml"
        config.write_text(yaml.safe_dump(data))
        mix = request_mix(models)
        server = (
            api_thread(settings)
            if in_process
            else api_process(config, workers, Path(tmp) / "api.log")
        )
        with server as base:
            for think in think_ms:
                rows.append(
                    Row(
                        backend,
                        workers,
                        clients,
                        think,
                        load(base, token, mix, clients=clients, duration=duration, think_ms=think),
                    )
                )
        log = Path(tmp) / "api.log"
        if any(r.result.errors for r in rows) and log.exists():
            print(f"{backend}: errors; the server log ends with:", file=sys.stderr)
            problems = [
                line
                for line in log.read_text().splitlines()
                if '"level": "error"' in line or "Traceback" in line
            ]
            print("\n".join(problems[-5:])[-3000:], file=sys.stderr)
    return rows


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def report(rows: list[Row], per_endpoint: bool = False) -> str:
    head = (
        f"{'backend':<9}{'workers':>8}{'clients':>8}{'think ms':>9}{'requests':>9}"
        f"{'req/s':>8}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'max ms':>8}{'errors':>7}"
        f"  p99<{TARGET_P99_MS:.0f}ms"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        values = row.result.all
        p99 = pct(values, 0.99)
        lines.append(
            f"{row.backend:<9}{row.workers:>8}{row.clients:>8}{row.think_ms:>9.0f}"
            f"{len(values):>9}{len(values) / row.result.elapsed:>8.0f}"
            f"{pct(values, 0.5):>8.1f}{pct(values, 0.9):>8.1f}{p99:>8.1f}"
            f"{max(values, default=0) * 1000:>8.1f}{sum(row.result.errors.values()):>7}"
            f"  {'yes' if p99 < TARGET_P99_MS else 'NO'}"
        )
    if per_endpoint:
        for row in rows:
            lines.append(f"\n{row.backend}, think {row.think_ms:.0f} ms, per endpoint:")
            for label, values in sorted(row.result.latencies.items()):
                lines.append(
                    f"  {label:<30}{len(values):>7}  p50 {pct(values, 0.5):6.1f}"
                    f"  p99 {pct(values, 0.99):6.1f}  mean "
                    f"{statistics.fmean(values) * 1000:6.1f} ms"
                )
            for label, n in row.result.errors.items():
                lines.append(f"  error {label}: {n}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="sqlite,postgres")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured")
    parser.add_argument("--think-ms", type=float, default=500.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--saturate", action="store_true", help="also run without think time")
    parser.add_argument("--per-endpoint", action="store_true")
    args = parser.parse_args(argv)
    think = [args.think_ms] + ([0.0] if args.saturate else [])
    rows: list[Row] = []
    for backend in args.backend.split(","):
        try:
            rows += run(
                backend,
                clients=args.clients,
                duration=args.duration,
                think_ms=think,
                workers=args.workers,
                models=args.models,
            )
        except RuntimeError as exc:
            print(f"{backend}: skipped ({exc})", file=sys.stderr)
    print(report(rows, per_endpoint=args.per_endpoint))


if __name__ == "__main__":
    main()
