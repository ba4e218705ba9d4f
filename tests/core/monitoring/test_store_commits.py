"""The Parquet store across processes and crashes: the per-model ingestion lock, batches that
span several dates (all visible or none), leftovers of killed writers, retries after a crash."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from modeldeck.core.auth.models import Actor
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.monitoring import columns as C
from modeldeck.core.monitoring import frames, ingest, reference
from modeldeck.core.monitoring.store import Store
from modeldeck.core.registry import service as registry
from tests.conftest import make_settings
from tests.core.monitoring import synth
from tests.core.monitoring.conftest import ENV, MODEL, VERSION, World, make_world

ROOT = Path(__file__).resolve().parents[3]

CHILD = textwrap.dedent(
    """
    import sys
    from datetime import datetime
    from pathlib import Path

    import pandas as pd
    from sqlmodel import Session

    from modeldeck.core import db
    from modeldeck.core.auth.models import Actor, Role
    from modeldeck.core.clock import FixedClock
    from modeldeck.core.errors import Conflict
    from modeldeck.core.monitoring import service
    from tests.conftest import make_settings

    tmp, batch, now = sys.argv[1:4]
    settings = make_settings(Path(tmp), checks={"min_rows": 30})
    engine = db.make_engine(settings.database_url)
    frame = pd.read_parquet(batch)
    print("ready", flush=True)
    try:
        with Session(engine) as session:
            service.ingest_predictions(
                session, settings=settings, model="fraud", version="1.0.0",
                environment="production", frame=frame,
                actor=Actor(name="worker", role=Role.admin, via="api"),
                clock=FixedClock(datetime.fromisoformat(now)),
            )
        print("stored", flush=True)
    except Conflict as exc:
        print(f"conflict: {exc}", flush=True)
    """
)


def prediction_dir(world: World) -> str:
    return Store(world.settings.data_dir).predictions_dir(MODEL, VERSION, ENV)


def stored_ids(world: World) -> list[str]:
    store = Store(world.settings.data_dir)
    tables = store.read_window(
        prediction_dir(world),
        world.clock() - timedelta(days=30),
        world.clock() + timedelta(days=1),
    )
    return sorted(i for t in tables for i in t.column(C.PREDICTION_ID).to_pylist())


def as_table(world: World, frame: object) -> pa.Table:
    """A batch validated exactly as ingestion does it (what a writer would store)."""
    model = registry.get_model(world.session, MODEL)
    version = registry.get_version(world.session, model, VERSION)
    profile = reference.ensure_profile(
        world.session, settings=world.settings, model=model, version=version, clock=world.clock
    )
    return frames.predictions_table(
        frames.to_arrow(frame), profile=profile, task_type="classification", now=world.clock()
    )


def _pythonpath() -> str:
    """The child imports this checkout's code and tests, as the test process does."""
    return os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)


def waits_for_flock(pid: int) -> bool:
    """Is process `pid` blocked on a flock (Linux lists waiters as `->` in /proc/locks)?"""
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "->" and fields[2] == "FLOCK" and fields[5] == str(pid):
            return True
    return False


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks")
def test_two_processes_cannot_both_pass_the_duplicate_check(world: World, tmp_path: Path) -> None:
    """Another process holds the model's lock between its duplicate check and its write; a
    second process ingesting the same ids must wait for it, then see them and refuse."""
    batch = synth.predictions(120, 31, world.window_start())
    path = tmp_path / "batch.parquet"
    batch.to_parquet(path)
    store = Store(world.settings.data_dir)
    with store.lock(MODEL):  # this process is "the other worker", mid check-then-write
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), str(path), world.clock().isoformat()],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": _pythonpath()},
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while child.poll() is None and not waits_for_flock(child.pid):
            assert time.monotonic() < deadline, "the second process neither waited nor ended"
            time.sleep(0.02)
        store.write_partitioned(prediction_dir(world), as_table(world, batch), C.TIMESTAMP)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert out.startswith("conflict: 120 prediction id(s) were already ingested"), out + err
    assert stored_ids(world) == sorted(batch["prediction_id"])  # each id once


