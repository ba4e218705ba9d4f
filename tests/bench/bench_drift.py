"""Drift check vs evidently's DataDriftPreset Report on the same data, side by side.

    python tests/bench/bench_drift.py                 # 100k and 1M rows x 20 columns
    python tests/bench/bench_drift.py --rows 200000   # one size

Each side runs in its own fresh process so its peak RSS is its own:
  evidently  Report([DataDriftPreset()]) on the two pandas frames (the baseline)
  core       our per-column drift (drift.table_drift) on the same frames, as a check sees
             them (strings as categoricals); the one-time reference profile is timed apart
  check      the real `run_check(kind=drift)` in a process that only runs the check: it reads
             the reference and the window from the Parquet store, stores a CheckResult
Per-column scores and drift decisions, the share of drifted columns and the dataset decision
must be identical (==, not approximately) between evidently and both of ours.
Budget (DESIGN §8): >= 3x faster (aim 8x); 1M x 20 under 30 s and 1 GB for our check.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
HASH_SEED = "0"
Result = dict[str, Any]


def make_frames(
    rows: int, columns: int = 20, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Reference and current data: 60% numerical, 40% categorical; a few columns shifted,
    one numerical column with 1% missing values; (kinds by column)."""
    rng = np.random.default_rng(seed)
    n_num = columns * 3 // 5
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    for i in range(n_num):
        name = f"num_{i:02d}"
        shift = 0.3 if i < 3 else 0.0
        scale = 1.5 if i == 3 else 1.0
        ref[name] = rng.normal(0.0, 1.0, rows) * (1 + i % 3)
        cur[name] = (rng.normal(shift, scale, rows)) * (1 + i % 3)
        kinds[name] = "num"
    for i in range(columns - n_num):
        name = f"cat_{i:02d}"
        values = np.array([f"v{j}" for j in range(4 + i % 5)])
        p = rng.dirichlet(np.ones(len(values)) * 5)
        q = p[::-1] if i < 2 else p
        ref[name] = rng.choice(values, rows, p=p).astype(object)
        cur[name] = rng.choice(values, rows, p=q).astype(object)
        kinds[name] = "cat"
    reference, current = pd.DataFrame(ref), pd.DataFrame(cur)
    holes = rng.choice(rows, rows // 100, replace=False)
    current.loc[holes, "num_05"] = np.nan
    return reference, current, kinds


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def evidently_side(rows: int) -> Result:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    def report(reference: pd.DataFrame, current: pd.DataFrame) -> Any:
        return Report([DataDriftPreset()], include_tests=True).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )

    reference, current, kinds = make_frames(rows)
    definition = DataDefinition(
        numerical_columns=[c for c, k in kinds.items() if k == "num"],
        categorical_columns=[c for c, k in kinds.items() if k == "cat"],
    )
    report(reference.head(2000), current.head(2000))  # warm-up: lazy imports are not timed
    started = time.perf_counter()
    snapshot = report(reference, current)
    seconds = time.perf_counter() - started
    data = snapshot.dict()
    columns: dict[str, Any] = {}
    share = None
    for metric in data["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            columns[config["column"]] = {
                "score": float(metric["value"]),
                "method": config["method"],
                "threshold": float(config["threshold"]),
            }
        elif config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    dataset_drift = None
    for test in data["tests"]:
        if test["name"].startswith("Value Drift for column "):
            column = test["name"].removeprefix("Value Drift for column ")
            columns[column]["drifted"] = str(test["status"].value) == "FAIL"
        elif test["name"].startswith("Share of Drifted Columns"):
            dataset_drift = str(test["status"].value) == "FAIL"
    return {
        "seconds": seconds,
        "rss_mb": peak_rss_mb(),
        "columns": columns,
        "share": share,
        "dataset_drift": dataset_drift,
    }


