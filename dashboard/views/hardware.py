"""Hardware: GPU utilisation, memory and power per cluster / node / version over time;
GPU-hours and cost (per 1k predictions); idle GPUs; A100 vs L4; why numbers are missing."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import streamlit as st

from modeldeck.core.errors import ModeldeckError
from modeldeck.core.hardware.models import Finding, FindingKind, HardwareReport
from modeldeck.core.hardware.queries import GroupBy, HardwareView
from modeldeck.core.timeseries import span_text
from modeldeck.dashboard import charts, focus, loaders, safe, state

ANY = "(all)"
FLEET_SPAN = timedelta(days=31)
GROUPS: dict[str, GroupBy] = {"Cluster": "cluster", "Node": "node", "Version": "version"}
ATTRIBUTION = (FindingKind.attribution, FindingKind.missing_labels)
METRICS = (FindingKind.metrics_missing, FindingKind.metrics_stuck)


def status_banner(view: HardwareView) -> None:
    """Whether the numbers are current; a failed scrape's message names Prometheus' URL,
    shown without any credentials in it."""
    status = view.report.status
    message = safe.redact(status.message)
    if status.available:
        st.caption(f":material/check_circle: {message}")
    else:
        st.warning(message, icon=":material/sensors_off:")


def _text(f: Finding, sep: str = "  \n**Fix:** ") -> str:
    return safe.redact(f.summary + (f"{sep}{f.fix}" if f.fix else ""))


def findings(items: list[Finding]) -> None:
    idle = [f for f in items if f.kind == FindingKind.idle]
    attribution = [f for f in items if f.kind in ATTRIBUTION]
    metrics = [f for f in items if f.kind in METRICS]
    other = [f for f in items if f not in idle + attribution + metrics]
    st.subheader("Idle GPUs")
    if idle:
        for f in idle:
            st.warning(_text(f), icon=":material/hourglass_disabled:")
    else:
        st.caption("No GPU held by a version sat idle in the last scrape.")
    for title, group, icon in (
        ("Why some GPU time is not attributed", attribution, ":material/link_off:"),
        ("GPU metrics problems", metrics, ":material/sensors_off:"),
    ):
        if group:
            st.subheader(title)
            for f in group:
                # "info" explains (e.g. no pod labels, so pods are matched by name); a red box
                # is for what is broken
                show = {"info": st.info, "warning": st.warning}.get(f.severity, st.error)
                show(_text(f), icon=icon)
    if other:
        with st.expander(f"Other notes ({len(other)})"):
            for f in other:
                st.markdown("- " + _text(f, " — *") + ("*" if f.fix else ""))


def usage_table(report: HardwareReport) -> None:
    df = pd.DataFrame.from_records(
        [
            {
                "Model": v.model,
                "Version": v.version,
                "Environment": v.environment or "?",
                "Cluster": v.cluster,
                "GPU": v.gpu_model,
                "GPUs": v.gpu_count,
                "GPU-hours": v.gpu_hours,
                "Util %": v.util_mean,
                "Util p95 %": v.util_p95,
                "Memory GiB": v.memory_used_gib,
                "Power W": v.power_watts,
                "Energy kWh": v.energy_kwh,
                "Cost": v.cost,
                "Predictions": v.predictions,
                "Cost / 1k predictions": v.cost_per_1k_predictions,
                "Approximate": "shared GPU" if v.approximate else "",
            }
            for v in report.versions
        ]
    )
    st.dataframe(
        df,
        hide_index=True,
        key="hw_usage",
        column_config={
            "GPU-hours": st.column_config.NumberColumn(format="%.1f"),
            "Util %": st.column_config.ProgressColumn(
                format="%.0f%%",
                min_value=0,
                max_value=100,
                help="Blank: no utilisation readings (e.g. a MIG slice exporting only memory)",
            ),
            "Util p95 %": st.column_config.NumberColumn(
                format="%.0f",
                help="95th percentile of hourly means (of daily means beyond a 7-day range)",
            ),
            "Memory GiB": st.column_config.NumberColumn(format="%.1f"),
            "Power W": st.column_config.NumberColumn(format="%.0f"),
            "Cost": st.column_config.NumberColumn(format="$%.2f"),
            "Cost / 1k predictions": st.column_config.NumberColumn(format="$%.4f"),
        },
    )
    if all(v.predictions is None for v in report.versions):
        st.caption(
            "Cost per 1k predictions appears once prediction counts are available for "
            "the range (from ingested predictions)."
        )


def comparisons(report: HardwareReport) -> None:
    st.subheader("Same version, different GPUs")
    if not report.comparisons:
        st.caption("No version ran on more than one GPU model in this range.")
        return
    for comp in report.comparisons:
        df = pd.DataFrame.from_records(
            [
                {
                    "GPU": g.gpu_model,
                    "Environments": ", ".join(g.environments),
                    "GPU-hours": g.gpu_hours,
                    "Util %": g.util_mean,
                    "Util p95 %": g.util_p95,
                    "Cost": g.cost,
                    "Cost / 1k predictions": g.cost_per_1k_predictions,
                }
                for g in comp.by_gpu_model
            ]
        )
        st.markdown(f"**{comp.model} {comp.version}**")
        left, right = st.columns([3, 2])
        left.dataframe(
            df,
            hide_index=True,
            key=f"hw_cmp_{comp.model}_{comp.version}",
            column_config={
                "GPU-hours": st.column_config.NumberColumn(format="%.1f"),
                "Util %": st.column_config.NumberColumn(format="%.0f"),
                "Util p95 %": st.column_config.NumberColumn(format="%.0f"),
                "Cost": st.column_config.NumberColumn(format="$%.2f"),
                "Cost / 1k predictions": st.column_config.NumberColumn(format="$%.4f"),
            },
        )
        melted = df.melt(
            id_vars="GPU",
            value_vars=["Util %", "Util p95 %"],
            var_name="measure",
            value_name="value",
        )
        right.plotly_chart(
            charts.grouped_bars(
                melted,
                x="measure",
                y="value",
                colour_by="GPU",
                colours=charts.series_colours(sorted(df["GPU"])),
                title="Utilisation by GPU",
                y_title="%",
            ),
            key=f"hw_cmp_chart_{comp.model}_{comp.version}",
        )


def series_charts(view: HardwareView, group: str, model: str | None) -> None:
    points = pd.DataFrame.from_records([p.model_dump() for p in view.series])
    if points.empty:
        st.info("No GPU usage stored for this selection and range.", icon=":material/memory:")
        return
    names = sorted(points["group"].unique())
    colours = charts.series_colours(names)
    if group == "version" and model:
        version_colours = charts.version_colours(
            [v.version for v in loaders.versions(focus.url(), model)]
        )
        colours = {f"{model} {v}": c for v, c in version_colours.items()}
    width = span_text(view.bucket_seconds)
    tabs = st.tabs(["Utilisation", "Memory", "Power", "GPU-hours"])
    for tab, (y, title, unit) in zip(
        tabs,
        (
            ("util", "GPU utilisation (mean per GPU)", "%"),
            ("memory_gib", "GPU memory used (mean per GPU)", "GiB"),
            ("power_watts", "Power draw (mean per GPU)", "W"),
            ("gpu_hours", f"GPU-hours per {width}", "GPU-hours"),
        ),
        strict=True,
    ):
        with tab:
            data = points.dropna(subset=[y])
            if data.empty:
                st.caption(f"No {title.lower()} readings.")
                continue
            st.plotly_chart(
                charts.lines(
                    data,
                    colours,
                    y=y,
                    group="group",
                    title=title,
                    y_title=unit,
                    start=view.start,
                    end=view.end,
                    y_range=(0, 100) if y == "util" else None,
                ),
                key=f"hw_{group}_{y}",
            )
    st.caption(
        f"One point per {width}; utilisation is the mean of its readings, memory and power "
        "are means weighted by GPU time."
    )


def fleet_start(rng: state.TimeRange, model: str | None) -> datetime:
    """Where the page starts: the shared range, except the whole fleet on SQLite, which shows
    at most the last FLEET_SPAN and says so where the numbers are read.

    A year of a whole fleet is millions of hourly GPU rows (1.75M for 200 models): SQLite
    needs 7-18 s to add them up per view on the 2-core machine (tests/bench/bench_dashboard.py's
    data), far over the page budget; one model's year is within it."""
    if model is not None or state.engine().dialect.name != "sqlite":
        return rng.start
    if rng.end - rng.start <= FLEET_SPAN:
        return rng.start
    start = rng.end - FLEET_SPAN
    st.info(
        f"**Showing the last {FLEET_SPAN.days} days** ({start:%Y-%m-%d} to "
        f"{rng.end:%Y-%m-%d}), **not the {rng.label.lower()}**: on SQLite the whole fleet's "
        f"GPU hours over a longer range take too long to add up. Pick a model to see the "
        f"{rng.label.lower()}.",
        icon=":material/speed:",
    )
    return start


