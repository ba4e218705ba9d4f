"""Credentials out of text that people or other systems will see.

A configured URL may hold `user:password@` or a token in its query string (Prometheus, a
webhook), and error messages name the URL they were about: messages that reach a screen, a
log, Slack or the database go through `redact`.
"""

from __future__ import annotations

import re
from typing import Any

# scheme://user:password@host → scheme://host ("token@host" too). A password may hold a raw
# "@" or "/": everything up to the last "@" of the word goes (over-redacting is the safe side).
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^\s/?#@:]*:\S*@|[^\s/?#]*@)")
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&](?:access_token|api_key|apikey|auth|key|password|passwd|secret|"
    r"sig|signature|token)=)[^&#\s]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with the credentials of every URL in it removed."""
    text = _USERINFO.sub(r"\g<scheme>", text)
    return _SECRET_PARAM.sub(r"\g<key>***", text)


def redact_data(value: Any) -> Any:
    """`redact` applied to every string inside JSON-like data (an alert's details)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    return value
