"""What may reach the screen: messages without credentials, failures without tracebacks.

Messages from core (a failed Prometheus scrape, an alert's summary, a refusal) can carry the
URL they were about, and a configured URL may hold `user:password@` or a token in its query
string: every message a page shows goes through `redact`. An unexpected exception inside an
action is logged with its traceback and a short reference, and the page says only that it
failed (`streamlit run --client.showErrorDetails none` covers the rest of the script).
"""

from __future__ import annotations

import logging
import uuid

from modeldeck.core.redaction import redact, redact_data

log = logging.getLogger("modeldeck.dashboard")
__all__ = ["redact", "redact_data", "unexpected"]


def unexpected(what: str, exc: BaseException) -> str:
    """Log a failure nobody planned for, with its traceback, and return what the page says."""
    ref = uuid.uuid4().hex[:8]
    log.error("dashboard: %s failed unexpectedly (ref %s)", what, ref, exc_info=exc)
    return (
        f"{what} failed unexpectedly (reference {ref}). The details are in the dashboard's "
        "log; try again, or ask whoever runs modeldeck."
    )