def test_a_multi_date_batch_is_invisible_until_its_marker_is_written(world: World) -> None:
    start = world.clock() - timedelta(days=1, hours=1)
    batch = synth.predictions(100, 32, start, span=timedelta(days=1))  # two date partitions
    table = as_table(world, batch)
    store = Store(world.settings.data_dir)
    base = prediction_dir(world)
    # What a writer has done just before its commit (and what a kill at that point leaves):
    # every file renamed into place, the batch marker not yet written.
    days = store_days(table)
    staged = [
        store._stage(
            f"{base}/date={day}",
            f"part-{first}-{last}-{index:012x}-0123456789abcdef.parquet",
            part,
        )
        for index, (day, first, last, part) in enumerate(days)
    ]
    store._commit(staged)
    assert len(list(Path(base).rglob("part-*.parquet"))) == 2
    assert stored_ids(world) == []  # a reader sees none of the batch, not half of it
    store.write_bytes(f"{base}/_batches/0123456789abcdef", b"")
    assert stored_ids(world) == sorted(batch["prediction_id"])


def test_a_retry_after_a_writer_was_killed_mid_batch_succeeds(world: World) -> None:
    start = world.clock() - timedelta(days=1, hours=1)
    batch = synth.predictions(100, 33, start, span=timedelta(days=1))
    table = as_table(world, batch)
    store = Store(world.settings.data_dir)
    base = prediction_dir(world)
    day, first, last, part = store_days(table)[0]  # killed after the first of two renames
    store._commit(
        [store._stage(f"{base}/date={day}", f"part-{first}-{last}-{0:012x}-dead.parquet", part)]
    )
    (Path(base) / f"date={day}" / ".tmp-part-left-behind.parquet").write_bytes(b"partial")

    result = world.ingest(batch)  # the retry: not a Conflict with the dead writer's file
    assert result.rows == 100 and len(result.files) == 2
    assert stored_ids(world) == sorted(batch["prediction_id"])

    # The dead writer's leftovers go once they are over an hour old; committed data stays.
    leftovers = [
        p for p in Path(base).rglob("*") if p.is_file() and ("dead" in p.name or ".tmp-" in p.name)
    ]
    assert len(leftovers) == 2
    assert store.sweep(f"{base}/date={day}") == []  # fresh: a live writer may own them
    old = time.time() - 2 * 3600
    for leftover in leftovers:
        os.utime(leftover, (old, old))
    removed = store.sweep(f"{base}/date={day}")
    assert sorted(Path(p).name for p in removed) == sorted(p.name for p in leftovers)
    assert stored_ids(world) == sorted(batch["prediction_id"])


def store_days(table: pa.Table) -> list[tuple[str, str, str, pa.Table]]:
    """(date, first stamp, last stamp, rows) per UTC date, named as the store names files."""
    import pyarrow.compute as pc

    from modeldeck.core.monitoring.store import _STAMP, utc_days

    days = utc_days(table.column(C.TIMESTAMP))
    out = []
    for day in sorted(pc.unique(days).to_pylist()):
        part = table.filter(pc.equal(days, pa.scalar(day, pa.date32())))
        span = pc.min_max(part.column(C.TIMESTAMP))
        first, last = span["min"].as_py(), span["max"].as_py()
        out.append((str(day), f"{first:{_STAMP}}", f"{last:{_STAMP}}", part))
    return out


@pytest.fixture
def remote_world(
    pg_engine: Engine, tmp_path: Path, clock: FixedClock, admin: Actor
) -> Iterator[World]:
    """PostgreSQL and a non-local fsspec store (memory://), as with s3:// in production."""
    settings: Settings = make_settings(
        tmp_path, data_dir=f"memory://modeldeck-{uuid.uuid4().hex}", checks={"min_rows": 30}
    )
    with make_world(pg_engine, settings, clock, admin) as built:
        yield built


@pytest.mark.postgres
def test_a_remote_store_on_postgres_serialises_ingestion_with_an_advisory_lock(
    remote_world: World, pg_engine: Engine
) -> None:
    world = remote_world
    store = Store(world.settings.data_dir)
    assert not store.local
    key = ingest.lock_key(store, MODEL)
    batch = synth.predictions(60, 35, world.window_start())
    done: list[object] = []
    with pg_engine.connect() as holder:  # another API worker, mid check-then-write
        holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        worker = threading.Thread(target=lambda: done.append(world.ingest(batch)), daemon=True)
        worker.start()
        deadline = time.monotonic() + 30
        with pg_engine.connect() as probe:
            while not probe.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            ).scalar():
                assert worker.is_alive(), "the ingestion did not wait for the lock"
                assert time.monotonic() < deadline
                time.sleep(0.02)
                probe.rollback()
        assert done == []
        holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        holder.commit()
    worker.join(timeout=60)
    assert len(done) == 1 and getattr(done[0], "rows", None) == 60
