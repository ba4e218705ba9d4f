"""Acks first: the slow half of every request runs on a small, bounded pool of threads, and it
steps aside while a burst of requests is being acked.

An ack is well under a millisecond of Python in the bot process; the work behind it (queries,
rendering, the reply on the response_url, the audit row) several milliseconds. All of it
shares one interpreter lock, and a thread that wants the lock back (the event loop, between two
sockets) waits for whoever holds it to let go, up to 5 ms a time. So in a burst — fifty people
typing at once, a flood of clicks — lazy work running beside the acks costs each ack several of
those waits. Two rules keep it out of their way:

- At most `LAZY_WORKERS` lazy listeners run at once; the rest wait in the pool's queue, in
  order, without holding a thread.
- Lazy work starts, opens a database session and posts its reply only between bursts
  (`AckGate`, fed by the HTTP server): a burst is acked first and answered right after. A
  burst has that priority for `PATIENCE` seconds at most, so a stream of requests that never
  pauses slows the replies down but never stops them.

Slack needs the ack within 3 s but accepts the reply for 30 minutes, so a burst costs the
replies a queue, never the acks their budget.

Four workers, not one: most of a lazy listener's time is spent waiting on Slack and the
database, and those waits overlap. (The pool used to be eight threads that each slept while
requests kept arriving, up to a second per reply; a steady stream held every reply back.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from modeldeck.core import logs

log = logs.get("modeldeck.bot.pacing")
LAZY_WORKERS = 4
QUIET = 0.005  # seconds without a request that end a burst (requests of one come < 1 ms apart)
PATIENCE = 0.5  # seconds a burst keeps lazy work waiting, at most


class AckGate:
    """Requests arrive in bursts; lazy work waits for a burst's acks to be sent.

    The HTTP server acks a request as soon as it has read it, one after the other on the event
    loop, so "no ack pending" alone happens between any two requests of a burst. A burst is
    over when no request is pending and none arrived for `quiet` seconds. It has priority for
    `patience` seconds at most: a stream that never pauses gets lazy work beside it after that,
    as if there were no gate, instead of a backlog of answers that grows for as long as it lasts.
    """

    def __init__(
        self,
        *,
        quiet: float = QUIET,
        patience: float = PATIENCE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quiet = quiet
        self.patience = patience
        self.monotonic = monotonic
        self._pending = 0
        self._last = float("-inf")  # when the last request arrived or was acked
        self._burst_began = float("-inf")
        self._calm = threading.Condition()

    def arrived(self) -> None:
        with self._calm:
            now = self.monotonic()
            if not self._pending and now - self._last >= self.quiet:
                self._burst_began = now
            self._pending += 1
            self._last = now

    def acked(self) -> None:
        with self._calm:
            self._pending -= 1
            self._last = self.monotonic()
            if self._pending == 0:
                self._calm.notify_all()

    def step_aside(self) -> None:
        """Return once the burst is over, or once it has had its `patience` seconds."""
        if not self._pending and self.monotonic() - self._last >= self.quiet:  # usually
            return
        with self._calm:
            deadline = self._burst_began + self.patience
            while (now := self.monotonic()) < deadline:
                if self._pending:
                    wait = deadline - now
                elif (calm_for := now - self._last) < self.quiet:
                    wait = min(self.quiet - calm_for, deadline - now)
                else:
                    return
                self._calm.wait(wait)


# One per process: what it arbitrates is the process's one interpreter lock. The HTTP
# server (bot/server.py) counts on it; every LazyPool yields to it.
ACKS = AckGate()


class LazyPool:
    """The threads lazy work runs on, each piece after the pending acks."""

    def __init__(self, workers: int = LAZY_WORKERS, gate: AckGate = ACKS) -> None:
        self.gate = gate
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modeldeck-bot")

    def submit(self, work: Callable[[], None]) -> None:
        self._threads.submit(self._run, work)

    def _run(self, work: Callable[[], None]) -> None:
        self.gate.step_aside()
        try:
            work()
        except Exception:  # nobody waits on the future: a failure must at least be loud
            log.exception("slack.lazy_failed", work=getattr(work, "__name__", repr(work)))
