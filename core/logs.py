"""Structured logging: JSON in production, pretty on a terminal; request id on every line.

structlog renders both our own events and the standard library's (uvicorn, sqlalchemy,
alembic), so every line has the same shape and carries the request id bound by the API
middleware. Keys that look like secrets are masked before anything is rendered.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from modeldeck.core.audit.service import SECRET_HINTS


def _drop_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if any(h in key.lower() for h in SECRET_HINTS):
            event[key] = "***"
    return event


SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


class _CurrentStderr(logging.StreamHandler):
    """Writes to `sys.stderr` as it is at each record: test runners and CliRunner swap it, and
    a handler holding the old object would write to a closed stream."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure(fmt: str = "auto", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger (idempotent: replaces our handler)."""
    out = stream or sys.stderr
    json_out = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_out else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler: logging.Handler = logging.StreamHandler(stream) if stream else _CurrentStderr()
    handler.setFormatter(formatter)
    handler.set_name("modeldeck")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "modeldeck"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Server libraries bring handlers of their own (uvicorn's dictConfig, Streamlit's
    # init_uvicorn_logs): their lines come through ours, in the same shape, with the request id.
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
        server_logger.setLevel(logging.NOTSET)
    # alembic narrates every start-up at INFO ("Context impl SQLiteImpl."...): only problems.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))


def get(name: str) -> Any:
    """A structured logger named after its module."""
    return structlog.get_logger(name)
