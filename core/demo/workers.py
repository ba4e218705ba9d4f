"""Seed the history on every core: the models are independent, so each worker process replays
the timeline of its share of them against the same database and data dir.

SQLite takes one writer at a time (WAL + busy_timeout), and a worker's writes are short
transactions, so two workers nearly halve the wall time on two cores. Workers report progress
through a queue; the parent draws it and re-raises the first worker error.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.process import BaseProcess
from typing import Any

from modeldeck.core import db
from modeldeck.core.config import Settings
from modeldeck.core.demo import world
from modeldeck.core.demo.seed import Counters, Seeder
from modeldeck.core.errors import ModeldeckError

# Balanced by traffic and number of releases (the two costs of a model's history).
SHARES: tuple[tuple[str, ...], ...] = (
    ("search-ranker", "churn-predictor"),
    ("fraud-detector", "eta-regressor"),
)


@dataclass(frozen=True)
class Update:
    worker: int
    what: str
    day: float


OnUpdate = Callable[[Update], None]


class SeedingFailed(ModeldeckError):
    """A worker died; the message carries its traceback."""


def shares(workers: int) -> list[tuple[str, ...]]:
    if workers <= 1:
        return [tuple(m.name for m in world.MODELS)]
    return list(SHARES)


def _work(
    settings: Settings, end: datetime, models: tuple[str, ...], index: int, updates: Any
) -> None:
    # Ctrl-C reaches the whole process group: the parent decides and terminates the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    engine = db.make_engine(settings.database_url)

    def progress(what: str, day: float) -> None:
        updates.put(("update", index, what, day))

    try:
        counters = Seeder(settings, engine, end=end, models=models, progress=progress).run()
        updates.put(("done", index, counters.as_dict(), None))
    except BaseException:
        updates.put(("error", index, traceback.format_exc(), None))
        raise
    finally:
        engine.dispose()


def build(
    settings: Settings,
    *,
    end: datetime,
    workers: int | None = None,
    on_update: OnUpdate | None = None,
) -> Counters:
    """Replay the history with `workers` processes (default: 2 when 2 cores are there)."""
    count = workers or (2 if (os.cpu_count() or 1) >= 2 else 1)
    groups = shares(count)
    # fork: the workers inherit the imported modules instead of importing evidently again.
    context: Any = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    updates = context.Queue()
    procs: list[BaseProcess] = [
        context.Process(
            target=_work,
            args=(settings, end, models, i, updates),
            name=f"modeldeck-seed-{i}",
            daemon=True,
        )
        for i, models in enumerate(groups)
    ]
    for proc in procs:
        proc.start()
    totals = Counters()
    try:
        _collect(procs, updates, totals, on_update or (lambda _u: None))
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join(10)
    return totals


def _collect(procs: list[BaseProcess], updates: Any, totals: Counters, on_update: OnUpdate) -> None:
    done: set[int] = set()
    while len(done) < len(procs):
        try:
            kind, index, payload, extra = updates.get(timeout=0.5)
        except queue.Empty:
            dead = [i for i, p in enumerate(procs) if i not in done and not p.is_alive()]
            if dead:
                raise SeedingFailed(
                    f"seeding worker {dead[0]} exited with code {procs[dead[0]].exitcode}"
                ) from None
            continue
        if kind == "update":
            on_update(Update(index, payload, extra))
        elif kind == "error":
            raise SeedingFailed(f"seeding worker {index} failed:\n{payload}")
        elif kind == "done":
            done.add(index)
            for key in ("predictions", "labels", "checks", "deployments"):
                setattr(totals, key, getattr(totals, key) + int(payload[key]))
            totals.seconds = max(totals.seconds, float(payload["seconds"]))
