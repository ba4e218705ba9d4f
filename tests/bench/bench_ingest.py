"""Ingestion throughput into the Parquet store (DESIGN §8: >= 100k prediction rows/s).

    python tests/bench/bench_ingest.py                # 100k-row batches
    python tests/bench/bench_ingest.py --rows 500000 --batches 5

Prints rows/s for: the service with an Arrow table and with a pandas DataFrame (what a
pipeline calls in-process), a Parquet upload over real HTTP (uvicorn + httpx), a JSON batch
over HTTP (JSON parsing is the limit there), and consecutive batches into the same day (the
duplicate-id check reads the ids already stored for that day, so it grows with the day).
Every batch is validated against the reference and written atomically, as in production.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

NOW = datetime(2026, 11, 2, 23, 0, tzinfo=UTC)
FEATURES = 20


def batch(rows: int, seed: int) -> pd.DataFrame:
    """A prediction batch: 12 numerical and 8 categorical features, two class probabilities."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {
        "prediction_id": np.char.add(f"b{seed}-", np.arange(rows).astype(str)),
        "timestamp": NOW
        - timedelta(hours=20)
        + pd.to_timedelta(np.sort(rng.uniform(0, 3600, rows)), unit="s"),
    }
    for i in range(12):
        data[f"num_{i:02d}"] = rng.normal(0, 1, rows)
    for i in range(8):
        data[f"cat_{i:02d}"] = rng.choice(["a", "b", "c", "d"], rows)
    p = rng.uniform(0, 1, rows)
    data["prediction"] = (p >= 0.5).astype(int)
    data["proba_1"] = p
    data["proba_0"] = 1 - p
    return pd.DataFrame(data)


def world(directory: str, rows: int) -> tuple[Any, Any, Any, Any]:
    from sqlmodel import Session

    from modeldeck.core import db
    from modeldeck.core.auth.models import Actor, Role
    from modeldeck.core.config import Settings
    from modeldeck.core.environments import service as environments
    from modeldeck.core.monitoring import service
    from modeldeck.core.registry import service as registry
    from modeldeck.core.registry.models import ModelCreate, ModelVersionCreate

    settings = Settings(
        database_url=f"sqlite:///{directory}/bench.db",
        data_dir=f"{directory}/data",
        clusters=[{"name": "c", "backend": "simulated"}],
        environments=[{"name": "prod", "cluster": "c"}],
    )
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    admin = Actor(name="bench", role=Role.admin, via="cli")
    session = Session(engine, expire_on_commit=False)
    environments.sync(session, settings)
    registry.register_version(
        session,
        model_name="bench",
        actor=admin,
        data=ModelVersionCreate(version="1", image="img:1"),
        create_model_if_missing=ModelCreate(name="bench"),
    )
    reference = batch(min(rows, 50_000), 999).drop(columns=["prediction_id", "timestamp"])
    service.set_reference(
        session,
        settings=settings,
        model="bench",
        version="1",
        frame=reference,
        actor=admin,
        clock=lambda: NOW,
    )
    return settings, engine, session, admin


def timed(label: str, rows: int, call: Any) -> float:
    started = time.perf_counter()
    call()
    rate = rows / (time.perf_counter() - started)
    print(f"  {label:52} {rate:12,.0f} rows/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows per batch")
    parser.add_argument("--batches", type=int, default=10, help="consecutive batches, one day")
    args = parser.parse_args()
    from modeldeck.core.monitoring import service

    print(f"== {args.rows:,}-row batches, {FEATURES} features + prediction + 2 probabilities")
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as directory:
        settings, engine, session, admin = world(directory, args.rows)

        def ingest(frame: Any) -> Any:
            return service.ingest_predictions(
                session,
                settings=settings,
                model="bench",
                version="1",
                environment="prod",
                frame=frame,
                actor=admin,
                clock=lambda: NOW,
            )

        ingest(batch(1000, 0))  # warm-up (imports, first file)
        frames = [batch(args.rows, seed) for seed in range(1, args.batches + 3)]
        tables = [pa.Table.from_pandas(f, preserve_index=False) for f in frames]
        arrow_rate = timed("service, Arrow table", args.rows, lambda: ingest(tables[0]))
        timed("service, pandas DataFrame", args.rows, lambda: ingest(frames[1]))
        rates = [
            timed(
                f"service, Arrow, batch {i + 3} of the same day", args.rows, lambda t=t: ingest(t)
            )
            for i, t in enumerate(tables[2:])
        ]
        http_rates = _over_http(settings, engine, session, admin, args.rows)
    print(
        f"  => first/last batch of the day: {arrow_rate:,.0f} / {rates[-1]:,.0f} rows/s; "
        f"HTTP Parquet {http_rates[0]:,.0f}, HTTP JSON {http_rates[1]:,.0f} rows/s"
    )
    print(
        f"  budget >= 100,000 rows/s: {'met' if arrow_rate >= 100_000 else 'NOT met'} "
        "(service with Arrow)"
    )


def _over_http(
    settings: Any, engine: Any, session: Any, admin: Any, rows: int
) -> tuple[float, float]:
    import httpx

    from modeldeck.core.api.app import create_app
    from modeldeck.core.auth import service as auth
    from modeldeck.core.auth.models import Role
    from tests.utils.servers import serve_asgi

    token = auth.create_token(session, name="bench", role=Role.deployer, actor=admin).token
    app = create_app(settings, engine=engine, clock=lambda: NOW)
    target = {"model": "bench", "version": "1", "environment": "prod"}
    frame = batch(rows, 10_001)
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    small = batch(max(rows // 10, 1), 10_002)
    records = [
        {
            "prediction_id": r["prediction_id"],
            "timestamp": r["timestamp"].isoformat(),
            "features": {k: r[k] for k in small.columns if k.startswith(("num", "cat"))},
            "prediction": int(r["prediction"]),
            "probabilities": {"0": r["proba_0"], "1": r["proba_1"]},
        }
        for r in small.to_dict("records")
    ]
    with (
        serve_asgi(app) as base,
        httpx.Client(
            base_url=base, timeout=600, headers={"Authorization": f"Bearer {token}"}
        ) as http,
    ):

        def post_parquet() -> None:
            answer = http.post(
                "/api/v1/predictions",
                params=target,
                content=sink.getvalue(),
                headers={"Content-Type": "application/vnd.apache.parquet"},
            )
            assert answer.status_code == 201, answer.text

        def post_json() -> None:
            answer = http.post("/api/v1/predictions", json={**target, "predictions": records})
            assert answer.status_code == 201, answer.text

        parquet_rate = timed(
            f"REST Parquet upload ({len(sink.getvalue()) / 2**20:.0f} MB)", rows, post_parquet
        )
        json_rate = timed(f"REST JSON batch ({len(records):,} records)", len(records), post_json)
    return parquet_rate, json_rate


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tests.utils.servers
    main()
