"""Time from a promote request to `active`, per backend; conflicts under concurrent promotes.

    .venv/bin/python tests/bench/bench_rollouts.py [--rounds 40] [--k8s-rollout 0.5]
        [--skip-postgres]

1. simulated backend (rollout_seconds=0), SQLite: promote → active inside one call.
2. the same on PostgreSQL (MODELDECK_TEST_POSTGRES_URL), when it answers.
3. Kubernetes backend against the fake API server (real `kubernetes` client, real HTTP):
   a rollout the fake finishes on the next read (modeldeck's own overhead: GET + PATCH +
   status reads), and one that takes --k8s-rollout seconds, followed with `advance` every
   50 ms as `modeldeck promote --wait --interval 0.05` would.
4. POST /api/v1/deployments over HTTP (uvicorn), simulated backend.
5. 20 concurrent promotes of one model on PostgreSQL: one rollout, 19 conflicts, wall time.

Every promote is real: alternating versions so each request changes what runs. Figures are
p50 and p95 in milliseconds; no budget is asserted (DESIGN §6: bench prints figures).
tests/bench/test_bench_rollouts.py runs every function with tiny sizes so this cannot rot.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from modeldeck.core import db, logs  # noqa: E402
from modeldeck.core.auth import service as auth  # noqa: E402
from modeldeck.core.auth.models import Actor, Role  # noqa: E402
from modeldeck.core.config import Settings  # noqa: E402
from modeldeck.core.environments import service as environments  # noqa: E402
from modeldeck.core.errors import Conflict  # noqa: E402
from modeldeck.core.rollouts import service as rollouts  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.core.rollouts.world import register  # noqa: E402
from tests.utils import db as testdb  # noqa: E402
from tests.utils.fake_k8s import DEPLOYMENT, FakeKubernetes, write_kubeconfig  # noqa: E402

ADMIN = Actor(name="bench", role=Role.admin, via="cli")
VERSIONS = ("1.0.0", "1.1.0")


@dataclass(frozen=True)
class Stats:
    n: int
    p50_ms: float
    p95_ms: float
    max_ms: float


@dataclass(frozen=True)
class Conflicts:
    clients: int
    rollouts: int
    conflicts: int
    wall_ms: float


def summary(name: str, samples: list[float]) -> Stats:
    """Print one line of figures and return them."""
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    stats = Stats(len(ms), statistics.median(ms), p95, ms[-1])
    print(
        f"{name:<58} n={stats.n:<4} p50 {stats.p50_ms:8.1f} ms   "
        f"p95 {stats.p95_ms:8.1f} ms   max {stats.max_ms:8.1f} ms"
    )
    return stats


def one_env(tmp: Path, cluster: dict[str, Any]) -> Settings:
    """A single environment `staging` without approvals on the given cluster."""
    return make_settings(
        tmp,
        clusters=[cluster],
        environments=[{"name": "staging", "cluster": cluster["name"], "namespace": "ml"}],
    )


def prepared(engine: Engine, settings: Settings, models: int = 1) -> None:
    with Session(engine) as session:
        environments.sync(session, settings)
        for i in range(models):
            register(session, ADMIN, model=f"m{i}", versions=VERSIONS)


def promote_rounds(
    engine: Engine,
    settings: Settings,
    rounds: int,
    follow: Callable[[Session, int], str] | None = None,
    first: int = 0,
) -> list[float]:
    """Promote alternately 1.0.0 / 1.1.0 and time each request to `active`; `first` is how
    many promotes ran before, so an odd count does not ask for the active version again."""
    samples = []
    with Session(engine, expire_on_commit=False) as session:
        for i in range(rounds):
            start = time.perf_counter()
            dep = rollouts.promote(
                session,
                settings=settings,
                model="m0",
                version=VERSIONS[(first + i) % 2],
                environment="staging",
                actor=ADMIN,
            )
            state = dep.state
            if follow is not None:
                state = follow(session, dep.id)
            samples.append(time.perf_counter() - start)
            assert state == "active", (state, dep.message)
    return samples


def advance_until_active(settings: Settings, interval: float) -> Callable[[Session, int], str]:
    def follow(session: Session, deployment_id: int) -> str:
        while True:
            dep = rollouts.advance(session, settings=settings, deployment_id=deployment_id)
            if dep.state not in ("pending", "rolling_out"):
                return str(dep.state)
            time.sleep(interval)

    return follow


def bench_simulated(tmp: Path, rounds: int, engine: Engine | None, label: str) -> Stats:
    settings = one_env(tmp, {"name": "sim", "backend": "simulated"})
    engine = engine or testdb.sqlite_engine(testdb.sqlite_template(tmp), tmp / "sim.db")
    prepared(engine, settings)
    return summary(
        f"simulated (instant), {label}: promote → active", promote_rounds(engine, settings, rounds)
    )


def bench_simulated_postgres(tmp: Path, rounds: int) -> Stats:
    """bench_simulated on a fresh PostgreSQL schema (MODELDECK_TEST_POSTGRES_URL)."""
    url, schema = testdb.postgres_schema_url()
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
        return bench_simulated(tmp, rounds, engine, "PostgreSQL")
    finally:
        engine.dispose()
        testdb.drop_schema(schema)


def bench_kubernetes(
    tmp: Path, rounds: int, rollout_seconds: float, slow_rounds: int | None = None
) -> tuple[Stats, Stats]:
    """(done on the next read, taking `rollout_seconds`); `slow_rounds` defaults to
    max(5, rounds // 4)."""
    slow_rounds = max(5, rounds // 4) if slow_rounds is None else slow_rounds
    with FakeKubernetes() as fake:
        fake.add_deployment("ml", "m0", image="img:0", version="0")
        config = write_kubeconfig(tmp / "kubeconfig", {"fake": fake})
        settings = one_env(
            tmp,
            {"name": "k8s", "backend": "kubernetes", "kubeconfig": str(config), "context": "fake"},
        )
        engine = testdb.sqlite_engine(testdb.sqlite_template(tmp), tmp / "k8s.db")
        prepared(engine, settings)
        follow = advance_until_active(settings, 0.05)
        instant = summary(
            "kubernetes (fake API, done on next read): promote → active",
            promote_rounds(engine, settings, rounds, follow),
        )
        fake.set_mode(DEPLOYMENT, "ml", "m0", "ok", seconds=rollout_seconds)
        samples = promote_rounds(engine, settings, slow_rounds, follow, first=rounds)
        slow = summary(f"kubernetes (fake API, {rollout_seconds:g}s rollout, poll 50 ms)", samples)
        print(
            f"{'':<58} overhead over the rollout itself: p50 "
            f"{(statistics.median(samples) - rollout_seconds) * 1000:.1f} ms"
        )
        calls = len(fake.requests)
        print(f"{'':<58} {calls} API requests for {rounds + slow_rounds} rollouts")
    return instant, slow


@contextmanager
def api_server(engine: Engine, settings: Settings) -> Iterator[tuple[str, str]]:
    from modeldeck.core.api.app import create_app
    from tests.utils.servers import serve_asgi

    with Session(engine) as session:
        token = auth.create_token(session, name="bench", role=Role.deployer, actor=ADMIN).token
    with serve_asgi(create_app(settings, engine=engine)) as url:
        yield url, token


def bench_api(tmp: Path, rounds: int) -> Stats:
    import httpx

    settings = one_env(tmp, {"name": "sim", "backend": "simulated"})
    engine = testdb.sqlite_engine(testdb.sqlite_template(tmp), tmp / "api.db")
    prepared(engine, settings)
    samples = []
    with (
        api_server(engine, settings) as (url, token),
        httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}
        ) as client,
    ):
        for i in range(rounds):
            start = time.perf_counter()
            response = client.post(
                "/deployments",
                json={"model": "m0", "version": VERSIONS[i % 2], "environment": "staging"},
            )
            samples.append(time.perf_counter() - start)
            assert response.status_code == 201, response.text
    return summary("REST POST /deployments (simulated, SQLite, HTTP)", samples)


