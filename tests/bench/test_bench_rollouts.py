"""A quick run of tests/bench/bench_rollouts.py so the benchmark cannot rot: every part runs
with tiny sizes and prints its figures. Figures are printed, not asserted (DESIGN §6); what is
asserted is that each part produced them and that concurrent promotes still end in exactly one
rollout."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench import bench_rollouts


def test_bench_rollouts_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for sub in ("sim", "k8s", "api"):
        (tmp_path / sub).mkdir()
    simulated = bench_rollouts.bench_simulated(tmp_path / "sim", 3, None, "SQLite")
    instant, slow = bench_rollouts.bench_kubernetes(
        tmp_path / "k8s", 3, rollout_seconds=0.1, slow_rounds=2
    )
    api = bench_rollouts.bench_api(tmp_path / "api", 2)
    assert (simulated.n, instant.n, slow.n, api.n) == (3, 3, 2, 2)
    assert slow.p50_ms >= 100  # the fake's rollout took 0.1 s and was waited for
    out = capsys.readouterr().out
    assert "simulated (instant), SQLite: promote → active" in out
    assert "kubernetes (fake API, done on next read): promote → active" in out
    assert "kubernetes (fake API, 0.1s rollout, poll 50 ms)" in out
    assert out.count(" p50 ") >= 4 and out.count(" p95 ") >= 4


@pytest.mark.postgres
def test_bench_rollouts_smoke_on_postgres(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.utils import db as testdb

    testdb.require_postgres()
    assert bench_rollouts.bench_simulated_postgres(tmp_path, 2).n == 2
    result = bench_rollouts.bench_conflicts(clients=5)
    assert (result.clients, result.rollouts, result.conflicts) == (5, 1, 4)
    out = capsys.readouterr().out
    assert "simulated (instant), PostgreSQL: promote → active" in out
    assert "5 concurrent promotes on PostgreSQL: 1 rollout, 4 conflicts, wall " in out
