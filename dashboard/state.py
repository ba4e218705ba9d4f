"""What every page shares: settings, the database, the time range and the model in focus.

Settings and the engine are cached resources (one per process and configuration); the time
range and the selected model/environment live in st.session_state so they follow the user from
page to page, and in the URL (?range=&model=&env=) so a link, a reload or a link from Slack
opens the same view.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import streamlit as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core import db
from modeldeck.core.clock import utcnow
from modeldeck.core.config import Settings, config_path, load_settings
from modeldeck.core.errors import ConfigError
from modeldeck.core.timeseries import floor_time

CACHE_TTL = 60  # seconds: pages read pre-aggregated queries at most this old
RANGES: dict[str, tuple[str, timedelta]] = {
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
    "90d": ("Last 90 days", timedelta(days=90)),
    "1y": ("Last 12 months", timedelta(days=365)),
}
DEFAULT_RANGE = "30d"
END_STEP = 300  # seconds


@st.cache_resource(show_spinner=False)
def _load_settings(path: str | None, env: tuple[tuple[str, str], ...], mtime: float) -> Settings:
    del env, mtime  # part of the cache key only: a changed file or variable reloads
    return load_settings(path)


def settings() -> Settings:
    """The settings of this dashboard process (MODELDECK_CONFIG + MODELDECK_* variables);
    a broken configuration stops the page with the reason instead of a traceback."""
    path = config_path()
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("MODELDECK_")))
    try:
        mtime = path.stat().st_mtime if path is not None and path.exists() else 0.0
        return _load_settings(str(path) if path else None, env, mtime)
    except ConfigError as exc:
        st.error(f"**The configuration could not be loaded.**\n\n```\n{exc}\n```")
        st.stop()
        raise  # unreachable: st.stop() raises


def config_key(current: Settings) -> str:
    """A short fingerprint of the settings: part of the cache key of every loader that reads
    them, so a changed configuration never answers from an entry built with the old one."""
    return hashlib.sha256(current.model_dump_json().encode()).hexdigest()[:16]


@st.cache_resource(show_spinner=False)
def engine_for(url: str) -> Engine:
    return db.make_engine(url)


def engine() -> Engine:
    return engine_for(settings().database_url)


@contextmanager
def session() -> Iterator[Session]:
    with db.session_scope(engine()) as s:
        yield s


@dataclass(frozen=True)
class TimeRange:
    key: str
    label: str
    start: datetime
    end: datetime


def range_key() -> str:
    """The chosen range: this session's choice, else the URL's (?range=), else the default."""
    for value in (st.session_state.get("range"), _from_url("range")):
        if value in RANGES:
            return str(value)
    return DEFAULT_RANGE


def time_range() -> TimeRange:
    """The range chosen in the sidebar. `end` is the next 5-minute boundary, so cached queries
    keep one key for 5 minutes (freshness is the cache TTL's job, not the key's)."""
    key = range_key()
    label, span = RANGES[key]
    end = floor_time(utcnow(), END_STEP) + timedelta(seconds=END_STEP)
    return TimeRange(key=key, label=label, start=end - span, end=end)


def range_selector() -> None:
    """The sidebar's time range, shared by every page and kept in the URL like the model."""
    if st.session_state.get("range") not in RANGES:
        st.session_state["range"] = range_key()
    choice = st.sidebar.selectbox(
        "Time range", list(RANGES), key="range", format_func=lambda k: RANGES[k][0]
    )
    if st.query_params.get("range") != choice:
        st.query_params["range"] = choice


def _from_url(name: str) -> str | None:
    value = st.query_params.get(name)
    return value if isinstance(value, str) and value else None


def pick(
    name: str,
    label: str,
    options: Sequence[str],
    *,
    default: str | None = None,
    container: object | None = None,
) -> str | None:
    """A selectbox whose choice is shared by every page (st.session_state[name]) and kept in
    the URL (?name=value). Unknown values from a URL fall back to the default."""
    if not options:
        return None
    shared = st.session_state.get(name)
    wanted = _from_url(name) if shared is None else shared
    if wanted not in options:
        wanted = default if default in options else options[0]
    widget = f"_pick_{name}"
    if st.session_state.get(widget) not in options:
        st.session_state[widget] = wanted
    target = container if container is not None else st
    choice: str = target.selectbox(label, list(options), key=widget)  # type: ignore[attr-defined]
    st.session_state[name] = choice
    if st.query_params.get(name) != choice:
        st.query_params[name] = choice
    return choice
