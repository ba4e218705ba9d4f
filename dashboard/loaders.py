"""Cached reads for the pages: thin wrappers over core queries with st.cache_data and a TTL.

Every loader takes the database URL first, so two configurations (or two tests) never share
an entry, and plain values after it (names, rounded times) so reruns hit the cache. A loader
that reads the settings also takes `state.config_key(settings)` as part of its key. The pages
never open a session themselves for reading; `clear()` empties these loaders (and nothing else
in the process) after a change.
"""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from modeldeck.core import fleet as fleet_queries
from modeldeck.core.alerts import queries as alert_queries
from modeldeck.core.alerts.models import AlertStatus
from modeldeck.core.audit import service as audit
from modeldeck.core.audit.models import AuditEventsPublic
from modeldeck.core.config import Settings
from modeldeck.core.environments.models import EnvironmentPublic
from modeldeck.core.hardware import queries as hardware_queries
from modeldeck.core.monitoring import queries as monitoring
from modeldeck.core.monitoring.models import CheckKind
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import ModelPublic, ModelVersionPublic
from modeldeck.core.rollouts import queries as rollouts
from modeldeck.core.rollouts.models import DeploymentPublic
from modeldeck.dashboard import state

TTL = state.CACHE_TTL


@st.cache_data(ttl=TTL, show_spinner=False)
def counts(url: str) -> fleet_queries.FleetCounts:
    with state.session() as s:
        return fleet_queries.counts(s)


def fleet(url: str, now: datetime) -> list[fleet_queries.FleetRow]:
    current = state.settings()
    return _fleet(url, state.config_key(current), now, current)


@st.cache_data(ttl=TTL, show_spinner=False)
def _fleet(
    url: str, config: str, now: datetime, _settings: Settings
) -> list[fleet_queries.FleetRow]:
    with state.session() as s:
        return fleet_queries.overview(s, settings=_settings, now=now)


@st.cache_data(ttl=TTL, show_spinner=False)
def models(url: str) -> list[ModelPublic]:
    with state.session() as s:
        return registry.list_models(s, limit=10_000).data


@st.cache_data(ttl=TTL, show_spinner=False)
def environments(url: str) -> list[EnvironmentPublic]:
    """Active environments in promotion order (an environment after the one it requires)."""
    with state.session() as s:
        return fleet_queries.environments_in_order(s)


def environment_names(url: str) -> list[str]:
    return [e.name for e in environments(url)]


@st.cache_data(ttl=TTL, show_spinner=False)
def versions(url: str, model: str) -> list[ModelVersionPublic]:
    """The model's versions, oldest first (the order that gives each its colour)."""
    with state.session() as s:
        found = registry.list_versions(s, model, limit=10_000).data
    return list(reversed(found))


@st.cache_data(ttl=TTL, show_spinner=False)
def history(url: str, model: str, limit: int = 500) -> list[DeploymentPublic]:
    with state.session() as s:
        return rollouts.history(s, model=model, limit=limit).data


@st.cache_data(ttl=TTL, show_spinner=False)
def spans(
    url: str, model: str, environments_: tuple[str, ...], start: datetime, end: datetime
) -> list[monitoring.DeploymentSpan]:
    with state.session() as s:
        return [
            span
            for env in environments_
            for span in monitoring.deployments(
                s, model=model, environment=env, start=start, end=end
            )
        ]


@st.cache_data(ttl=TTL, show_spinner=False)
def series(
    url: str, model: str, environment: str, kind: CheckKind, start: datetime, end: datetime
) -> monitoring.Series:
    with state.session() as s:
        return monitoring.series(
            s, model=model, environment=environment, kind=kind, start=start, end=end
        )


@st.cache_data(ttl=TTL, show_spinner=False)
def alerts(
    url: str,
    statuses: tuple[AlertStatus, ...],
    model: str | None,
    environment: str | None,
    since: datetime | None,
    alert_id: int | None = None,
) -> alert_queries.AlertList:
    with state.session() as s:
        return alert_queries.search(
            s,
            statuses=statuses,
            model=model,
            environment=environment,
            since=since,
            alert_id=alert_id,
        )


@st.cache_data(ttl=TTL, show_spinner=False)
def audit_events(
    url: str,
    *,
    actor: str | None,
    action: str | None,
    target: str | None,
    text: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> AuditEventsPublic:
    with state.session() as s:
        return audit.search(
            s,
            actor=actor,
            action=action,
            target=target,
            text=text,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )


def hardware(
    url: str,
    start: datetime,
    end: datetime,
    model: str | None,
    environment: str | None,
    group_by: hardware_queries.GroupBy,
) -> hardware_queries.HardwareView:
    current = state.settings()
    return _hardware(
        url, state.config_key(current), start, end, model, environment, group_by, current
    )


@st.cache_data(ttl=TTL, show_spinner=False)
def _hardware(
    url: str,
    config: str,
    start: datetime,
    end: datetime,
    model: str | None,
    environment: str | None,
    group_by: hardware_queries.GroupBy,
    _settings: Settings,
) -> hardware_queries.HardwareView:
    with state.session() as s:
        return hardware_queries.view(
            s,
            settings=_settings,
            start=start,
            end=end,
            model=model,
            environment=environment,
            group_by=group_by,
        )


CACHED = (
    counts,
    _fleet,
    models,
    environments,
    versions,
    history,
    spans,
    series,
    alerts,
    audit_events,
    _hardware,
)


def clear() -> None:
    """Forget what these loaders hold (after a change, or on "Refresh data"): every page then
    reads the new state. Other st.cache_data users in the process keep theirs."""
    for loader in CACHED:
        loader.clear()
