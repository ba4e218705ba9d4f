"""Data quality: missing values per column over time, new categories, type and range problems."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from modeldeck.core.monitoring.models import CheckKind
from modeldeck.dashboard import charts, checks, focus, state

MISSING_SCALE = [[0.0, "#f1f8e9"], [0.05, "#fff59d"], [0.3, "#ff9800"], [1.0, "#b71c1c"]]


def render() -> None:
    st.title("Data quality")
    model, env = focus.model_and_environment()
    series, _ = checks.load(model, env, CheckKind.quality)
    cfg = state.settings().check_config(model)
    cols = pd.DataFrame.from_records([c.model_dump() for c in series.columns])
    if cols.empty:
        st.info("These data-quality checks report no per-column results.")
        checks.status_chart(series)
        return
    # The newest check as it is (not merged into its bucket); limits are the check's own.
    latest = pd.DataFrame.from_records([c.model_dump() for c in series.latest_columns])
    if latest.empty:
        latest = cols.iloc[0:0]
    too_many_missing = latest[latest["missing_over_limit"] == True]  # noqa: E712
    new_cats = cols[cols["new_categories"].map(len) > 0]
    bad_types = latest[latest["type_ok"] == False]  # noqa: E712
    k = st.columns(4)
    k[0].metric(
        "Columns over the missing limit",
        f"{len(too_many_missing)} of {len(latest)}",
        help="in the newest check, each column against the limit that check stored "
        f"(its reference's missing share + {cfg.max_missing_share:.0%})",
    )
    k[1].metric(
        "Columns with new categories",
        new_cats["column"].nunique(),
        help="values never seen in the reference data, in the range",
    )
    k[2].metric("Type mismatches (latest)", len(bad_types))
    k[3].metric("Failed quality checks", sum(b.failed for b in series.buckets))
    failing = latest[(latest["status"] == "fail") & latest["problem"].notna()]
    problems = [f"**{r.column}**: {r.problem}" for r in failing.itertuples()]
    if not problems:  # a check that does not judge columns itself
        problems = [
            f"**{r.column}**: {r.missing_share:.0%} missing" for r in too_many_missing.itertuples()
        ]
        problems += [f"**{r.column}** has the wrong type" for r in bad_types.itertuples()]
    if problems:
        st.error("Latest check: " + "; ".join(problems), icon=":material/report:")
    checks.segment_table(series)

    missing = cols.dropna(subset=["missing_share"])
    if not missing.empty:
        new = missing["new_categories"].map(lambda v: f" · new: {', '.join(v[:5])}" if v else "")
        limit = missing["missing_threshold"].map(
            lambda v: "" if pd.isna(v) else f" (limit {v:.1%})"
        )
        over = missing["missing_over_limit"].map(lambda v: " · over the limit" if v is True else "")
        share = missing["missing_share"].map("{:.1%} missing".format)
        missing = missing.assign(hover=share + limit + over + new)
        st.plotly_chart(
            charts.heatmap(
                missing,
                value="missing_share",
                title="Missing share per column",
                colour_scale=MISSING_SCALE,
                zmin=0,
                zmax=1,
                colourbar="missing",
                hover="%{y} · %{x|%Y-%m-%d %H:%M}<br>%{text}<extra></extra>",
                start=series.start,
                end=series.end,
            ),
            key="quality_missing",
        )
        st.caption(
            f"A column fails above its reference's missing share + "
            f"{cfg.max_missing_share:.0%} (the limit each check stored) · "
            f"{checks.bucket_note(series)}: the highest missing share of the bucket."
        )

    st.subheader("New categories")
    if new_cats.empty:
        st.caption("No value outside the reference categories in this range.")
    else:
        seen = (
            new_cats.explode("new_categories")
            .groupby(["column", "new_categories"], as_index=False)
            .agg(first_seen=("at", "min"), last_seen=("at", "max"))
            .rename(
                columns={
                    "column": "Column",
                    "new_categories": "New value",
                    "first_seen": "First seen",
                    "last_seen": "Last seen",
                }
            )
        )
        st.dataframe(
            seen.sort_values("First seen"),
            hide_index=True,
            key="quality_new",
            column_config={
                c: st.column_config.DatetimeColumn(c, format="YYYY-MM-DD HH:mm")
                for c in ("First seen", "Last seen")
            },
        )

    st.subheader("Latest check, per column")
    if series.recent:
        st.caption(f"Window ending {series.recent[0].window_end:%Y-%m-%d %H:%M} UTC.")
    table = latest[
        [
            "column",
            "missing_share",
            "missing_threshold",
            "out_of_range_share",
            "type_ok",
            "new_categories",
            "problem",
        ]
    ].rename(
        columns={
            "column": "Column",
            "missing_share": "Missing",
            "missing_threshold": "Missing limit",
            "out_of_range_share": "Out of range",
            "type_ok": "Type ok",
            "new_categories": "New categories",
            "problem": "Problem",
        }
    )
    # A measure this check does not report is left out rather than shown as a column of None.
    table = table.drop(
        columns=[c for c in ("Out of range", "Missing limit") if table[c].isna().all()]
    ).assign(Problem=table["Problem"].fillna(""))
    st.dataframe(
        table,
        hide_index=True,
        key="quality_latest",
        column_config={
            "Missing": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1),
            "Missing limit": st.column_config.NumberColumn(format="percent"),
            "Out of range": st.column_config.NumberColumn(format="percent"),
        },
    )
    checks.status_chart(series)
    st.subheader("Evidently reports")
    checks.report_viewer(series)
    with st.expander("Recent quality checks"):
        checks.recent(series)


if __name__ == "__main__":
    render()
