"""Acks first: the slow half of every request runs on a small, bounded pool of threads.

An ack costs about a millisecond in the request thread; the work behind it (queries,
rendering, the reply on the response_url, the audit row) ten times that, on a lazy-listener
thread. All of it shares one interpreter lock, so in a burst — fifty people typing at once, a
flood of clicks — every thread doing lazy work takes turns with the acks. At most
`LAZY_WORKERS` lazy listeners run at once; the rest wait in the pool's queue, in order, without
holding a thread or sleeping. Slack needs the ack within 3 s but accepts the reply for
30 minutes, so a burst costs the replies a queue, never the acks their budget.

Four, not one: most of a lazy listener's time is spent waiting on Slack and the database, and
those waits overlap. (The pool used to be eight threads that each slept while requests kept
arriving, up to a second per reply; a steady stream held every reply back.)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

LAZY_WORKERS = 4


def lazy_executor(workers: int = LAZY_WORKERS) -> ThreadPoolExecutor:
    """The pool bolt runs lazy listeners on (its `listener_executor`)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modeldeck-bot")
