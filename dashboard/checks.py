"""Pieces the Decay, Data quality and Drift pages share: loading a check series with its empty
states, the status-per-bucket chart, the list of recent checks, and the evidently report of a
chosen check, built in-process by the core reports function (the API's /reports route needs a
Bearer token, which a browser link cannot send)."""

from __future__ import annotations

import pandas as pd
import streamlit as st
import streamlit.components.v1 as components

from modeldeck.core.errors import ModeldeckError
from modeldeck.core.monitoring import reports
from modeldeck.core.monitoring.models import CheckKind
from modeldeck.core.monitoring.queries import Series
from modeldeck.core.timeseries import span_text
from modeldeck.dashboard import auth, charts, focus, loaders, safe, state, tables

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
    """The newest checks of the range (pick one below to see its report)."""
    df = pd.DataFrame.from_records(
        [
            {
                "Window end": c.window_end,
                "Version": c.version,
                "Status": str(c.status),
                "Score": c.score,
                "Rows": c.rows,
                "Check": c.id,
            }
            for c in series.recent
        ]
    )
    st.dataframe(
        tables.style_column(df, "Status", str),
        hide_index=True,
        key=f"recent_{series.kind}",
        column_config={
            "Window end": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
            "Score": st.column_config.NumberColumn(format="%.4g"),
            "Check": st.column_config.NumberColumn(format="%d", help="check result id"),
        },
    )
    st.caption(f"The {len(series.recent)} newest checks in the range.")


def segment_table(series: Series) -> None:
    """Segments of the newest check that warn or fail — a local break the average hides
    (the check counts the worst of them towards its status)."""
    if not series.segment_column:
        return
    st.subheader(f"Segments by {series.segment_column}")
    if not series.latest_segments:
        st.caption(f"No {series.segment_column} segment warns or fails in the newest check.")
        return
    df = pd.DataFrame.from_records(
        [
            {"Segment": s.segment, "Status": s.status, "Rows": s.rows, "Finding": s.finding}
            for s in series.latest_segments
        ]
    )
    st.dataframe(
        tables.style_column(df, "Status", str),
        hide_index=True,
        key=f"segments_{series.kind}",
        column_config={"Rows": st.column_config.NumberColumn(format="%d")},
    )
    st.caption("Newest check, worst first; segments smaller than min_rows are not judged.")


def report_viewer(series: Series) -> None:
    """The evidently HTML report of a chosen check, built (or read from the store's cache) by
    `reports.html` — the same function the API's /reports route runs — shown in the page and
    offered as a download. Building one is heavy and writes a file, so with sign-in
    configured it needs a signed-in person with a role."""
    if not series.recent:
        return
    actor = auth.current_actor(state.settings())
    if not auth.may_load(actor):
        st.caption(
            ":material/lock: Sign in (sidebar) to open the evidently report of a check: "
            "building one is heavy work for the server."
        )
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
    shown = st.session_state.get(f"{key}_shown")
    if st.button("Show report", key=f"{key}_show", icon=":material/description:"):
        shown = chosen
        st.session_state[f"{key}_shown"] = chosen
    if shown != chosen:
        return
    try:
        with (
            st.spinner("Building the evidently report (first time only)…"),
            state.session() as session,
        ):
            html = reports.html(session, settings=state.settings(), check_id=chosen)
    except ModeldeckError as exc:
        st.warning(f"No report for this check: {safe.redact(str(exc))}")
        return
    except Exception as exc:  # noqa: BLE001 - evidently, the store: never a traceback on screen
        st.error(safe.unexpected("Building the report", exc), icon=":material/error:")
        return
    st.download_button(
        "Download the report (HTML)",
        html,
        file_name=f"check-{chosen}.html",
        mime="text/html",
        key=f"{key}_download",
        icon=":material/download:",
    )
    components.html(html, height=900, scrolling=True)


def bucket_note(series: Series) -> str:
    """How a chart point relates to the checks: decay draws the newest check of each bucket
    (a windowed metric already); drift and quality the worst of all of them."""
    width = span_text(series.bucket_seconds)
    how = "its newest check" if series.kind == CheckKind.decay else "the worst of its checks"
    return f"one point per {width} ({how})"
