"""Table styling: the charts' status colours as cell backgrounds, and blank missing times."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

# Table cells: the same status colours as the charts, as soft backgrounds with dark text, so a
# table reads at a glance without relying on emoji fonts (absent on many servers and kiosks).
CELL_STYLES = {
    "ok": "background-color: #e8f5e9; color: #1b5e20",
    "warn": "background-color: #fff3cd; color: #7a5a00",
    "fail": "background-color: #fde0e0; color: #a61b1b; font-weight: 600",
    "error": "background-color: #f3e5f5; color: #6a1b9a",
    "no_data": "background-color: #f2f2f2; color: #616161",
    "stale": "background-color: #f2f2f2; color: #616161; font-style: italic",
    "muted": "color: #9e9e9e",
}
STATE_STYLES = {
    "active": "ok",
    "superseded": "muted",
    "rolled_back": "warn",
    "failed": "fail",
    "rejected": "fail",
    "awaiting_approval": "warn",
    "pending": "warn",
    "rolling_out": "warn",
    "firing": "fail",
    "snoozed": "warn",
    "resolved": "muted",
    "critical": "fail",
    "warning": "warn",
    "info": "no_data",
}


def styled(df: pd.DataFrame, styles: pd.DataFrame) -> Any:
    """`df` with each cell styled by the CELL_STYLES key at the same place in `styles`."""
    css = styles.reindex(index=df.index, columns=df.columns).map(
        lambda key: CELL_STYLES.get(key, "") if isinstance(key, str) else ""
    )
    return df.style.apply(lambda _: css, axis=None)


def when(value: datetime | None) -> str:
    """A time for a table cell that may have none ("since" of nothing deployed, "until" of a
    deployment still live): st.dataframe would print a missing datetime as "None"."""
    return "" if value is None or pd.isna(value) else f"{value:%Y-%m-%d %H:%M}"


def style_column(df: pd.DataFrame, column: str, key_of: Any) -> Any:
    """Style one column by `key_of(value)` (a CELL_STYLES key or None)."""
    styles = pd.DataFrame(index=df.index, columns=df.columns, dtype=object)
    styles[column] = df[column].map(key_of)
    return styled(df, styles)
