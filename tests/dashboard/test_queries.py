"""The read-side queries behind the pages, on SQLite and PostgreSQL: time buckets in SQL,
latest checks, alerts search, per-column readings of the checks' real `details`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core import fleet
from modeldeck.core.alerts import queries as alert_queries
from modeldeck.core.alerts.models import AlertStatus
from modeldeck.core.config import Settings
from modeldeck.core.errors import NotFound
from modeldeck.core.monitoring import drift, queries, readings
from modeldeck.core.monitoring.models import CheckKind
from modeldeck.core.timeseries import bucket_seconds, floor_time
from tests.dashboard import world


@pytest.fixture
def built(any_engine: Engine, dash_settings: Settings) -> world.World:
    return world.build(any_engine, dash_settings)


def test_bucket_width_keeps_charts_small() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert bucket_seconds(start, start + timedelta(days=1)) == 3600
    assert bucket_seconds(start, start + timedelta(days=30)) == 3 * 3600
    assert bucket_seconds(start, start + timedelta(days=365)) == 86400
    assert bucket_seconds(start, start + timedelta(days=3650)) == 7 * 86400
    assert floor_time(datetime(2026, 1, 1, 13, 59, tzinfo=UTC), 3600) == datetime(
        2026, 1, 1, 13, tzinfo=UTC
    )


def test_series_buckets_in_sql(built: world.World, any_engine: Engine) -> None:
    end = built.now + timedelta(hours=1)
    with Session(any_engine) as s:
        daily = queries.series(
            s,
            model="fraud-detector",
            environment="production",
            kind=CheckKind.drift,
            start=end - timedelta(days=365),
            end=end,
        )
        hourly = queries.series(
            s,
            model="fraud-detector",
            environment="production",
            kind=CheckKind.drift,
            start=end - timedelta(days=3),
            end=end,
        )
    assert daily.bucket_seconds == 86400
    assert all(b.at.hour == 0 and b.at.minute == 0 for b in daily.buckets)
    assert all(b.checks <= 24 for b in daily.buckets)
    # Each bucket's details come from its newest check: one reading per column per bucket.
    assert len(daily.columns) == 4 * len(daily.buckets)
    # Every hourly check lands in exactly one daily bucket.
    with Session(any_engine) as s:
        per_hour = queries.buckets(
            s,
            deployment_ids=[d.deployment_id for d in daily.deployments],
            kind=CheckKind.drift,
            start=daily.start,
            end=daily.end,
            seconds=3600,
        )
    assert sum(b.checks for b in daily.buckets) == sum(b.checks for b in per_hour)
    assert len(per_hour) == sum(b.checks for b in per_hour)  # one check per hour
    assert hourly.bucket_seconds == 3600
    assert all(b.checks == 1 for b in hourly.buckets)
    assert len(hourly.buckets) == 72
    assert [b.at for b in hourly.buckets] == sorted(b.at for b in hourly.buckets)
    # The newest bucket's share comes from the newest check's details.
    assert hourly.buckets[-1].share_drifted == 0.25
    assert {c.column for c in hourly.columns if c.drifted} == {"amount"}


def test_series_count_matches_rows(built: world.World, any_engine: Engine) -> None:
    from sqlmodel import func, select

    from modeldeck.core.monitoring.models import CheckResult

    end = built.now + timedelta(hours=1)
    with Session(any_engine) as s:
        stored = s.exec(
            select(func.count())
            .select_from(CheckResult)
            .where(CheckResult.kind == CheckKind.quality)
        ).one()
        found = queries.series(
            s,
            model="fraud-detector",
            environment="production",
            kind=CheckKind.quality,
            start=end - timedelta(days=365),
            end=end,
        )
    assert sum(b.checks for b in found.buckets) == stored
    assert sum(b.failed for b in found.buckets) == 24  # the upstream broke a day ago


def test_decay_readings_and_references(built: world.World, any_engine: Engine) -> None:
    end = built.now + timedelta(hours=1)
    with Session(any_engine) as s:
        found = queries.series(
            s,
            model="fraud-detector",
            environment="production",
            kind=CheckKind.decay,
            start=end - timedelta(days=2),
            end=end,
        )
    sources = {(m.source, m.segment) for m in found.metrics}
    assert sources == {
        ("realised", "all"),
        ("estimated", "all"),
        ("realised", "web"),
        ("estimated", "web"),
        ("realised", "app"),
        ("estimated", "app"),
    }
    newest = max(m.at for m in found.metrics)
    assert {m.source for m in found.metrics if m.at == newest and m.segment == "all"} == {
        "estimated"
    }  # labels lag: no realised value in the newest window
    assert found.references["1.1.0"]["accuracy"] == 0.96


def test_unknown_names_are_not_found(built: world.World, any_engine: Engine) -> None:
    end = built.now
    with Session(any_engine) as s:
        with pytest.raises(NotFound):
            queries.series(
                s,
                model="nope",
                environment="production",
                kind=CheckKind.drift,
                start=end - timedelta(days=1),
                end=end,
            )
        with pytest.raises(NotFound):
            queries.series(
                s,
                model="fraud-detector",
                environment="nowhere",
                kind=CheckKind.drift,
                start=end - timedelta(days=1),
                end=end,
            )
        with pytest.raises(NotFound):
            alert_queries.search(s, environment="nowhere")


def test_fleet_overview(built: world.World, any_engine: Engine) -> None:
    with Session(any_engine) as s:
        rows = fleet.overview(s, settings=built.settings, now=built.now)
    cell = next(r for r in rows if (r.model, r.environment) == ("fraud-detector", "production"))
    assert (cell.version, cell.alerts_firing, cell.worst_severity) == ("1.1.0", 2, "critical")
    assert cell.health["drift"].check_id == built.checks["drift"]
    assert cell.health["quality"].status == "fail"
    assert cell.health["gpu"].score == 60.0
    idle = next(r for r in rows if (r.model, r.environment) == ("search-ranker", "staging"))
    assert idle.version is None and idle.health == {}


def test_alert_search_keeps_old_open_alerts(built: world.World, any_engine: Engine) -> None:
    with Session(any_engine) as s:
        recent = alert_queries.search(s, since=built.now + timedelta(hours=1))
        everything = alert_queries.search(s, since=built.now - timedelta(days=30))
        resolved = alert_queries.search(
            s, statuses=(AlertStatus.resolved,), since=built.now - timedelta(days=30)
        )
    assert {a.id for a in recent.data} == {built.alerts["drift"], built.alerts["quality"]}
    assert recent.by_status == {"firing": 2, "snoozed": 0, "resolved": 0}
    assert everything.by_status["resolved"] == 1 and everything.count == 3
    assert [a.id for a in resolved.data] == [built.alerts["old"]] and resolved.count == 1


def test_latest_checks_for_slack(built: world.World, any_engine: Engine) -> None:
    with Session(any_engine) as s:
        found = queries.latest_checks(s, model="fraud-detector")
        none = queries.latest_checks(s, model="churn-predictor")
    assert [(c.environment, c.version, c.drifted_columns) for c in found] == [
        ("production", "1.1.0", ["amount"])
    ]
    assert found[0].id == built.checks["drift"]
    assert none == []


def test_readings_of_the_drift_checks_own_output() -> None:
    result = drift.summarise(
        [
            drift.ColumnDrift(
                "amount", "numerical", "wasserstein", "Wasserstein", 0.1, 0.35, True, 100, 100
            ),
            drift.ColumnDrift(
                "country", "categorical", "chisquare", "chi-square", 0.05, 0.2, False, 100, 100
            ),
            drift.ColumnDrift(
                "empty",
                "numerical",
                None,
                None,
                None,
                None,
                None,
                0,
                100,
                error="no values in the reference",
            ),
        ],
        drift_share=0.5,
    )
    details = {
        "columns": {c.column: c.to_dict() for c in result.columns},
        "share_drifted": result.share,
    }
    at = datetime(2026, 1, 1, tzinfo=UTC)
    cols = {c.column: c for c in readings.columns(details, at=at, version="1", check_id=1)}
    assert cols["amount"].strength == pytest.approx(3.5)
    assert cols["country"].strength == pytest.approx(0.25)  # p-value: threshold / score
    assert cols["empty"].strength is None and cols["empty"].drifted is None
    assert readings.share_drifted(details) == 0.5


@pytest.mark.parametrize(
    "details",
    [
        {},
        {"columns": "garbage"},
        {"columns": [1, "x"]},
        {"metrics": {"auc": "high"}},
        {"segments": [None]},
        {"columns": {"a": {"score": float("nan")}}},
    ],
)
def test_readings_survive_odd_details(details: dict[str, object]) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    cols = readings.columns(details, at=at, version="1", check_id=1)
    assert all(c.score is None for c in cols)
    assert readings.metrics(details, at=at, version="1", check_id=1) == []
    assert readings.reference(details) == {}
