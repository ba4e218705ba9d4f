"""Overview: every model × environment in one grid — version, since when, who, health, alerts."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from modeldeck.core.fleet import GPU, FleetRow, Health
from modeldeck.dashboard import focus, loaders, state, tables

RANK = {"fail": 4, "error": 3, "warn": 2, "no_data": 1, "ok": 0}
HEALTH_COLUMNS = {"drift": "Drift", "quality": "Quality", "decay": "Decay", GPU: "GPU"}
SORTS = {
    "Problems first": (["_rank", "Model", "Environment"], [False, True, True]),
    "Model": (["Model", "Environment"], [True, True]),
    "Team": (["Team", "Model", "Environment"], [True, True, True]),
    "Recently promoted": (["Since"], [False]),
}


def ago(at: datetime | None, now: datetime) -> str:
    if at is None:
        return ""
    seconds = (now - at).total_seconds()
    if seconds < 3600:
        return f"{max(int(seconds // 60), 0)} min"
    if seconds < 86400 * 2:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


def badge(kind: str, health: Health | None, now: datetime) -> tuple[str, str | None]:
    """One cell: its text (a word, never colour alone) and its style key."""
    if health is None:
        return "", None  # not deployed in this environment
    if health.status is None:
        return "no checks", "muted"
    if health.stale:
        return f"stale {ago(health.at, now)}", "stale"
    word = health.label or str(health.status).replace("_", " ")
    if kind == GPU and health.status == "ok" and health.score is not None:
        word = f"{health.score:.0f}% util"
    return word, str(health.status)


def rank(row: FleetRow) -> float:
    """How much a cell needs attention: worst check, then firing alerts, then staleness;
    cells where nothing runs come last."""
    if not row.version:
        return -1.0
    worst = max(
        (RANK[str(h.status)] for h in row.health.values() if h.status is not None), default=0
    )
    stale = any(h.stale for h in row.health.values())
    return worst + (2 if row.alerts_firing else 0) + (0.5 if stale else 0)


def frame(
    rows: list[FleetRow], now: datetime, range_key: str = state.DEFAULT_RANGE
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The grid and, cell by cell, its style keys. A model's link keeps the time range (it
    opens a new tab: a new session that knows only the URL)."""
    records, styles = [], []
    for r in rows:
        alerts = f"{r.alerts_firing} firing" if r.alerts_firing else ""
        if r.alerts_snoozed:
            alerts += f" +{r.alerts_snoozed} snoozed"
        cells = {
            title: badge(kind, r.health.get(kind) if r.version else None, now)
            for kind, title in HEALTH_COLUMNS.items()
        }
        records.append(
            {
                "Model": f"model?model={r.model}&env={r.environment}&range={range_key}",
                "Team": r.team or "—",
                "Environment": r.environment,
                "Version": r.version or "not deployed",
                "Since": tables.when(r.since),  # text: sorts like the time, blank if none
                "Promoted by": r.promoted_by or "",
                **{title: text for title, (text, _) in cells.items()},
                "Alerts": alerts.strip(),
                "Rollout": r.in_flight or "",
                "_rank": rank(r),
            }
        )
        styles.append(
            {
                **{title: style for title, (_, style) in cells.items()},
                "Version": None if r.version else "muted",
                "Alerts": ("fail" if r.worst_severity == "critical" else "warn")
                if r.alerts_firing
                else "muted"
                if r.alerts_snoozed
                else None,
                "Rollout": "warn" if r.in_flight else None,
            }
        )
    return pd.DataFrame.from_records(records), pd.DataFrame.from_records(styles)


def render() -> None:
    counts = focus.database_ready()
    if counts.models == 0:
        focus.welcome(counts)
        return
    rng = state.time_range()
    now = rng.end
    rows = loaders.fleet(focus.url(), now)
    st.title("Fleet overview")
    st.caption(
        "Every model in every environment: the version running now and the latest "
        "drift, data-quality, decay and GPU result. Click a model for its timeline."
    )
    running = [r for r in rows if r.version]
    cols = st.columns(5)
    cols[0].metric("Models", counts.models)
    cols[1].metric("Running deployments", len(running))
    cols[2].metric("Rollouts in flight", sum(1 for r in rows if r.in_flight))
    cols[3].metric("Firing alerts", sum(r.alerts_firing for r in rows))
    cols[4].metric(
        "Failing checks",
        sum(1 for r in running for h in r.health.values() if h.status == "fail" and not h.stale),
    )

    teams = sorted({r.team or "—" for r in rows})
    envs = sorted({r.environment for r in rows})
    f1, f2, f3, f4 = st.columns([3, 3, 2, 2])
    chosen_teams = f1.multiselect("Team", teams, key="overview_teams", placeholder="All teams")
    chosen_envs = f2.multiselect(
        "Environment", envs, key="overview_envs", placeholder="All environments"
    )
    sort = f3.selectbox("Sort by", list(SORTS), key="overview_sort")
    only_problems = f4.toggle(
        "Only problems",
        key="overview_problems",
        help="Hide cells whose checks are all ok and have no alerts",
    )

    df, styles = frame(rows, now, rng.key)
    if chosen_teams:
        df = df[df["Team"].isin(chosen_teams)]
    if chosen_envs:
        df = df[df["Environment"].isin(chosen_envs)]
    if only_problems:
        df = df[df["_rank"] > 0]  # running with a problem (not-deployed cells rank -1)
    by, ascending = SORTS[sort]
    df = df.sort_values(by, ascending=ascending, na_position="last", kind="stable")
    if df.empty:
        st.info("Nothing matches these filters.", icon=":material/filter_alt_off:")
        return
    shown = df.drop(columns=["_rank"])
    st.dataframe(
        tables.styled(shown, styles),
        hide_index=True,
        height=min(38 + 35 * len(df), 720),
        column_config={
            "Model": st.column_config.LinkColumn(
                "Model", display_text=r"model=([^&]+)", help="Open the model's page"
            ),
            "Alerts": st.column_config.TextColumn("Alerts", help="Firing (and snoozed) alerts"),
            "Rollout": st.column_config.TextColumn(
                "Rollout", help="A rollout in flight: its version and state", width="medium"
            ),
            **{
                title: st.column_config.TextColumn(title, width="small")
                for title in HEALTH_COLUMNS.values()
            },
        },
        key="fleet_grid",
    )
    st.caption(
        f"{len(df)} of {len(rows)} model × environment cells. Health is the latest "
        "check: ok · warn · fail · error (the check could not run) · no data · stale "
        "(no check for longer than the model's no-data limit). GPU: mean utilisation "
        "over 24 h, or the GPU alert firing (idle, memory full, …)."
    )


if __name__ == "__main__":
    render()