def render() -> None:
    st.title("GPU hardware")
    names = focus.models_or_welcome()
    url = focus.url()
    rng = state.time_range()
    f1, f2, f3 = st.columns([2, 2, 2])
    model = f1.selectbox("Model", [ANY, *names], key="hw_model")
    env = f2.selectbox("Environment", [ANY, *loaders.environment_names(url)], key="hw_env")
    group = GROUPS[
        f3.segmented_control("Per", list(GROUPS), default="Cluster", key="hw_group") or "Cluster"
    ]
    chosen_model = None if model == ANY else model
    start = fleet_start(rng, chosen_model)
    try:
        with st.spinner("Adding up GPU hours…"):
            view = loaders.hardware(
                url, start, rng.end, chosen_model, None if env == ANY else env, group
            )
    except ModeldeckError as exc:
        focus.stop_on_error(exc)
        return
    status_banner(view)
    report = view.report
    unattributed = sum(u.gpu_hours_unmatched for u in report.unattributed)
    k = st.columns(4)
    k[0].metric(
        "GPU-hours of versions",
        f"{report.gpu_hours:,.1f}",
        help="GPU time attributed to model versions in the range",
    )
    k[1].metric(
        "Cost",
        f"${report.cost:,.2f}" if report.cost is not None else "—",
        help="GPU-hours × gpu_cost_per_hour of each GPU model",
    )
    k[2].metric("Idle-GPU findings", sum(f.kind == FindingKind.idle for f in report.findings))
    k[3].metric(
        "Unattributed GPU-hours",
        f"{unattributed:,.1f}",
        help="GPU time held by pods no model version could be matched to",
    )
    series_charts(view, group, chosen_model)
    st.subheader("Usage and cost per version")
    if report.versions:
        usage_table(report)
    else:
        st.caption("No GPU time was attributed to a model version in this range.")
    comparisons(report)
    findings(report.findings)
    if report.unattributed:
        with st.expander("Unattributed GPU time per cluster"):
            st.dataframe(
                pd.DataFrame.from_records([u.model_dump() for u in report.unattributed]),
                hide_index=True,
                key="hw_unattributed",
            )


if __name__ == "__main__":
    render()
