"""How long one scheduler cycle of N checks takes (DESIGN §8: 500 checks per 15 minutes on
2 cores, without overlap).

    .venv/bin/python tests/bench/bench_scheduler.py [--checks 500] [--workers 4]
        [--runner synthetic|real] [--database sqlite|postgres]

The cycle runs through the real scheduler: APScheduler with its SQLAlchemy job store, the
thread pool, the crash markers, evaluate_check on every result, the outbox. All N check jobs
are made due at once (the worst case: the scheduler normally spreads them over the interval)
and the clock stops when the last one has finished.

`--runner synthetic` stores three realistic results per check (drift with 20 columns,
quality, decay) and runs the real alert flow on them, so it measures everything but the
statistics; `--runner real` builds N classifiers with reference data and an hour of stored
predictions (--rows each) and runs the real checks (monitoring.run_checks, evidently's tests).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from modeldeck.core import db, logs  # noqa: E402
from modeldeck.core.clock import Clock, utcnow  # noqa: E402
from modeldeck.core.config import Settings  # noqa: E402
from modeldeck.core.environments import service as environments  # noqa: E402
from modeldeck.core.monitoring import flows  # noqa: E402
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus  # noqa: E402
from modeldeck.core.scheduler import Scheduler  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.core.alerts.world import drift_details, live_deployment  # noqa: E402
from tests.utils import db as testdb  # noqa: E402

BUDGET_SECONDS = 15 * 60
BUDGET_CHECKS = 500


def synthetic_runner(
    session: Session,
    *,
    settings: Settings,
    deployment_id: int,
    window_end: datetime | None = None,
    clock: Clock = utcnow,
) -> list[CheckResult]:
    """Results shaped like the real checks'; one model in ten drifts, one in twenty fails
    quality, so alerts open and notify as they would in a fleet."""
    end = window_end or clock()
    start = end - timedelta(hours=1)
    drifting = deployment_id % 10 == 0
    share = 0.6 if drifting else 0.05
    drifted = {f"f{i}": 0.2 + i / 100 for i in range(12 if drifting else 1)}
    results = [
        CheckResult(
            deployment_id=deployment_id,
            kind=CheckKind.drift,
            window_start=start,
            window_end=end,
            score=share,
            rows=5000,
            status=CheckStatus.fail if drifting else CheckStatus.ok,
            details=drift_details(share, drifted, clean=20 - len(drifted)),
        ),
        CheckResult(
            deployment_id=deployment_id,
            kind=CheckKind.quality,
            window_start=start,
            window_end=end,
            rows=5000,
            status=CheckStatus.fail if deployment_id % 20 == 0 else CheckStatus.ok,
            details={
                "problems": ["country: 38% missing (max 5%)"] if deployment_id % 20 == 0 else []
            },
        ),
        CheckResult(
            deployment_id=deployment_id,
            kind=CheckKind.decay,
            window_start=start,
            window_end=end,
            score=0.91,
            rows=800,
            status=CheckStatus.ok,
            details={"metric": "accuracy", "value": 0.91, "reference": 0.92},
        ),
    ]
    session.add_all(results)
    session.commit()
    flows.alert_on_results(session, settings=settings, results=results, clock=clock)
    return results


def build_world(engine: Any, settings: Settings, checks: int) -> list[int]:
    """`checks` models, each live in production."""
    ids = []
    with Session(engine, expire_on_commit=False) as session:
        environments.sync(session, settings)
        for i in range(checks):
            dep = live_deployment(
                session, model=f"model-{i:04d}", at=datetime.now(UTC) - timedelta(days=1)
            )
            assert dep.id is not None
            ids.append(dep.id)
    return ids


def build_monitored_world(engine: Any, settings: Settings, checks: int, rows: int) -> list[int]:
    """`checks` classifiers with a 4000-row reference and `rows` predictions in the last
    hour (one in ten drifting), live in production: what `--runner real` checks."""
    from modeldeck.core.auth.models import Actor, Role
    from modeldeck.core.monitoring import service as monitoring
    from tests.core.monitoring import conftest as monitored
    from tests.core.monitoring import synth

    admin = Actor(name="bench", role=Role.admin, via="cli")
    reference = synth.reference()
    ids = []
    now = datetime.now(UTC)
    with Session(engine, expire_on_commit=False) as session:
        environments.sync(session, settings)
        for i in range(checks):
            name = f"model-{i:04d}"
            monitored.register(session, admin, model=name, metrics={"accuracy": 0.8})
            monitoring.set_reference(
                session,
                settings=settings,
                model=name,
                version="1.0.0",
                frame=reference,
                actor=admin,
            )
            ids.append(
                monitored.deploy(session, model=name, version="1.0.0", environment="production")
            )
            shape: dict[str, Any] = {"shift": {"age": 1.0}} if i % 10 == 0 else {}
            batch = synth.predictions(rows, i, now - timedelta(minutes=55), **shape)
            monitoring.ingest_predictions(
                session,
                settings=settings,
                model=name,
                version="1.0.0",
                environment="production",
                frame=batch,
                actor=admin,
            )
    return ids


def run_cycle(scheduler: Scheduler, deployment_ids: list[int], timeout: float) -> float:
    """Make every check due now; seconds until the last one finished."""
    assert scheduler.aps is not None
    done = threading.Semaphore(0)
    errors: list[JobExecutionEvent] = []

    def finished(event: JobExecutionEvent) -> None:
        if event.job_id.startswith("check:"):
            if event.exception is not None:
                errors.append(event)
            done.release()

    scheduler.aps.add_listener(finished, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    scheduler.aps.pause()  # queue them all, then release them at once
    now = datetime.now(UTC)
    for dep_id in deployment_ids:
        scheduler.aps.modify_job(f"check:{dep_id}", next_run_time=now)
    started = time.perf_counter()
    scheduler.aps.resume()
    deadline = time.monotonic() + timeout
    for _ in deployment_ids:
        if not done.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise TimeoutError("the cycle did not finish in time")
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} check jobs failed: {errors[0].exception!r}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=BUDGET_CHECKS)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runner", choices=["synthetic", "real"], default="synthetic")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--rows", type=int, default=1000, help="predictions per model in the window (--runner real)"
    )
    args = parser.parse_args()
    logs.configure("console", "WARNING")  # per-message info lines would drown the figures

    with tempfile.TemporaryDirectory() as tmp:
        if args.database == "postgres":
            url, schema = testdb.postgres_schema_url()
        else:
            url, schema = f"sqlite:///{tmp}/bench.db", ""
        engine = db.make_engine(url)
        db.upgrade(engine)
        settings = make_settings(
            Path(tmp),
            database_url=url,
            data_dir=f"{tmp}/data",
            scheduler={
                "workers": args.workers,
                "drain_seconds": 3600,
                "rollouts_seconds": 3600,
                "reconcile_seconds": 3600,
                "sync_seconds": 3600,
            },
        )
        t0 = time.perf_counter()
        ids = (
            build_world(engine, settings, args.checks)
            if args.runner == "synthetic"
            else build_monitored_world(engine, settings, args.checks, args.rows)
        )
        print(
            f"world: {args.checks} live deployments on {args.database} "
            f"in {time.perf_counter() - t0:.1f}s"
        )
        runner = synthetic_runner if args.runner == "synthetic" else flows.check_and_alert
        scheduler = Scheduler(
            engine=engine, settings=settings, check_runner=runner, poll_seconds=0.05
        )
        scheduler.start()
        try:
            while not scheduler.is_leader:
                time.sleep(0.05)
            first = run_cycle(scheduler, ids, timeout=BUDGET_SECONDS)
            second = run_cycle(scheduler, ids, timeout=BUDGET_SECONDS)  # alerts now repeat
        finally:
            scheduler.stop()
            if schema:
                testdb.drop_schema(schema)
        for name, seconds in (("cycle 1 (alerts open)", first), ("cycle 2 (alerts dedup)", second)):
            per_check = seconds / args.checks * 1000
            budget = BUDGET_SECONDS * args.checks / BUDGET_CHECKS
            print(
                f"{name}: {args.checks} checks ({args.runner}, {args.workers} workers) in "
                f"{seconds:.1f}s = {per_check:.1f} ms/check; {budget / seconds:.0f}× inside "
                f"the budget of {budget:.0f}s"
            )


if __name__ == "__main__":
    main()
