"""Pieces the Decay, Data quality and Drift pages share: loading a check series with its empty
states, the status-per-bucket chart, and the list of recent checks with report links."""

from __future__ import annotations

import pandas as pd
import streamlit as st
import streamlit.components.v1 as components

from modeldeck.core.errors import ModeldeckError
from modeldeck.core.monitoring import reports
from modeldeck.core.monitoring.models import CheckKind
from modeldeck.core.monitoring.queries import Series
from modeldeck.core.timeseries import span_text
from modeldeck.dashboard import charts, focus, loaders, state

KIND_WORDS = {
    CheckKind.decay: "decay (performance)",
    CheckKind.quality: "data-quality",
    CheckKind.drift: "drift",
}


def load(model: str, env: str, kind: CheckKind) -> tuple[Series, dict[str, str]]:
    """The series and the model's version colours, or stop the page with an empty state
    that says what to do (model never ran here, or no check has run yet)."""
    rng = state.time_range()
    url = focus.url()
    try:
        found = loaders.series(url, model, env, kind, rng.start, rng.end)
        colours = charts.version_colours([v.version for v in loaders.versions(url, model)])
    except ModeldeckError as exc:
        focus.stop_on_error(exc)
        raise  # unreachable
    if not found.deployments:
        st.info(
            f"**{model}** did not run in **{env}** during the {rng.label.lower()}. Pick "
            "another environment or a longer range, or promote it from the Model page.",
            icon=":material/cloud_off:",
        )
        st.stop()
    if not found.buckets:
        st.info(
            f"No {KIND_WORDS[kind]} check has run for **{model}** in **{env}** in the "
            f"{rng.label.lower()} yet. The scheduler runs checks every "
            f"{state.settings().check_config(model).interval_minutes} minutes once "
            f"predictions{' and labels' if kind == CheckKind.decay else ''} arrive; run one "
            f"now with `modeldeck check {model} --env {env}`.",
            icon=":material/hourglass_empty:",
        )
        st.stop()
    return found, colours


def status_chart(series: Series) -> None:
    rows = [
        {"at": b.at, "status": status, "checks": n}
        for b in series.buckets
        for status, n in (
            ("fail", b.failed),
            ("warn", b.warned),
            ("error", b.errored),
            ("no_data", b.no_data),
            ("ok", b.checks - b.failed - b.warned - b.errored - b.no_data),
        )
        if n
    ]
    title = f"Check results per {span_text(series.bucket_seconds)}"
    st.plotly_chart(
        charts.status_bars(pd.DataFrame(rows), start=series.start, end=series.end, title=title),
        key=f"status_{series.kind}",
    )


def recent(series: Series) -> None:
    """The newest checks with a link to each one's evidently HTML report."""
    settings = state.settings()
    df = pd.DataFrame.from_records(
        [
            {
                "Window end": c.window_end,
                "Version": c.version,
                "Status": str(c.status),
                "Score": c.score,
                "Rows": c.rows,
                "Report": state.report_url(settings, c.id),
            }
            for c in series.recent
        ]
    )
    st.dataframe(
        charts.style_column(df, "Status", str),
        hide_index=True,
        key=f"recent_{series.kind}",
        column_config={
            "Window end": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
            "Score": st.column_config.NumberColumn(format="%.4g"),
            "Report": st.column_config.LinkColumn(
                "Report", display_text="open report ↗", help="evidently HTML report of this check"
            ),
        },
    )
    st.caption(
        f"The {len(series.recent)} newest checks in the range. The links open the "
        f"report from the API at {state.api_base_url(settings)} (it asks for a viewer "
        "token); 'Show report' below builds it right here."
    )


def report_viewer(series: Series) -> None:
    """Build (or fetch) the evidently HTML report of a chosen check in-process — the same code
    the API's /reports route runs — and show it here, with a download and the API link."""
    if not series.recent:
        return
    by_id = {c.id: c for c in series.recent}
    key = f"report_check_{series.kind}"
    chosen = st.selectbox(
        "Check",
        list(by_id),
        key=key,
        format_func=lambda i: (
            f"{by_id[i].window_end:%Y-%m-%d %H:%M} UTC · {by_id[i].version} · {by_id[i].status}"
        ),
    )
    left, right = st.columns([1, 3])
    shown = st.session_state.get(f"{key}_shown")
    if left.button("Show report", key=f"{key}_show", icon=":material/description:"):
        shown = chosen
        st.session_state[f"{key}_shown"] = chosen
    right.link_button(
        "Open in a new tab (API)",
        state.report_url(state.settings(), chosen),
        icon=":material/open_in_new:",
    )
    if shown != chosen:
        return
    try:
        with (
            st.spinner("Building the evidently report (first time only)…"),
            state.session() as session,
        ):
            html = reports.html(session, settings=state.settings(), check_id=chosen)
    except ModeldeckError as exc:
        st.warning(f"No report for this check: {exc}")
        return
    st.download_button(
        "Download the report (HTML)",
        html,
        file_name=f"check-{chosen}.html",
        mime="text/html",
        key=f"{key}_download",
    )
    components.html(html, height=900, scrolling=True)


def bucket_note(series: Series) -> str:
    width = span_text(series.bucket_seconds)
    if series.bucket_seconds <= 3600:
        return "one point per check hour"
    return f"one point per {width}: the newest check in each {width}"
