"""A quick run of tests/bench/bench_api.py so the benchmark cannot rot: it must serve every
request of its mix without an error. Figures are printed, not asserted (DESIGN §6)."""

from __future__ import annotations

import pytest

from tests.bench import bench_api


def test_bench_api_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    rows = bench_api.run(
        "sqlite",
        clients=10,
        duration=2.0,
        think_ms=[50.0, 0.0],
        workers=1,
        models=12,
        in_process=True,
    )
    assert len(rows) == 2
    for row in rows:
        assert row.result.errors == {}
        assert len(row.result.all) > 0
        labels = set(row.result.latencies)
        assert {"GET /models", "GET /whoami", "GET /status?model="} <= labels
    table = bench_api.report(rows, per_endpoint=True)
    print(table)
    assert "p99 ms" in table and "per endpoint" in table


@pytest.mark.postgres
def test_bench_api_smoke_on_postgres() -> None:
    from tests.utils import db as testdb

    testdb.require_postgres()
    (row,) = bench_api.run(
        "postgres", clients=5, duration=1.0, think_ms=[0.0], workers=1, models=5, in_process=True
    )
    assert row.result.errors == {} and row.result.all
