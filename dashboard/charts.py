"""Every Plotly figure of the dashboard, with one colour map so a version has one colour.

A model's versions get palette colours in registration order, so `1.3.0` is the same colour on
the Model, Decay, Drift, Quality and Hardware pages. Status colours are fixed: green ok, amber
warn, red fail.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from modeldeck.core.monitoring.queries import DeploymentSpan

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#7f7f7f",
    "#393b79",
    "#637939",
    "#843c39",
)
# Segments, GPU models and other non-version series: a second palette, so they are never
# mistaken for versions.
SERIES_PALETTE = (
    "#00897b",
    "#8e24aa",
    "#f4511e",
    "#3949ab",
    "#7cb342",
    "#d81b60",
    "#6d4c41",
    "#00acc1",
    "#fdd835",
    "#546e7a",
)
STATUS_COLOURS = {
    "ok": "#2e7d32",
    "warn": "#f9a825",
    "fail": "#c62828",
    "error": "#6a1b9a",
    "no_data": "#9e9e9e",
}
STATE_SYMBOLS = {"failed": "x", "rolled_back": "triangle-down", "rejected": "circle-x-open"}
HEIGHT = 340


def version_colours(versions: Sequence[str]) -> dict[str, str]:
    """Colour per version, `versions` in registration order (oldest first)."""
    return {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(versions)}


def series_colours(names: Sequence[str]) -> dict[str, str]:
    """Colour per segment / GPU model / cluster (not a version)."""
    return {n: SERIES_PALETTE[i % len(SERIES_PALETTE)] for i, n in enumerate(names)}


def colour(colours: dict[str, str], version: str) -> str:
    # crc32, not hash(): str hashes change between processes, colours must not.
    return colours.get(version, PALETTE[zlib.crc32(version.encode()) % len(PALETTE)])


def layout(
    fig: go.Figure,
    *,
    title: str | None = None,
    y_title: str | None = None,
    height: int = HEIGHT,
    start: datetime | None = None,
    end: datetime | None = None,
) -> go.Figure:
    # Title on the first line, legend on the second, both above the plot: never overlapping.
    fig.update_layout(
        title={
            "text": title,
            "x": 0,
            "xanchor": "left",
            "y": 0.98,
            "yanchor": "top",
            "yref": "container",
            "font": {"size": 15},
        }
        if title
        else None,
        height=height,
        margin={"l": 10, "r": 10, "t": 80 if title else 30, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0},
        hovermode="closest",
    )
    fig.update_yaxes(title=y_title)
    if start is not None and end is not None:
        fig.update_xaxes(range=[start, end])
    return fig


def add_shapes(
    fig: go.Figure, shapes: Sequence[dict[str, Any]], notes: Sequence[dict[str, Any]] = ()
) -> None:
    """Add lines and their labels in one layout update (add_vline/add_hline per line are
    slow: each one copies and re-validates the whole layout)."""
    if shapes or notes:
        fig.update_layout(
            shapes=[*fig.layout.shapes, *shapes], annotations=[*fig.layout.annotations, *notes]
        )


def hline(
    y: float,
    colour_: str,
    text: str,
    *,
    dash: str,
    width: float = 1,
    position: str = "bottom right",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A horizontal line across the plot and its label."""
    shape = {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "yref": "y",
        "y0": y,
        "y1": y,
        "line": {"dash": dash, "width": width, "color": colour_},
    }
    top, right = position.startswith("top"), position.endswith("right")
    note = {
        "xref": "paper",
        "x": 1 if right else 0,
        "yref": "y",
        "y": y,
        "text": text,
        "showarrow": False,
        "xanchor": "right" if right else "left",
        "yanchor": "bottom" if top else "top",
        "font": {"size": 10, "color": colour_},
    }
    return shape, note


def deployment_markers(
    fig: go.Figure,
    spans: Sequence[DeploymentSpan],
    colours: dict[str, str],
    *,
    start: datetime | None = None,
) -> None:
    """A dotted vertical line where each version went live; failed, rejected and rolled back
    deployments are marked at the top of the chart."""
    shapes, notes = [], []
    for s in spans:
        if s.activated_at is not None and (start is None or s.activated_at >= start):
            label = f"{'↩ ' if s.kind == 'rollback' else ''}{s.version}"
            shade = colour(colours, s.version)
            shapes.append(
                {
                    "type": "line",
                    "xref": "x",
                    "x0": s.activated_at,
                    "x1": s.activated_at,
                    "yref": "paper",
                    "y0": 0,
                    "y1": 1,
                    "line": {"dash": "dot", "width": 1.5, "color": shade},
                }
            )
            notes.append(
                {
                    "x": s.activated_at,
                    "y": 1,
                    "xref": "x",
                    "yref": "paper",
                    "text": label,
                    "showarrow": False,
                    "xanchor": "left",
                    "yanchor": "top",
                    "font": {"size": 11, "color": shade},
                }
            )
    add_shapes(fig, shapes, notes)
    bad = [s for s in spans if str(s.state) in STATE_SYMBOLS]
    if bad:
        fig.add_trace(
            go.Scatter(
                x=[s.finished_at or s.started_at for s in bad],
                y=[1.0] * len(bad),
                yaxis="y2",
                mode="markers",
                name="failed / rolled back",
                marker={
                    "symbol": [STATE_SYMBOLS[str(s.state)] for s in bad],
                    "size": 11,
                    "color": STATUS_COLOURS["fail"],
                },
                text=[f"{s.version} {s.state} (#{s.deployment_id}, {s.requested_by})" for s in bad],
                hovertemplate="%{text}<extra></extra>",
            )
        )
        fig.update_layout(yaxis2={"overlaying": "y", "range": [0, 1.05], "visible": False})


