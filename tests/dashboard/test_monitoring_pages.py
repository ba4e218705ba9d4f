"""Decay, Data quality and Drift pages: what they show matches the stored check results."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from modeldeck.core.monitoring.models import CheckKind, CheckResult
from tests.dashboard.conftest import metric, open_page, texts
from tests.dashboard.world import World

FRAUD_PROD = {"model": "fraud-detector", "env": "production"}


def charts(at: Any) -> dict[str, dict[str, Any]]:
    """Plotly figures by their title."""
    out = {}
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        title = (spec["layout"].get("title") or {}).get("text", "")
        out[title] = spec
    return out


def newest(engine: Engine, kind: CheckKind) -> CheckResult:
    with Session(engine) as s:
        row = s.exec(
            select(CheckResult)
            .where(CheckResult.kind == kind)
            .order_by(col(CheckResult.window_end).desc())
        ).first()
    assert row is not None
    return row


def test_decay_shows_realised_estimated_reference_and_segments(
    seeded: World, sqlite_engine: Engine
) -> None:
    at = open_page("decay", state=FRAUD_PROD)
    last = newest(sqlite_engine, CheckKind.decay).details["metrics"]["accuracy"]
    assert last["realised"] is None  # labels lag in the newest window
    assert metric(at, "Estimated accuracy") == f"{last['estimated']:.4g}"
    assert metric(at, "Reference") == "0.96"
    assert "Labels lag: no realised accuracy since" in texts(at)
    figures = charts(at)
    main = figures["accuracy of fraud-detector in production"]
    names = {t["name"] for t in main["data"]}
    assert {"1.1.0 realised", "1.1.0 estimated", "1.0.0 realised"} <= names
    assert any(s.get("type") == "line" and s["y0"] == 0.96 for s in main["layout"]["shapes"])
    vertical = [
        s for s in main["layout"]["shapes"] if s.get("x0") == s.get("x1") and s.get("yref") != "y"
    ]
    assert len(vertical) == 2  # both production deployments in the range are marked
    segments = figures["accuracy per segment"]
    assert {t["name"] for t in segments["data"]} == {"app", "web"}
    newest_estimate = [t for t in main["data"] if t["name"] == "1.1.0 estimated"][0]["y"][-1]
    assert newest_estimate == last["estimated"]


def test_drift_page(seeded: World, sqlite_engine: Engine) -> None:
    at = open_page("drift", state=FRAUD_PROD)
    row = newest(sqlite_engine, CheckKind.drift)
    assert metric(at, "Share drifted (latest)") == f"{row.details['share_drifted']:.0%}"
    assert metric(at, "Columns drifted now") == "1 of 4"
    assert metric(at, "Prediction drift") == "none"
    assert "Drifting now: **amount**" in texts(at)
    figures = charts(at)
    heat = figures["Drift per column (1 = at the test's threshold)"]["data"][0]
    assert heat["type"] == "heatmap"
    assert sorted(heat["y"]) == ["amount", "channel", "country", "hour"]
    amount = heat["z"][heat["y"].index("amount")]
    assert amount[-1] == 3.0  # 0.4 / 0.1 = 4× past the line, shown capped at 3
    latest = {df.value.columns[0]: df.value for df in at.dataframe}["Column"]
    assert list(latest[latest["Drifted"]]["Column"]) == ["amount"]
    share = figures["Share of drifted columns"]
    assert any(s.get("y0") == 0.5 for s in share["layout"]["shapes"])  # drift_share line
    # The recent checks list the newest first, by id (pick one to open its report).
    recent = {df.value.columns[0]: df.value for df in at.dataframe}["Window end"]
    assert recent["Check"].iloc[0] == row.id


def test_drift_page_counts_tested_columns_and_shows_prediction_drift(
    seeded: World, sqlite_engine: Engine
) -> None:
    """An upstream break empties a column: it is no drift evidence either way, so it leaves
    the count (as it leaves the stored share) and the table says why."""
    with Session(sqlite_engine) as s:
        row = s.get(CheckResult, newest(sqlite_engine, CheckKind.drift).id)
        assert row is not None
        details = json.loads(json.dumps(row.details))
        details["columns"]["hour"].update(
            score=None, drifted=None, method=None, error="no values in the current window"
        )
        details["share_drifted"], details["columns_tested"] = 1 / 3, 3
        details["prediction"].update(score=0.3, drifted=True)
        row.details = details
        s.add(row)
        s.commit()
    at = open_page("drift", state=FRAUD_PROD)
    assert metric(at, "Columns drifted now") == "1 of 3"
    assert metric(at, "Share drifted (latest)") == "33%"
    assert metric(at, "Prediction drift") == "drifted"
    assert "Drifting now: **amount**, the model's output (**prediction**)" in texts(at)
    latest = {df.value.columns[0]: df.value for df in at.dataframe}["Column"]
    notes = dict(zip(latest["Column"], latest["Note"], strict=True))
    assert notes["hour"] == "no values in the current window"
    assert notes["amount"] == ""  # blank, not "None"


def test_quality_page(seeded: World, sqlite_engine: Engine) -> None:
    at = open_page("quality", state=FRAUD_PROD)
    row = newest(sqlite_engine, CheckKind.quality)
    failing = {name for name, c in row.details["columns"].items() if c["status"] == "fail"}
    assert failing == {"channel", "country"}
    said = texts(at)
    assert "**channel**: 30.0% missing" in said
    assert "**country**: 37 values in categories the reference never had: XX" in said
    assert metric(at, "Columns over the missing limit") == "1 of 4"
    assert metric(at, "Columns with new categories") == "1"
    [new] = [df.value for df in at.dataframe if "New value" in df.value.columns]
    assert new[["Column", "New value"]].values.tolist() == [["country", "XX"]]
    heat = charts(at)["Missing share per column"]["data"][0]
    channel = heat["z"][heat["y"].index("channel")]
    assert channel[-1] == 0.3


def test_a_model_with_no_checks_yet(seeded: World) -> None:
    for page in ("decay", "quality", "drift"):
        at = open_page(page, state={"model": "churn-predictor", "env": "staging"})
        assert "check has run for **churn-predictor** in **staging**" in texts(at)
        assert "modeldeck check churn-predictor --env staging" in texts(at)
        assert not at.get("plotly_chart")


def test_a_model_that_never_ran_in_the_environment(seeded: World) -> None:
    at = open_page("drift", state={"model": "search-ranker", "env": "production"})
    assert "did not run in **production**" in texts(at)


def test_long_range_is_bucketed_daily(seeded: World) -> None:
    at = open_page("drift", state={**FRAUD_PROD, "range": "1y"})
    share = charts(at)["Share of drifted columns"]
    points = sum(
        len(t["x"])
        for t in share["data"]
        if t["type"] == "scatter" and t.get("name") in ("1.0.0", "1.1.0")
    )
    assert 19 <= points <= 22  # ~20 days of hourly checks → one point per day and version
    assert "one point per 1 d" in texts(at).lower()


def segment_details(engine: Engine, kind: CheckKind, **extra: Any) -> None:
    """Give the newest check of `kind` what a segmented check stores (segments.py)."""
    with Session(engine) as s:
        row = s.get(CheckResult, newest(engine, kind).id)
        assert row is not None
        row.details = {**json.loads(json.dumps(row.details)), "segment_column": "region", **extra}
        s.add(row)
        s.commit()


def segment_table(at: Any) -> Any:
    [table] = [df.value for df in at.dataframe if "Segment" in df.value.columns]
    return table


def test_drift_and_quality_pages_show_failing_segments(
    seeded: World, sqlite_engine: Engine
) -> None:
    drifted = "3 of 5 columns drifted (60%; dataset drift at 50%): amount (ks 0.31, p 1e-12)"
    segment_details(
        sqlite_engine,
        CheckKind.drift,
        segment_failures=[
            {"segment": "region=eu", "status": "fail", "rows": 812, "finding": drifted},
            {"segment": "region=us", "status": "warn", "rows": 95, "finding": "1 of 5 …"},
        ],
    )
    at = open_page("drift", state=FRAUD_PROD)
    assert "Segments by region" in [h.value for h in at.subheader]
    table = segment_table(at)
    assert table.values.tolist() == [
        ["region=eu", "fail", 812, drifted],
        ["region=us", "warn", 95, "1 of 5 …"],
    ]

    missing = "age: 40.0% missing (reference 0.0%, allowed 5.0%)"
    segment_details(
        sqlite_engine,
        CheckKind.quality,
        segment_failures=[
            {"segment": "region=eu", "status": "fail", "rows": 812, "finding": missing}
        ],
    )
    at = open_page("quality", state=FRAUD_PROD)
    assert segment_table(at).values.tolist() == [["region=eu", "fail", 812, missing]]


def test_a_segmented_check_without_failures_says_so(seeded: World, sqlite_engine: Engine) -> None:
    segment_details(sqlite_engine, CheckKind.drift, segment_failures=[])
    at = open_page("drift", state=FRAUD_PROD)
    assert "No region segment warns or fails in the newest check." in texts(at)
    assert not [df for df in at.dataframe if "Segment" in df.value.columns]
    at = open_page("quality", state=FRAUD_PROD)  # not segmented: no section at all
    assert "Segments by" not in texts(at)
