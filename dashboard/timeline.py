"""The Model page's version timeline: which version ran in which environment, when."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import plotly.graph_objects as go

from modeldeck.core.monitoring.queries import DeploymentSpan
from modeldeck.dashboard.charts import STATE_SYMBOLS, STATUS_COLOURS, colour, layout


def timeline(
    spans: Sequence[DeploymentSpan],
    colours: dict[str, str],
    *,
    now: datetime,
    start: datetime,
    end: datetime,
) -> go.Figure:
    """Which version ran in which environment when: one bar per deployment that went live."""
    fig = go.Figure()
    shown: set[str] = set()
    for s in spans:
        if s.activated_at is None:
            continue
        until = s.finished_at or now
        fig.add_trace(
            go.Bar(
                base=[s.activated_at],
                x=[(until - s.activated_at).total_seconds() * 1000],
                y=[s.environment],
                orientation="h",
                name=s.version,
                marker_color=colour(colours, s.version),
                legendgroup=s.version,
                showlegend=s.version not in shown,
                text=[s.version],
                textposition="inside",
                insidetextanchor="middle",
                hovertemplate=(
                    f"<b>{s.version}</b> in {s.environment}<br>{s.kind} #{s.deployment_id}"
                    f" by {s.requested_by}<br>live %{{base|%Y-%m-%d %H:%M}} → "
                    f"{'now' if s.finished_at is None else f'{until:%Y-%m-%d %H:%M}'}"
                    f"<br>state {s.state}<extra></extra>"
                ),
            )
        )
        shown.add(s.version)
    bad = [s for s in spans if str(s.state) in STATE_SYMBOLS]
    if bad:
        fig.add_trace(
            go.Scatter(
                x=[s.finished_at or s.started_at for s in bad],
                y=[s.environment for s in bad],
                mode="markers",
                name="failed / rejected / rolled back",
                marker={
                    "symbol": [STATE_SYMBOLS[str(s.state)] for s in bad],
                    "size": 13,
                    "color": STATUS_COLOURS["fail"],
                    "line": {"width": 1, "color": "white"},
                },
                text=[
                    f"{s.version} {s.state} (#{s.deployment_id} by {s.requested_by})" for s in bad
                ],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    fig.update_xaxes(type="date")
    fig.update_layout(barmode="overlay", bargap=0.35)
    envs = {s.environment for s in spans}
    return layout(fig, height=110 + 45 * len(envs), start=start, end=end)
