"""Long ranges keep short episodes: every check in a bucket counts (strongest drift, highest
missing share, worst verdict), on SQLite and PostgreSQL; and the read rules the pages used to
carry (promotion order, the stored missing limit, realised-else-estimated per segment)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from modeldeck.core import fleet
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.monitoring import bucketed, queries
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.monitoring.readings import MetricReading
from modeldeck.core.timeseries import floor_time, to_utc
from tests.dashboard import world
from tests.dashboard.conftest import metric, open_page

DAY = 86400


@pytest.fixture
def built(any_engine: Engine, dash_settings: Settings) -> world.World:
    return world.build(any_engine, dash_settings)


def _episode(engine: Engine, built: world.World) -> datetime:
    """Three hours, three days ago, when `hour` drifted hard and `amount` went 80 % null with a
    new country "ZZ"; the rest of that day is quiet. Returns the day's bucket start."""
    day = floor_time(built.now - timedelta(days=3), DAY)
    start, end = day + timedelta(hours=10), day + timedelta(hours=12)
    with Session(engine) as s:
        rows = s.exec(
            select(CheckResult).where(
                col(CheckResult.window_end) >= to_utc(start),
                col(CheckResult.window_end) <= to_utc(end),
            )
        ).all()
        assert len(rows) == 9  # three hours × drift, quality, decay
        for row in rows:
            if row.kind == CheckKind.decay:
                continue
            details: dict[str, Any] = dict(row.details)
            columns = {k: dict(v) for k, v in details["columns"].items()}
            if row.kind == CheckKind.drift:
                columns["hour"].update(score=0.9, drifted=True)
                details["share_drifted"] = 0.5
                row.status = CheckStatus.warn
            else:
                columns["amount"].update(missing_share=0.8, status="fail", problem="80.0% missing")
                columns["country"]["new_categories"] = {"ZZ": 3}
                row.status = CheckStatus.fail
            row.details = {**details, "columns": columns}
            s.add(row)
        s.commit()
    return day


def _series(engine: Engine, built: world.World, kind: CheckKind, days: int) -> queries.Series:
    end = built.now + timedelta(hours=1)
    with Session(engine) as s:
        return queries.series(
            s,
            model="fraud-detector",
            environment="production",
            kind=kind,
            start=end - timedelta(days=days),
            end=end,
        )


def test_a_short_episode_shows_in_a_yearly_chart(built: world.World, any_engine: Engine) -> None:
    day = _episode(any_engine, built)
    drift = _series(any_engine, built, CheckKind.drift, 365)
    assert drift.bucket_seconds == DAY
    [bucket] = [b for b in drift.buckets if b.at == day]
    assert bucket.share_drifted == 0.5  # the worst check of the day, not its last
    assert bucket.status == CheckStatus.warn
    cells = {c.column: c for c in drift.columns if c.at == day}
    hour = cells["hour"]
    assert hour.drifted is True and hour.score == 0.9 and hour.strength == pytest.approx(9.0)
    assert hour.checks == bucket.checks  # every check of the day was read
    assert cells["amount"].drifted is False  # a quiet column stays quiet
    quality = _series(any_engine, built, CheckKind.quality, 365)
    cells = {c.column: c for c in quality.columns if c.at == day}
    amount = cells["amount"]
    assert (amount.missing_share, amount.status, amount.problem) == (0.8, "fail", "80.0% missing")
    assert amount.missing_over_limit is True  # 0.8 above the check's own limit (0.06)
    assert cells["country"].new_categories == ["ZZ"]
    assert cells["channel"].missing_over_limit is False
    [qbucket] = [b for b in quality.buckets if b.at == day]
    assert qbucket.status == CheckStatus.fail and qbucket.failed == 3


def test_latest_figures_are_the_newest_check_itself(built: world.World, any_engine: Engine) -> None:
    drift = _series(any_engine, built, CheckKind.drift, 365)
    newest = drift.recent[0]
    assert newest.id == built.checks["drift"]
    assert {c.column for c in drift.latest_columns if c.drifted} == {"amount"}
    assert all(c.check_id == newest.id and c.checks == 1 for c in drift.latest_columns)
    assert drift.latest_share_drifted == 0.25
    quality = _series(any_engine, built, CheckKind.quality, 365)
    over = {c.column for c in quality.latest_columns if c.missing_over_limit}
    assert over == {"channel"}  # 30 % missing against the stored 6 % limit


