"""Keep the demo world alive while it runs: hourly traffic and labels after the history.

Without it the scheduler, checking every 15 minutes over the last day, would soon see no
predictions and raise `no_data` alerts everywhere. The feeder sends every completed hour since
the world's last fed hour (catching up the time the demo was stopped, up to a week), as a
feature logger flushing hourly would; the planted problems carry on (the drift stays, the
upstream stays broken, the delays keep growing). Promotions made while the demo runs are
followed: each hour goes to the versions active then, read from the deployment history.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core.clock import Clock, FixedClock, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.demo import world
from modeldeck.core.demo.traffic import Schedule, Traffic
from modeldeck.core.errors import ModeldeckError
from modeldeck.core.timeseries import floor_time

CATCH_UP_LIMIT = timedelta(days=7)
log = structlog.get_logger("modeldeck.demo")


class Feeder:
    """Feeds hours [fed_until, the last full hour) on every tick; `on_fed` records progress."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        start: datetime,
        fed_until: datetime,
        on_fed: Callable[[datetime], None] | None = None,
        clock: Clock = utcnow,
        interval: float = 60.0,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.fed_until = fed_until
        self.on_fed = on_fed or (lambda _at: None)
        self.clock = clock
        self.interval = interval
        self.traffic = {m.name: Traffic(m, start) for m in world.MODELS}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def feed(self) -> int:
        """Ingest every complete hour not fed yet; returns the prediction rows sent."""
        until = floor_time(self.clock(), 3600)
        if until - self.fed_until > CATCH_UP_LIMIT:
            self.fed_until = until - CATCH_UP_LIMIT  # a gap older than a week stays a gap
        rows = 0
        while self.fed_until < until and not self._stop.is_set():
            hi = self.fed_until + timedelta(hours=1)
            rows += self._hour(self.fed_until, hi)
            self.fed_until = hi
            self.on_fed(hi)
        return rows

    def _hour(self, lo: datetime, hi: datetime) -> int:
        clock = FixedClock(hi)  # ingested at the end of the hour, as a logger flushes
        rows = 0
        with Session(self.engine, expire_on_commit=False) as session:
            schedule = Schedule.from_db(session)
            for traffic in self.traffic.values():
                rows += traffic.predictions(
                    session, settings=self.settings, schedule=schedule, lo=lo, hi=hi, clock=clock
                )
            for traffic in self.traffic.values():
                traffic.labels(
                    session, settings=self.settings, schedule=schedule, lo=lo, hi=hi, clock=clock
                )
        return rows

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modeldeck-demo-feeder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.feed()
            except ModeldeckError as exc:  # e.g. a locked database: try again next tick
                log.warning("demo.feed_failed", error=str(exc))
            self._stop.wait(self.interval)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
