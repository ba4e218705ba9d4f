"""modeldeck dashboard: navigation and the shared sidebar. Start it with `modeldeck dashboard`.

Each page is one file under views/ (run by st.navigation as a script); this file runs first on
every rerun and draws what all pages share: who you are, the time range (also in the URL), a
refresh button.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from modeldeck.dashboard import auth, loaders, state

VIEWS = Path(__file__).parent / "views"
# (file, title, icon, url path): url paths are what Slack messages link to (notify/kit.py).
SECTIONS: dict[str, list[tuple[str, str, str, str]]] = {
    "Fleet": [
        ("overview.py", "Overview", ":material/dashboard:", "overview"),
        ("model.py", "Model", ":material/deployed_code:", "model"),
    ],
    "Monitoring": [
        ("decay.py", "Decay", ":material/trending_down:", "decay"),
        ("quality.py", "Data quality", ":material/rule:", "quality"),
        ("drift.py", "Drift", ":material/ssid_chart:", "drift"),
        ("hardware.py", "Hardware", ":material/memory:", "hardware"),
    ],
    "Operations": [
        ("alerts.py", "Alerts", ":material/notifications_active:", "alerts"),
        ("audit.py", "Audit log", ":material/history:", "audit"),
    ],
}


def pages() -> dict[str, list[st.Page]]:
    return {
        section: [
            st.Page(VIEWS / file, title=title, icon=icon, url_path=url, default=url == "overview")
            for file, title, icon, url in entries
        ]
        for section, entries in SECTIONS.items()
    }


def sidebar() -> None:
    settings = state.settings()
    actor = auth.current_actor(settings)
    st.sidebar.markdown("### :material/satellite_alt: modeldeck")
    state.range_selector()
    # Refreshing empties the loaders' shared cache, so every viewer's next page reads the
    # database again: with sign-in configured, only signed-in people with a role may.
    if auth.may_load(actor) and st.sidebar.button(
        "Refresh data", icon=":material/refresh:", key="refresh", width="stretch"
    ):
        loaders.clear()
    st.sidebar.caption(f"Data is at most {state.CACHE_TTL} s old · times in UTC")
    auth.sidebar(actor)


def main() -> None:
    st.set_page_config(page_title="modeldeck", page_icon=":material/satellite_alt:", layout="wide")
    page = st.navigation(pages())
    sidebar()
    page.run()


if __name__ == "__main__":
    main()