def test_the_drift_page_shows_the_episode_in_the_yearly_range(
    seeded: world.World, sqlite_engine: Engine
) -> None:
    import json

    day = _episode(sqlite_engine, seeded)
    at = open_page("drift", state={"model": "fraud-detector", "env": "production", "range": "1y"})
    assert metric(at, "Columns drifted now") == "1 of 4"  # the newest check: amount
    [heat] = [
        json.loads(c.proto.spec)["data"][0]
        for c in at.get("plotly_chart")
        if "Drift per column" in json.dumps(json.loads(c.proto.spec)["layout"].get("title"))
    ]
    days = [datetime.fromisoformat(x).replace(tzinfo=UTC) for x in heat["x"]]
    hour = heat["z"][heat["y"].index("hour")]
    assert hour[days.index(day)] == 3.0  # 9× past the line, shown capped at 3


def test_missing_limit_is_the_one_the_check_stored() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def one(column: dict[str, Any]) -> bucketed.BucketColumn:
        [found] = bucketed.columns(
            [(1, {"columns": {"a": column}})], at=at, version="1", kind=CheckKind.quality
        )
        return found

    assert one({"missing_share": 0.08, "missing_threshold": 0.06}).missing_over_limit is True
    assert one({"missing_share": 0.08, "missing_threshold": 0.1}).missing_over_limit is False
    # No stored limit: unknown, never a limit re-derived from today's configuration.
    assert one({"missing_share": 0.08}).missing_over_limit is None


def test_merge_takes_the_worst_of_each_measure() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def ks(p: float, drifted: bool) -> dict[str, Any]:
        column = {"method": "ks", "score": p, "threshold": 0.05, "drifted": drifted}
        return {"columns": {"x": column}}

    checks = [(1, ks(0.2, False)), (2, ks(0.001, True)), (3, ks(0.5, False))]
    [x] = bucketed.columns(checks, at=at, version="1", kind=CheckKind.drift)
    assert (x.drifted, x.score, x.check_id, x.checks) == (True, 0.001, 2, 3)  # p-value: low
    assert x.strength == pytest.approx(50.0)
    shares = [({"share_drifted": s}, None) for s in (0.0, 0.75, 0.25)]
    assert bucketed.share_drifted(shares) == 0.75


def test_segments_realised_else_estimated() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def m(segment: str, source: str, value: float, hour: int = 0) -> MetricReading:
        return MetricReading(
            at=at + timedelta(hours=hour),
            version="1",
            check_id=hour + 1,
            metric="accuracy",
            source=source,  # type: ignore[arg-type]
            segment=segment,
            value=value,
        )

    found = bucketed.best_per_segment(
        [
            m("all", "realised", 0.9),
            m("web", "estimated", 0.91),
            m("web", "realised", 0.88),
            m("app", "estimated", 0.8),
            m("web", "estimated", 0.93, hour=1),
        ]
    )
    assert [(r.segment, r.source, r.value) for r in found] == [
        ("app", "estimated", 0.8),
        ("web", "realised", 0.88),
        ("web", "estimated", 0.93),
    ]


def test_decay_series_carries_the_segment_values(built: world.World, any_engine: Engine) -> None:
    decay = _series(any_engine, built, CheckKind.decay, 2)
    newest = max(v.at for v in decay.segment_values)
    sources = {(v.segment, v.source) for v in decay.segment_values if v.at == newest}
    assert sources == {("web", "estimated"), ("app", "estimated")}  # labels lag
    older = {v.source for v in decay.segment_values if v.at < newest - timedelta(hours=30)}
    assert older == {"realised"}


def test_environments_in_promotion_order(tmp_path: Path, any_engine: Engine) -> None:
    settings = world.write_config(
        tmp_path,
        environments=[
            {"name": "a-prod", "cluster": "gpu-a100", "requires_previous": "m-canary"},
            {"name": "m-canary", "cluster": "gpu-a100", "requires_previous": "z-staging"},
            {"name": "z-staging", "cluster": "gpu-l4"},
            {"name": "b-sandbox", "cluster": "gpu-l4"},
        ],
    )[1]
    with Session(any_engine) as s:
        environments.sync(s, settings)
        order = [e.name for e in fleet.environments_in_order(s)]
    assert order == ["b-sandbox", "z-staging", "m-canary", "a-prod"]
