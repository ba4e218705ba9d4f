"""Structured logging: JSON in production, pretty on a terminal; request id on every line."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from modeldeck.core.audit.service import SECRET_HINTS


def _drop_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if any(h in key.lower() for h in SECRET_HINTS):
            event[key] = "***"
    return event


def configure(fmt: str = "auto", level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger once per process."""
    json_out = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
    ]
    renderer: Any = (structlog.processors.JSONRenderer() if json_out
                     else structlog.dev.ConsoleRenderer())
    structlog.configure(
        processors=[*processors, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def get(name: str) -> Any:
    return structlog.get_logger(name)