def metric_lines(
    df: pd.DataFrame,
    colours: dict[str, str],
    *,
    title: str,
    references: dict[str, float] | None = None,
    spans: Sequence[DeploymentSpan] = (),
    start: datetime,
    end: datetime,
    y_title: str,
) -> go.Figure:
    """Performance over time: solid realised, dashed estimated, one colour per version, with
    each version's reference value as a thin horizontal line."""
    fig = go.Figure()
    for (version, source), part in df.groupby(["version", "source"], sort=False):
        estimated = source == "estimated"
        fig.add_trace(
            go.Scatter(
                x=part["at"],
                y=part["value"],
                mode="lines+markers" if len(part) < 60 else "lines",
                name=f"{version} {'estimated' if estimated else 'realised'}",
                line={
                    "color": colour(colours, str(version)),
                    "dash": "dash" if estimated else "solid",
                    "width": 2,
                },
                marker={"size": 5},
                legendgroup=str(version),
                hovertemplate=(
                    f"{version} {source}: %{{y:.4g}}<br>%{{x|%Y-%m-%d %H:%M}}<extra></extra>"
                ),
            )
        )
    same: dict[float, list[str]] = {}
    for version, value in (references or {}).items():
        same.setdefault(value, []).append(version)
    lines = [
        hline(
            value,
            colour(colours, versions[-1]),
            f"reference {', '.join(versions)}: {value:.4g}",
            dash="longdash",
        )
        for value, versions in same.items()
    ]
    add_shapes(fig, [shape for shape, _ in lines], [note for _, note in lines])
    deployment_markers(fig, spans, colours, start=start)
    return layout(fig, title=title, y_title=y_title, start=start, end=end)


def heatmap(
    df: pd.DataFrame,
    *,
    value: str,
    title: str,
    colour_scale: Any,
    zmin: float,
    zmax: float,
    hover: str,
    colourbar: str,
    start: datetime,
    end: datetime,
    height: int | None = None,
) -> go.Figure:
    """Columns × time. `df` has `at`, `column`, `value` and `hover` columns."""
    pivot = df.pivot_table(index="column", columns="at", values=value, aggfunc="max")
    text = df.pivot_table(index="column", columns="at", values="hover", aggfunc="first")
    text = text.reindex(index=pivot.index, columns=pivot.columns)
    fig = go.Figure(
        go.Heatmap(
            z=pivot.values,
            x=list(pivot.columns),
            y=list(pivot.index),
            colorscale=colour_scale,
            zmin=zmin,
            zmax=zmax,
            text=text.fillna("").values,
            hovertemplate=hover,
            colorbar={"title": colourbar, "thickness": 12},
            xgap=1,
            ygap=1,
        )
    )
    rows = max(len(pivot.index), 1)
    return layout(
        fig, title=title, height=height or min(130 + 26 * rows, 700), start=start, end=end
    )


def status_bars(df: pd.DataFrame, *, title: str, start: datetime, end: datetime) -> go.Figure:
    """Checks per bucket stacked by status (`at`, `status`, `checks`)."""
    fig = go.Figure()
    for status in ("fail", "warn", "error", "no_data", "ok"):
        part = df[df["status"] == status]
        if part.empty:
            continue
        fig.add_trace(
            go.Bar(
                x=part["at"],
                y=part["checks"],
                name=status.replace("_", " "),
                marker_color=STATUS_COLOURS[status],
            )
        )
    fig.update_layout(barmode="stack", bargap=0.05)
    return layout(fig, title=title, y_title="checks", height=220, start=start, end=end)


def lines(
    df: pd.DataFrame,
    colours: dict[str, str],
    *,
    y: str,
    title: str,
    y_title: str,
    start: datetime,
    end: datetime,
    group: str = "version",
    spans: Sequence[DeploymentSpan] = (),
    version_colours: dict[str, str] | None = None,
    threshold: float | None = None,
    y_range: tuple[float, float] | None = None,
) -> go.Figure:
    """One line per `group` value of `df[y]` over `at`, coloured by `colours[group value]`;
    deployment markers use `version_colours` (default: `colours`)."""
    fig = go.Figure()
    for name, part in df.groupby(group, sort=False):
        fig.add_trace(
            go.Scatter(
                x=part["at"],
                y=part[y],
                mode="lines+markers" if len(part) < 60 else "lines",
                name=str(name),
                line={"color": colour(colours, str(name)), "width": 2},
                marker={"size": 5},
                hovertemplate=f"{name}: %{{y:.3g}}<br>%{{x|%Y-%m-%d %H:%M}}<extra></extra>",
            )
        )
    if threshold is not None:
        shape, note = hline(
            threshold,
            STATUS_COLOURS["fail"],
            f"threshold {threshold:.3g}",
            dash="dash",
            width=2,
            position="top left",
        )
        add_shapes(fig, [shape], [note])
    deployment_markers(fig, spans, version_colours or colours, start=start)
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    return layout(fig, title=title, y_title=y_title, start=start, end=end)


def grouped_bars(
    df: pd.DataFrame,
    *,
    x: str,
    y: str,
    colour_by: str,
    colours: dict[str, str],
    title: str,
    y_title: str,
) -> go.Figure:
    """Bars of `y` per `x`, one bar group per `colour_by` (e.g. GPU model per version)."""
    fig = go.Figure()
    for name, part in df.groupby(colour_by, sort=False):
        fig.add_trace(
            go.Bar(
                x=part[x],
                y=part[y],
                name=str(name),
                marker_color=colours.get(str(name), PALETTE[0]),
                hovertemplate=f"{name}: %{{y:.3g}}<extra></extra>",
            )
        )
    fig.update_layout(barmode="group")
    return layout(fig, title=title, y_title=y_title, height=280)
