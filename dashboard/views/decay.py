"""Decay: performance over time per version, with deployment markers and reference lines;
the label-free estimate beside the realised value where labels lag; per segment."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from modeldeck.core.monitoring.models import CheckKind
from modeldeck.core.monitoring.readings import OVERALL
from modeldeck.dashboard import charts, checks, focus, state


def render() -> None:
    st.title("Performance decay")
    model, env = focus.model_and_environment()
    series, colours = checks.load(model, env, CheckKind.decay)
    cfg = state.settings().check_config(model)
    df = pd.DataFrame.from_records([m.model_dump() for m in series.metrics])
    if df.empty:
        st.warning(
            "Decay checks ran, but none recorded a metric value yet (labels have not "
            "arrived and no estimate was possible). Status of those checks:"
        )
        checks.status_chart(series)
        return
    metrics = sorted(df["metric"].unique())
    segments = [s for s in df["segment"].unique() if s != OVERALL]
    left, right = st.columns([1, 2])
    metric = left.selectbox("Metric", metrics, key="decay_metric")
    part = df[(df["metric"] == metric) & (df["segment"] == OVERALL)]
    if part.empty:  # the check only reports per segment
        part = df[df["metric"] == metric]
    references = {v: refs[metric] for v, refs in series.references.items() if metric in refs}

    latest = part.sort_values("at").groupby("source").tail(1).set_index("source")
    realised = latest["value"].get("realised")
    estimated = latest["value"].get("estimated")
    current_version = series.deployments[-1].version if series.deployments else None
    reference = references.get(current_version or "")
    k = st.columns(4)
    k[0].metric(
        f"Realised {metric}",
        f"{realised:.4g}" if realised is not None else "—",
        delta=f"{realised - reference:+.3g} vs reference"
        if realised is not None and reference is not None
        else None,
    )
    k[1].metric(
        f"Estimated {metric}",
        f"{estimated:.4g}" if estimated is not None else "—",
        help="Label-free estimate (CBPE), available before labels arrive",
    )
    k[2].metric(
        "Reference",
        f"{reference:.4g}" if reference is not None else "—",
        help=f"What version {current_version} scored at validation",
    )
    k[3].metric(
        "Failed decay checks",
        sum(b.failed for b in series.buckets),
        help=f"a drop of more than {cfg.performance_drop:.0%} fails",
    )

    realised_at = part[part["source"] == "realised"]["at"].max()
    estimated_at = part[part["source"] == "estimated"]["at"].max()
    if pd.notna(estimated_at) and (pd.isna(realised_at) or estimated_at > realised_at):
        since = f"since {realised_at:%Y-%m-%d %H:%M} UTC" if pd.notna(realised_at) else "yet"
        st.info(
            f"Labels lag: no realised {metric} {since}; the dashed line is the "
            "label-free estimate until they arrive.",
            icon=":material/schedule:",
        )
    st.plotly_chart(
        charts.metric_lines(
            part,
            colours,
            title=f"{metric} of {model} in {env}",
            references=references,
            spans=series.deployments,
            start=series.start,
            end=series.end,
            y_title=metric,
        ),
        key="decay_chart",
    )
    st.caption(
        "Solid: realised (with labels) · dashed: estimated · thin lines: each version's "
        f"reference · dotted verticals: deployments · {checks.bucket_note(series)}."
    )

    if segments:
        chosen = right.multiselect(
            "Segments", sorted(segments), default=sorted(segments)[:6], key="decay_segments"
        )
        # Realised where labels exist, else the estimate: chosen by core, drawn here.
        seg = pd.DataFrame.from_records([m.model_dump() for m in series.segment_values])
        if not seg.empty:
            seg = seg[(seg["metric"] == metric) & (seg["segment"].isin(chosen))]
        if not seg.empty:
            st.plotly_chart(
                charts.lines(
                    seg,
                    charts.series_colours(sorted(segments)),
                    y="value",
                    group="segment",
                    title=f"{metric} per segment",
                    y_title=metric,
                    start=series.start,
                    end=series.end,
                    spans=series.deployments,
                    version_colours=colours,
                ),
                key="decay_segments_chart",
            )
            st.caption("Per segment: realised where labels exist, else estimated.")
    else:
        right.caption(
            "This model's decay checks report no segments "
            "(set `segment_column` in its checks config)."
        )
    checks.status_chart(series)
    st.subheader("Evidently reports")
    checks.report_viewer(series)
    with st.expander("Recent decay checks"):
        checks.recent(series)


if __name__ == "__main__":
    render()