def core_side(rows: int, workers: int | None = None) -> Result:
    """Our drift computation on the same frames, converted as a check converts them."""
    import pyarrow as pa

    from modeldeck.core.monitoring import drift
    from modeldeck.core.monitoring import profile as profiling
    from modeldeck.core.monitoring.models import ColumnKind

    reference, current, _ = make_frames(rows)
    warm_imports()
    started = time.perf_counter()
    computed = profiling.compute(
        pa.Table.from_pandas(reference, preserve_index=False), task_type="other"
    )
    profile_seconds = time.perf_counter() - started
    specs = computed.profile.features
    ref = computed.table.to_pandas(strings_to_categorical=True)
    columns = {n: (s.kind, s.n_unique) for n, s in specs.items() if s.kind != ColumnKind.unknown}
    drift.table_drift(ref.head(2000), ref.tail(2000), columns, drift_share=0.5)  # warm-up
    started = time.perf_counter()
    cur = pa.Table.from_pandas(current, preserve_index=False).to_pandas(strings_to_categorical=True)
    result = drift.table_drift(ref, cur, columns, drift_share=0.5, workers=workers)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "profile_seconds": profile_seconds,
        "rss_mb": peak_rss_mb(),
        "columns": {
            c.column: {
                "score": c.score,
                "drifted": c.drifted,
                "method": c.method_display,
                "threshold": c.threshold,
            }
            for c in result.columns
        },
        "share": result.share,
        "dataset_drift": result.dataset_drift,
    }


def warm_imports() -> float:
    """Import evidently's tests and sklearn; returns the seconds it took."""
    started = time.perf_counter()
    import evidently.core.datasets  # noqa: F401
    import evidently.legacy.calculations.stattests  # noqa: F401
    import sklearn.metrics  # noqa: F401

    return time.perf_counter() - started


def prepare_store(rows: int, directory: str) -> Result:
    """A real deployment with the reference set and the current window ingested."""
    from sqlmodel import Session, select

    from modeldeck.core import db
    from modeldeck.core.auth.models import Actor, Role
    from modeldeck.core.environments import service as environments
    from modeldeck.core.environments.models import Environment
    from modeldeck.core.monitoring import service
    from modeldeck.core.registry import service as registry
    from modeldeck.core.registry.models import ModelCreate, ModelVersionCreate, TaskType
    from modeldeck.core.rollouts.models import Deployment, DeploymentState

    settings = bench_settings(directory)
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    admin = Actor(name="bench", role=Role.admin, via="cli")
    reference, current, _ = make_frames(rows)
    current.insert(0, "prediction_id", np.char.add("p", np.arange(rows).astype(str)))
    current.insert(
        1,
        "timestamp",
        NOW - timedelta(minutes=50) + pd.to_timedelta(np.linspace(0, 49 * 60, rows), unit="s"),
    )
    current["prediction"] = (current["num_00"] > 0).astype(int)
    clock = lambda: NOW  # noqa: E731
    with Session(engine, expire_on_commit=False) as session:
        environments.sync(session, settings)
        registry.register_version(
            session,
            model_name="bench",
            actor=admin,
            data=ModelVersionCreate(version="1", image="img:1"),
            create_model_if_missing=ModelCreate(name="bench", task_type=TaskType.classification),
        )
        service.set_reference(
            session,
            settings=settings,
            model="bench",
            version="1",
            frame=reference,
            actor=admin,
            clock=clock,
        )
        ingest = service.ingest_predictions(
            session,
            settings=settings,
            model="bench",
            version="1",
            environment="prod",
            frame=current,
            actor=admin,
            clock=clock,
        )
        env = session.exec(select(Environment).where(Environment.name == "prod")).one()
        model = registry.get_model(session, "bench")
        version = registry.get_version(session, model, "1")
        assert model.id and version.id and env.id
        deployment = Deployment(
            model_id=model.id,
            version_id=version.id,
            environment_id=env.id,
            state=DeploymentState.active,
            requested_by="bench",
        )
        session.add(deployment)
        session.commit()
    return {"deployment_id": deployment.id, "ingest_rows_per_second": ingest.rows_per_second}


def bench_settings(directory: str) -> Any:
    from modeldeck.core.config import Settings

    return Settings(
        database_url=f"sqlite:///{directory}/bench.db",
        data_dir=f"{directory}/data",
        clusters=[{"name": "c", "backend": "simulated"}],
        environments=[{"name": "prod", "cluster": "c"}],
    )


