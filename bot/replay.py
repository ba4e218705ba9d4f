"""HTTP mode: a signed request is accepted once.

bolt's signature check refuses requests whose timestamp is more than 5 minutes off, but within
those 5 minutes a captured request (signature and all) would verify again. The replay guard
remembers the (timestamp, signature) of every verified request for as long as bolt would still
accept its timestamp and refuses the same pair a second time with 401, like a forged one.

The memory is per process: behind a load balancer with several replicas a replay that lands on
another replica is not caught here (promotes and rollbacks still happen once: their Slack
trigger id is the idempotency key).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from slack_bolt import BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware

from modeldeck.core import logs

log = logs.get("modeldeck.bot.replay")
WINDOW_SECONDS = 5 * 60  # bolt refuses timestamps further off than this


class ReplayCache:
    """The (timestamp, signature) pairs seen while their timestamp is still acceptable."""

    def __init__(
        self, *, window: float = WINDOW_SECONDS, now: Callable[[], float] = time.time
    ) -> None:
        self.window = window
        self.now = now
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def first_time(self, timestamp: str, signature: str) -> bool:
        """Record the pair; False when it was already seen inside the window."""
        try:
            sent_at = float(timestamp)
        except ValueError:
            return False
        now = self.now()
        with self._lock:
            if len(self._seen) > 64 and next(iter(self._seen.values())) < now - self.window:
                self._forget_before(now - self.window)
            key = (timestamp, signature)
            if key in self._seen:
                return False
            self._seen[key] = sent_at
            return True

    def __len__(self) -> int:
        return len(self._seen)

    def _forget_before(self, cutoff: float) -> None:
        # Requests arrive in about timestamp order: most expired entries are at the front.
        for key, sent_at in list(self._seen.items()):
            if sent_at < cutoff:
                del self._seen[key]


class ReplayGuard(Middleware):
    """bolt middleware (after bolt's own signature check): refuse a request seen before.

    A Middleware, not a function: it runs before every ack, and bolt builds the arguments of
    a function middleware anew for every request."""

    def __init__(self, cache: ReplayCache) -> None:
        self.cache = cache

    def process(
        self,
        *,
        req: BoltRequest,
        resp: BoltResponse,
        next: Callable[[], BoltResponse],  # noqa: A002 - bolt's name
    ) -> BoltResponse | None:
        timestamp = _header(req, "x-slack-request-timestamp")
        signature = _header(req, "x-slack-signature")
        if req.mode == "socket_mode" or not timestamp or not signature:
            return next()  # Socket Mode: nothing is signed, the websocket is the authentication
        if not self.cache.first_time(timestamp, signature):
            log.warning("slack.replay_refused", timestamp=timestamp)
            return BoltResponse(status=401, body={"error": "invalid request"})
        return next()


def _header(req: BoltRequest, name: str) -> str | None:
    values = req.headers.get(name) or []
    return str(values[0]) if values else None
