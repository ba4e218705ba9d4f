"""Free text a button needs when it is clicked, kept in the bot instead of in the button.

A button's value is capped at 2000 characters and JSON-escaped text grows (`\\u0436` for one
Cyrillic letter), so a reason of a few hundred characters would not fit. Buttons carry ids;
the text stays here under a random token until the confirmation can no longer be used
(Slack accepts replies to a response_url for 30 minutes).

Per process: a click that reaches a restarted bot (or another HTTP replica) finds no text and
is refused with "run the command again", changing nothing.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from modeldeck.core.errors import InvalidInput

TTL_SECONDS = 30 * 60
CAPACITY = 10_000  # confirmations waiting at once; the oldest go first
TOKEN_KEY = "p"  # where a button value names its stored text
TEXT_KEY = "r"  # the request key the text belongs to (the rollback reason)


class PendingTexts:
    def __init__(
        self,
        *,
        ttl: float = TTL_SECONDS,
        capacity: int = CAPACITY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self.monotonic = monotonic
        self._texts: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, text: str) -> str:
        token = secrets.token_urlsafe(12)
        now = self.monotonic()
        with self._lock:
            while self._texts and (
                len(self._texts) >= self.capacity or next(iter(self._texts.values()))[0] < now
            ):
                self._texts.popitem(last=False)
            self._texts[token] = (now + self.ttl, text)
        return token

    def get(self, token: str) -> str | None:
        with self._lock:
            found = self._texts.get(token)
        if found is None or found[0] < self.monotonic():
            return None
        return found[1]


TEXTS = PendingTexts()


def without_text(request: dict[str, Any], store: PendingTexts = TEXTS) -> dict[str, Any]:
    """The request for a button value: its free text replaced by a token (ids only)."""
    out = {k: v for k, v in request.items() if k != TEXT_KEY}
    text = str(request.get(TEXT_KEY) or "")
    if text:
        out[TOKEN_KEY] = store.put(text)
    return out


def with_text(value: dict[str, Any], store: PendingTexts = TEXTS) -> dict[str, Any]:
    """The request a clicked button stands for, its free text restored."""
    token = value.get(TOKEN_KEY)
    if token is None:
        return value
    text = store.get(str(token)) if isinstance(token, str) else None
    if text is None:
        raise InvalidInput(
            "this confirmation has expired (it is over 30 minutes old, or the bot restarted); "
            "nothing changed",
            hint="run the rollback command again",
        )
    out = {k: v for k, v in value.items() if k != TOKEN_KEY}
    out[TEXT_KEY] = text
    return out