def check_side(directory: str, deployment_id: int) -> Result:
    """Only the check, in a fresh process: its time and memory are the check's own."""
    from sqlmodel import Session

    from modeldeck.core import db
    from modeldeck.core.monitoring import service
    from modeldeck.core.monitoring.models import CheckKind

    settings = bench_settings(directory)
    engine = db.make_engine(settings.database_url)
    imports = warm_imports()  # once per process (the scheduler keeps them), not per check
    with Session(engine, expire_on_commit=False) as session:
        started = time.perf_counter()
        result = service.run_check(
            session,
            settings=settings,
            deployment_id=deployment_id,
            kind=CheckKind.drift,
            clock=lambda: NOW,
        )
        seconds = time.perf_counter() - started
    assert result.status != "error", result.message
    details = result.details
    return {
        "seconds": seconds,
        "rss_mb": peak_rss_mb(),
        "imports": imports,
        "share": details["share_drifted"],
        "dataset_drift": details["dataset_drift"],
        "rows": result.rows,
        "columns": {
            n: {
                "score": c["score"],
                "drifted": c["drifted"],
                "method": c["method_display"],
                "threshold": c["threshold"],
            }
            for n, c in details["columns"].items()
        },
    }


def differences(expected: Result, got: Result) -> list[str]:
    """Everything that is not exactly equal (an empty list means identical)."""
    out = []
    if set(expected["columns"]) != set(got["columns"]):
        out.append(f"columns {sorted(expected['columns'])} != {sorted(got['columns'])}")
    for name, want in expected["columns"].items():
        have = got["columns"].get(name, {})
        for key in ("score", "drifted", "method", "threshold"):
            if have.get(key) != want[key]:
                out.append(f"{name}.{key}: evidently {want[key]!r} != ours {have.get(key)!r}")
    for key in ("share", "dataset_drift"):
        if expected[key] != got[key]:
            out.append(f"{key}: evidently {expected[key]!r} != ours {got[key]!r}")
    return out


def _in_child(target: Any, *args: Any) -> Result:
    # evidently's categorical tests sum over a Python set of the categories, whose order
    # follows the process's string-hash seed: evidently itself differs in the last bit from
    # one process to the next. Every side gets the same seed, as they would share a process.
    os.environ["PYTHONHASHSEED"] = HASH_SEED
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(target, args)  # type: ignore[no-any-return]


def run(rows: int, skip_evidently: bool = False) -> list[str]:
    print(f"\n== {rows:,} rows x 20 columns (reference and current each)")
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as directory:
        prepared = _in_child(prepare_store, rows, directory)
        check = _in_child(check_side, directory, prepared["deployment_id"])
    core = _in_child(core_side, rows)
    lines = [
        f"  {'':28} {'seconds':>9} {'peak RSS MB':>12}",
        f"  {'ours: drift (in memory)':28} {core['seconds']:9.2f} {core['rss_mb']:12.0f}",
        f"  {'ours: run_check end to end':28} {check['seconds']:9.2f} {check['rss_mb']:12.0f}",
        f"  {'(one-time reference profile)':28} {core['profile_seconds']:9.2f}",
        f"  (peak RSS includes the generated pandas frames, as for evidently, except "
        f"run_check's, a process that only reads the store; it imported evidently and "
        f"sklearn first, in {check['imports']:.1f} s, as a scheduler process does once)",
        f"  (ingestion while preparing: {prepared['ingest_rows_per_second']:,.0f} rows/s)",
    ]
    problems: list[str] = []
    if not skip_evidently:
        ev = _in_child(evidently_side, rows)
        lines.insert(
            1, f"  {'evidently DataDriftPreset':28} {ev['seconds']:9.2f} {ev['rss_mb']:12.0f}"
        )
        lines.append(
            f"  speed-up: {ev['seconds'] / core['seconds']:.1f}x (drift), "
            f"{ev['seconds'] / check['seconds']:.1f}x (whole check incl. Parquet "
            "reads and storing the result)"
        )
        problems = differences(ev, core) + differences(ev, check)
        drifted = sorted(c for c, v in ev["columns"].items() if v["drifted"])
        lines.append(
            f"  identical scores and decisions: {'yes' if not problems else 'NO'} "
            f"({len(ev['columns'])} columns; drifted {drifted}; share {ev['share']}, "
            f"dataset drift {ev['dataset_drift']})"
        )
    print("\n".join(lines))
    for problem in problems:
        print("  MISMATCH", problem)
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument(
        "--skip-evidently",
        action="store_true",
        help="time only our side (evidently takes minutes at 1M rows)",
    )
    args = parser.parse_args()
    failed = False
    for rows in args.rows:
        failed |= bool(run(rows, args.skip_evidently))
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
