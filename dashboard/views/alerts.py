"""Alerts: firing, snoozed and resolved; snooze and resolve for deployers (via the service)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from modeldeck.core.alerts import service as alerts_service
from modeldeck.core.alerts.models import AlertPublic, AlertStatus
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.errors import ModeldeckError
from modeldeck.dashboard import auth, focus, loaders, safe, state, tables

VIEWS = {
    "Open": (AlertStatus.firing, AlertStatus.snoozed),
    "Firing": (AlertStatus.firing,),
    "Snoozed": (AlertStatus.snoozed,),
    "Resolved": (AlertStatus.resolved,),
    "All": (),
}
ANY = "(all)"


def frame(rows: list[AlertPublic]) -> pd.DataFrame:
    return pd.DataFrame.from_records(
        [
            {
                "#": a.id,
                "Severity": str(a.severity),
                "Status": str(a.status),
                "Rule": a.rule,
                "Model": a.model or "",
                "Version": a.version or "",
                "Environment": a.environment or "",
                "Summary": safe.redact(a.summary),
                "First seen": a.first_seen,
                "Last seen": a.last_seen,
                "Count": a.count,
                "Snoozed until": tables.when(a.snoozed_until)
                if a.status == AlertStatus.snoozed
                else "",
                "By": a.snoozed_by or a.resolved_by or "",
            }
            for a in rows
        ]
    )


def _query_alert() -> int | None:
    raw = st.query_params.get("alert")
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


def act(actor: Actor, alert: AlertPublic) -> None:
    """Snooze / resolve one open alert; the alerts service checks the role again."""
    if alert.status == AlertStatus.resolved:
        return
    if not auth.can(actor, Role.deployer):
        st.caption(
            ":material/lock: Snoozing and resolving need the deployer role"
            + (" — sign in (sidebar)." if auth.login_configured() else ".")
        )
        return
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    duration = c1.text_input(
        "Snooze for",
        value="2h",
        max_chars=16,
        key=f"snooze_for_{alert.id}",
        help="minutes, hours, days or weeks: 30m, 2h, 1d, 1w (at most 30d)",
    )
    if c2.button("Snooze", key=f"snooze_{alert.id}", icon=":material/snooze:"):
        _run(actor, "Snoozed", alert.id, duration)
    if c3.button("Resolve", key=f"resolve_{alert.id}", icon=":material/check_circle:"):
        _run(actor, "Resolved", alert.id, None)


def _run(actor: Actor, what: str, alert_id: int, duration: str | None) -> None:
    settings = state.settings()
    try:
        with state.session() as session:
            if duration is not None:
                done = alerts_service.snooze(
                    session,
                    settings=settings,
                    alert_id=alert_id,
                    actor=actor,
                    duration=alerts_service.parse_duration(duration),
                )
            else:
                done = alerts_service.resolve_by(
                    session, settings=settings, alert_id=alert_id, actor=actor
                )
    except ModeldeckError as exc:
        st.session_state["_alert_flash"] = ("error", safe.redact(f"{what[:-1]} refused: {exc}"))
    except Exception as exc:  # noqa: BLE001 - a database fault: no traceback on screen
        message = safe.unexpected(f"{what[:-1]} of alert #{alert_id}", exc)
        st.session_state["_alert_flash"] = ("error", message)
    else:
        until = f" until {done.snoozed_until:%Y-%m-%d %H:%M} UTC" if done.snoozed_until else ""
        st.session_state["_alert_flash"] = ("ok", f"{what} alert #{alert_id}{until}.")
    loaders.clear()
    st.rerun()


# Where an alert's evidence is: the page that shows its rule's numbers for its model.
EVIDENCE = {
    "drift": ("drift", "Drift"),
    "quality": ("quality", "Data quality"),
    "performance_drop": ("decay", "Decay"),
    "no_labels": ("decay", "Decay"),
    "no_data": ("quality", "Data quality"),
    "cluster_drift": ("model", "Model"),
}


def evidence(alert: AlertPublic) -> None:
    """A button to the page with the numbers behind the alert, on its model and environment."""
    page, title = EVIDENCE.get(alert.rule, ("hardware", "Hardware"))
    if page == "hardware" and not alert.rule.startswith("gpu"):
        return
    if page != "hardware" and not (alert.model and alert.environment):
        return
    where = f" of {alert.model} in {alert.environment}" if alert.model else ""
    if st.button(f"Open {title}{where}", key=f"evidence_{alert.id}", icon=":material/insights:"):
        for name, value in (("model", alert.model), ("env", alert.environment)):
            if value:  # the shared picks (state.pick) and their widgets
                st.session_state[name] = st.session_state[f"_pick_{name}"] = value
                # the Hardware page has its own pickers (with "(all)")
                st.session_state[f"hw_{name}"] = value
        st.switch_page(f"views/{page}.py")


def details(alert: AlertPublic) -> None:
    st.markdown(f"**#{alert.id} · {safe.redact(alert.summary)}**")
    info = {k: safe.redact_data(v) for k, v in alert.details.items() if k != "dashboard_url"}
    explain = {
        k: info.pop(k)
        for k in ("metric", "value", "threshold", "window", "top_features", "fix")
        if k in info
    }
    if explain:
        st.markdown("\n".join(f"- **{k.replace('_', ' ')}**: {v}" for k, v in explain.items()))
    if info:
        st.json(info, expanded=False)


def render() -> None:
    st.title("Alerts")
    names = focus.models_or_welcome()
    url = focus.url()
    rng = state.time_range()
    actor = auth.current_actor(state.settings())
    flash = st.session_state.pop("_alert_flash", None)
    if flash:
        (st.success if flash[0] == "ok" else st.error)(flash[1])
    wanted = _query_alert()
    f1, f2, f3 = st.columns([3, 2, 2])
    view = f1.segmented_control("Show", list(VIEWS), default="Open", key="alerts_view") or "Open"
    model = f2.selectbox("Model", [ANY, *names], key="alerts_model")
    env = f3.selectbox("Environment", [ANY, *loaders.environment_names(url)], key="alerts_env")
    try:
        found = loaders.alerts(
            url,
            VIEWS[view],
            None if model == ANY else model,
            None if env == ANY else env,
            rng.start,
            wanted,
        )
    except ModeldeckError as exc:
        focus.stop_on_error(exc)
        return
    counts = found.by_status
    st.caption(
        f"{counts['firing']} firing · {counts['snoozed']} snoozed · {counts['resolved']} "
        f"resolved in the {rng.label.lower()} (open alerts show whatever their age)"
    )
    if wanted is not None:
        st.info(f"Showing alert #{wanted} only (from a link).", icon=":material/link:")
        if st.button("Show all alerts", key="alerts_all"):
            del st.query_params["alert"]
            st.rerun()
    if not found.data:
        st.success(
            "No open alerts: all quiet." if view in ("Open", "Firing") else "No alerts here.",
            icon=":material/notifications_off:",
        )
        return
    table = frame(found.data)
    styles = pd.DataFrame(index=table.index, columns=table.columns, dtype=object)
    for column in ("Severity", "Status"):
        styles[column] = table[column].map(tables.STATE_STYLES.get)
    st.dataframe(
        tables.styled(table, styles),
        hide_index=True,
        key="alerts_table",
        column_config={
            c: st.column_config.DatetimeColumn(c, format="YYYY-MM-DD HH:mm")
            for c in ("First seen", "Last seen")
        },
    )
    if found.count > len(found.data):
        st.caption(f"Showing the {len(found.data)} most recent of {found.count}.")
    by_id = {a.id: a for a in found.data}
    choice = st.selectbox(
        "Alert",
        list(by_id),
        key="alert_pick",
        index=list(by_id).index(wanted) if wanted in by_id else 0,
        format_func=lambda i: (
            f"#{i} {by_id[i].rule} · {by_id[i].model or '-'} "
            f"{by_id[i].environment or ''} · {by_id[i].status}"
        ),
    )
    box = st.container(border=True)
    with box:
        details(by_id[choice])
        evidence(by_id[choice])
        act(actor, by_id[choice])


if __name__ == "__main__":
    render()
