"""Rich tables for people, JSON for scripts; one place decides which."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
# soft_wrap: an error is one line a script can grep, whatever the terminal width
err_console = Console(stderr=True, soft_wrap=True)


def reset() -> None:
    """New consoles for this invocation: rich reads the width (COLUMNS) when a console is made,
    and one process may run many commands (CliRunner, the tests)."""
    global console, err_console
    console = Console()
    err_console = Console(stderr=True, soft_wrap=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    print(json.dumps(_jsonable(value), indent=2, default=str))


def ago(when: datetime | None, now: datetime | None = None) -> str:
    """'3h ago', '2d ago': what a person reads faster than a timestamp."""
    if when is None:
        return "-"
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "just now"


def table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    empty: str = "nothing to show",
) -> None:
    if not rows:
        console.print(f"[dim]{escape(title)}: {escape(empty)}[/dim]")
        return
    t = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c)
    for row in rows:
        # escape: a value such as "[prod]" is data, not rich markup
        t.add_row(*["-" if v is None or v == "" else escape(str(v)) for v in row])
    console.print(t)


def success(message: str) -> None:
    console.print(f"[green]✓[/green] {escape(message)}")


def error(message: str, hint: str | None = None) -> None:
    err_console.print(f"[red]error:[/red] {escape(message)}")
    if hint:
        err_console.print(f"[dim]hint: {escape(hint)}[/dim]")
