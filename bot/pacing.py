"""Acks first: lazy work waits while requests are still arriving.

An ack costs about a millisecond; the work behind it (queries, rendering, the reply) ten times
that. In a burst — fifty people typing at once, or a flood of clicks — running both at once
makes every ack wait behind other people's work (one interpreter lock, two cores). Slack needs
the ack within 3 s but accepts the reply on the response_url for 30 minutes, so the lazy work
holds back until no request has arrived for a moment (bounded, so a steady stream never starves
the replies).
"""

from __future__ import annotations

import time
from collections.abc import Callable

QUIET_SECONDS = 0.02  # no request for this long: the burst is over
MAX_HOLD_SECONDS = 1.0  # a reply is never held back longer than this


class AckFirst:
    def __init__(
        self,
        *,
        quiet: float = QUIET_SECONDS,
        max_hold: float = MAX_HOLD_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.quiet = quiet
        self.max_hold = max_hold
        self.monotonic = monotonic
        self.sleep = sleep
        self._last_request = float("-inf")

    def request_arrived(self) -> None:
        """Called as each request comes in, before its ack."""
        self._last_request = self.monotonic()  # a float store: atomic, no lock needed

    def hold_while_busy(self) -> float:
        """Wait until requests stop arriving (at most `max_hold`); the seconds waited."""
        start = self.monotonic()
        deadline = start + self.max_hold
        while True:
            now = self.monotonic()
            until = min(self._last_request + self.quiet, deadline)
            if now >= until - 1e-6:  # (float sums: a microsecond is "now")
                return now - start
            self.sleep(until - now)
