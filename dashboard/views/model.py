"""Model: where it runs, its version timeline, deployment history, lineage, and actions."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from modeldeck.core.errors import ModeldeckError
from modeldeck.core.registry.models import ModelVersionPublic
from modeldeck.core.rollouts.models import DeploymentPublic
from modeldeck.dashboard import actions, auth, charts, focus, loaders, state, tables, timeline


def lineage(versions: list[ModelVersionPublic], running: dict[str, str | None]) -> pd.DataFrame:
    where: dict[str, list[str]] = {}
    for env, version in running.items():
        if version:
            where.setdefault(version, []).append(env)
    return pd.DataFrame.from_records(
        [
            {
                "Version": v.version,
                "Runs in": ", ".join(where.get(v.version, [])),
                "Registered": v.created_at,
                "By": v.created_by,
                "Stage": str(v.stage),
                "Image": v.image,
                "Artifact": v.artifact_uri,
                "Data fingerprint": v.training_data_fingerprint or "",
                "Git commit": (v.git_commit or "")[:12],
                "Metrics": ", ".join(f"{k}={val:.4g}" for k, val in sorted(v.metrics.items())),
            }
            for v in reversed(versions)
        ]
    )


def deployments_frame(history: list[DeploymentPublic]) -> pd.DataFrame:
    return pd.DataFrame.from_records(
        [
            {
                "#": d.id,
                "Environment": d.environment,
                "Version": d.version,
                "Kind": str(d.kind),
                "State": str(d.state).replace("_", " "),
                "Requested by": d.requested_by,
                "Via": str(d.requested_via),
                "Requested": d.started_at,
                "Live from": tables.when(d.activated_at),
                "Until": tables.when(d.finished_at),
                "Approvals": (
                    f"{sum(a.decision == 'approve' for a in d.approvals)}/{d.approvals_required}"
                    if d.approvals_required
                    else ""
                ),
                "Reason / message": " — ".join(x for x in (d.reason, d.message) if x),
            }
            for d in history
        ]
    )


def render() -> None:
    model, _ = focus.model_and_environment(environment=False)
    url = focus.url()
    rng = state.time_range()
    settings = state.settings()
    actor = auth.current_actor(settings)
    envs = loaders.environment_names(url)
    try:
        versions = loaders.versions(url, model)
        history = loaders.history(url, model)
        spans = loaders.spans(url, model, tuple(envs), rng.start, rng.end)
    except ModeldeckError as exc:
        focus.stop_on_error(exc)
        return
    info = next(m for m in loaders.models(url) if m.name == model)
    st.title(model)
    st.caption(
        " · ".join(
            x
            for x in (
                info.description,
                f"team {info.team or '—'}",
                f"owner {info.owner or '—'}",
                str(info.task_type),
            )
            if x
        )
    )
    actions.flash()

    fleet = {(r.model, r.environment): r for r in loaders.fleet(url, rng.end)}
    running = {env: fleet[(model, env)].version if (model, env) in fleet else None for env in envs}
    cols = st.columns(max(len(envs), 1))
    for col, env in zip(cols, envs, strict=False):
        row = fleet.get((model, env))
        since = f"since {row.since:%Y-%m-%d %H:%M}" if row and row.since else ""
        col.metric(
            env,
            (row.version if row else None) or "not deployed",
            help=f"promoted by {row.promoted_by}" if row and row.promoted_by else None,
        )
        col.caption(
            " · ".join(
                x
                for x in (
                    since,
                    f"by {row.promoted_by}" if row and row.promoted_by else "",
                    f"rollout in flight: {row.in_flight}" if row and row.in_flight else "",
                )
                if x
            )
        )

    colours = charts.version_colours([v.version for v in versions])
    st.subheader(f"Versions over time · {rng.label.lower()}")
    if spans:
        st.plotly_chart(
            timeline.timeline(spans, colours, now=rng.end, start=rng.start, end=rng.end),
            key="timeline",
        )
        st.caption("Bars: when each version served traffic. ✕ failed, ▼ rolled back, ⊗ rejected.")
    else:
        st.info(
            "No deployment ran in this time range. Widen the range in the sidebar, or "
            "promote a version below.",
            icon=":material/timeline:",
        )

    deployments_tab, lineage_tab, actions_tab = st.tabs(
        [f"Deployments ({len(history)})", f"Versions & lineage ({len(versions)})", "Actions"]
    )
    with deployments_tab:
        if history:
            table = deployments_frame(history)
            st.dataframe(
                tables.style_column(
                    table, "State", lambda v: tables.STATE_STYLES.get(str(v).replace(" ", "_"))
                ),
                hide_index=True,
                key="deployments",
                column_config={
                    "Requested": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")
                },
            )
        else:
            st.info("Never deployed.", icon=":material/rocket_launch:")
    with lineage_tab:
        if versions:
            st.dataframe(
                lineage(versions, running),
                hide_index=True,
                key="lineage",
                column_config={
                    "Registered": st.column_config.DatetimeColumn(
                        "Registered", format="YYYY-MM-DD HH:mm"
                    )
                },
            )
        else:
            st.info("No versions registered.")
    with actions_tab:
        required = {e.name: e.approvals_required for e in loaders.environments(url)}
        actions.panel(actor, model, [v.version for v in versions], envs, running, required, history)


if __name__ == "__main__":
    render()
