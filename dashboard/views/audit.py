"""Audit log: every state change and command, searchable, newest first."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from modeldeck.core.errors import ModeldeckError
from modeldeck.dashboard import focus, loaders, safe, state

PAGE_SIZE = 100


def _text(value: object) -> str:
    if not value:
        return ""
    return safe.redact(json.dumps(value, sort_keys=True, default=str))[:500]


def render() -> None:
    st.title("Audit log")
    focus.database_ready()
    url = focus.url()
    rng = state.time_range()
    st.caption(
        f"Every change and who made it, through which interface, in the "
        f"{rng.label.lower()}. Append-only: nothing here can be edited or deleted."
    )
    with st.form("audit_search", border=False):
        c1, c2, c3, c4 = st.columns(4)
        text = c1.text_input("Search", key="audit_text", placeholder="anything: fraud, promote…")
        actor = c2.text_input(
            "Actor (exact)",
            key="audit_actor",
            placeholder="e.g. slack:U012AB or dashboard:ana@acme.io",
        )
        action = c3.text_input(
            "Action (exact)", key="audit_action", placeholder="e.g. deployment.promote"
        )
        target = c4.text_input(
            "Target starts with", key="audit_target", placeholder="e.g. model:fraud-detector"
        )
        st.form_submit_button("Search", icon=":material/search:")
    # A page number belongs to one search in one range: a new one starts at its first page.
    scope = (rng.key, text, actor, action, target)
    if st.session_state.get("audit_scope") != scope:
        st.session_state["audit_scope"] = scope
        st.session_state["audit_page"] = 0
    page = int(st.session_state.get("audit_page", 0))
    try:
        found = loaders.audit_events(
            url,
            actor=actor.strip() or None,
            action=action.strip() or None,
            target=target.strip() or None,
            text=text.strip() or None,
            since=rng.start,
            until=rng.end,
            limit=PAGE_SIZE,
            offset=page * PAGE_SIZE,
        )
    except ModeldeckError as exc:
        focus.stop_on_error(exc)
        return
    if found.count == 0:
        st.info(
            "No audit events match."
            if any((text, actor, action, target))
            else "No audit events in this time range.",
            icon=":material/manage_search:",
        )
        return
    df = pd.DataFrame.from_records(
        [
            {
                "At": e.at,
                "Actor": e.actor,
                "Via": e.via,
                "Action": e.action,
                "Target": e.target,
                "Before": _text(e.before),
                "After": _text(e.after),
                "Request": e.request_id or "",
            }
            for e in found.data
        ]
    )
    st.dataframe(
        df,
        hide_index=True,
        key="audit_table",
        height=min(38 + 35 * len(df), 740),
        column_config={"At": st.column_config.DatetimeColumn("At", format="YYYY-MM-DD HH:mm:ss")},
    )
    pages = max((found.count + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    left, mid, right = st.columns([1, 2, 1])
    if left.button("← Newer", disabled=page == 0, key="audit_newer"):
        st.session_state["audit_page"] = page - 1
        st.rerun()
    mid.caption(f"{found.count} events · page {page + 1} of {pages}")
    if right.button("Older →", disabled=page + 1 >= pages, key="audit_older"):
        st.session_state["audit_page"] = page + 1
        st.rerun()


if __name__ == "__main__":
    render()