def bench_conflicts(clients: int = 20) -> Conflicts:
    """`clients` promotes of one model at the same instant on PostgreSQL: one must win."""
    url, schema = testdb.postgres_schema_url()
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
        with tempfile.TemporaryDirectory() as tmp:
            settings = one_env(Path(tmp), {"name": "sim", "backend": "simulated"})
        prepared(engine, settings)
        barrier = threading.Barrier(clients)

        def one(i: int) -> tuple[str, float]:
            with Session(engine, expire_on_commit=False) as session:
                barrier.wait()
                start = time.perf_counter()
                try:
                    rollouts.promote(
                        session,
                        settings=settings,
                        model="m0",
                        version="1.0.0",
                        environment="staging",
                        actor=Actor(name=f"user{i}", role=Role.deployer, via="api"),
                    )
                    outcome = "ok"
                except Conflict:
                    outcome = "conflict"
                return outcome, time.perf_counter() - start

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            results = list(pool.map(one, range(clients)))
        wall = time.perf_counter() - start
        won = sum(1 for o, _ in results if o == "ok")
        lost = sum(1 for o, _ in results if o == "conflict")
        print(
            f"{clients} concurrent promotes on PostgreSQL: {won} rollout, {lost} conflicts, "
            f"wall {wall * 1000:.0f} ms"
        )
        summary(
            f"  per-request latency under contention ({clients} clients)", [d for _, d in results]
        )
        return Conflicts(clients, won, lost, wall * 1000)
    finally:
        engine.dispose()
        testdb.drop_schema(schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--k8s-rollout", type=float, default=0.5)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    logs.configure("console", "WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for sub in ("sim", "k8s", "api", "pg"):
            (base / sub).mkdir()
        bench_simulated(base / "sim", args.rounds, None, "SQLite")
        pg_down = testdb.postgres_reachable()
        if not args.skip_postgres and pg_down is None:
            bench_simulated_postgres(base / "pg", args.rounds)
        bench_kubernetes(base / "k8s", args.rounds, args.k8s_rollout)
        bench_api(base / "api", args.rounds)
        if not args.skip_postgres and pg_down is None:
            bench_conflicts()
        elif pg_down:
            print(f"PostgreSQL skipped: {pg_down}")


if __name__ == "__main__":
    main()
