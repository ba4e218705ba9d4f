"""Drift: share of drifted columns over time, per-column drift heatmap, the latest test per
column, and the evidently report of any check."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from modeldeck.core.monitoring.models import CheckKind
from modeldeck.dashboard import charts, checks, focus, state

# Drift strength: 1 = at the test's threshold; green below, amber to red above.
SCALE = [[0.0, "#e8f5e9"], [0.3, "#a5d6a7"], [0.33, "#fff59d"], [0.6, "#ffb74d"], [1.0, "#c62828"]]
MAX_SHOWN = 3.0


def render() -> None:
    st.title("Data drift")
    model, env = focus.model_and_environment()
    series, colours = checks.load(model, env, CheckKind.drift)
    cfg = state.settings().check_config(model)
    cols = pd.DataFrame.from_records([c.model_dump() for c in series.columns])
    share = pd.DataFrame.from_records(
        [{"at": b.at, "version": b.version, "share": b.share_drifted} for b in series.buckets]
    )

    # The newest check as it is; the charts below show the worst of each bucket.
    latest = pd.DataFrame.from_records([c.model_dump() for c in series.latest_columns])
    if latest.empty:
        latest = pd.DataFrame(
            columns=["column", "method", "score", "threshold", "drifted", "problem"]
        )
    drifted_now = sorted(latest[latest["drifted"] == True]["column"])  # noqa: E712
    # A column the test could not run on (e.g. no values in the window) is not in the share.
    untested = sorted(latest[latest["drifted"].isna()]["column"])
    k = st.columns(5)
    last_share = series.latest_share_drifted
    k[0].metric(
        "Share drifted (latest)",
        f"{last_share:.0%}" if last_share is not None else "—",
        help=f"of the newest check; dataset drift from {cfg.drift_share:.0%}",
    )
    k[1].metric(
        "Columns drifted now",
        f"{len(drifted_now)} of {len(latest) - len(untested)}",
        help="of the columns tested in the newest check"
        + (f"; not testable: {', '.join(untested)} (see the table below)" if untested else ""),
    )
    k[2].metric("Failed drift checks", sum(b.failed for b in series.buckets))
    k[3].metric("Checks in range", sum(b.checks for b in series.buckets))
    output = series.latest_prediction
    k[4].metric(
        "Prediction drift",
        {True: "drifted", False: "none"}.get(output.drifted, "—") if output else "—",
        help=f"the model's output in the newest check: {output.method or 'test'}"
        f" {output.score:.4g} (threshold {output.threshold:.4g})"
        if output and output.score is not None and output.threshold is not None
        else "the newest check did not test the model's output",
    )
    if drifted_now or (output and output.drifted):
        said = [f"**{c}**" for c in drifted_now]
        if output and output.drifted:
            said.append("the model's output (**prediction**)")
        st.warning("Drifting now: " + ", ".join(said), icon=":material/ssid_chart:")
    checks.segment_table(series)

    if share["share"].notna().any():
        st.plotly_chart(
            charts.lines(
                share.dropna(subset=["share"]),
                colours,
                y="share",
                title="Share of drifted columns",
                y_title="share",
                start=series.start,
                end=series.end,
                spans=series.deployments,
                threshold=cfg.drift_share,
                y_range=(0, 1.05),
            ),
            key="drift_share",
        )

    if cols.empty or cols["strength"].isna().all():
        st.info("These drift checks report no per-column scores.")
    else:
        heat = cols.dropna(subset=["strength"])
        heat = heat.assign(value=heat["strength"].clip(upper=MAX_SHOWN), hover=hover(heat))
        st.plotly_chart(
            charts.heatmap(
                heat,
                value="value",
                title="Drift per column (1 = at the test's threshold)",
                colour_scale=SCALE,
                zmin=0,
                zmax=MAX_SHOWN,
                colourbar="× threshold",
                hover="%{y} · %{x|%Y-%m-%d %H:%M}<br>%{text}<extra></extra>",
                start=series.start,
                end=series.end,
            ),
            key="drift_heatmap",
        )
        st.caption(
            "Colour: how far each column is past its test's threshold (p-value tests "
            "as threshold ÷ p, distances as score ÷ threshold); red = drifted. "
            f"{checks.bucket_note(series).capitalize()}: the strongest drift of the bucket."
        )
        st.subheader("Latest check, per column")
        table = latest[["column", "method", "score", "threshold", "drifted", "problem"]].fillna(
            {"problem": ""}  # most columns have nothing to note: blank, not "None"
        )
        table = table.rename(
            columns={
                "column": "Column",
                "method": "Test",
                "score": "Score",
                "threshold": "Threshold",
                "drifted": "Drifted",
                "problem": "Note",
            }
        )
        st.dataframe(
            table.sort_values(["Drifted", "Column"], ascending=[False, True]),
            hide_index=True,
            key="drift_latest",
            column_config={
                "Score": st.column_config.NumberColumn(format="%.4g"),
                "Threshold": st.column_config.NumberColumn(format="%.4g"),
            },
        )
    checks.status_chart(series)
    st.subheader("Evidently reports")
    checks.report_viewer(series)
    with st.expander("Recent drift checks"):
        checks.recent(series)


def hover(df: pd.DataFrame) -> pd.Series:
    """'wasserstein 0.4 (threshold 0.1): drifted · strongest of 8 checks' per row, built
    column-wise (fast)."""

    def fmt(values: pd.Series) -> pd.Series:
        return values.map(lambda v: "—" if pd.isna(v) else f"{v:.4g}")

    verdict = df["drifted"].map({True: "drifted", False: "no drift"}).fillna("?")
    merged = df["checks"].map(lambda n: f" · strongest of {n} checks" if n > 1 else "")
    return (
        df["method"].fillna("test")
        + " "
        + fmt(df["score"])
        + " (threshold "
        + fmt(df["threshold"])
        + "): "
        + verdict
        + merged
    )


if __name__ == "__main__":
    render()
