"""Acks first: lazy work runs on a bounded pool of threads (it used to start eight, each
sleeping while requests kept arriving)."""

from __future__ import annotations

import threading

from modeldeck.bot.pacing import LAZY_WORKERS
from tests.bot.conftest import VIEWER, Bot
from tests.bot.slack import Sent
from tests.utils.servers import wait_until


def test_lazy_work_runs_on_a_bounded_pool(bot: Bot) -> None:
    """A burst of commands never starts more than LAZY_WORKERS lazy threads; all are answered."""
    before = {t.ident for t in threading.enumerate() if t.name.startswith("modeldeck-bot")}
    answers: list[Sent] = []

    def ask() -> None:
        answers.append(bot.slack.command("status fraud-detector", user=VIEWER))

    burst = [threading.Thread(target=ask) for _ in range(3 * LAZY_WORKERS)]
    for t in burst:
        t.start()
    for t in burst:
        t.join()
    wait_until(lambda: len(bot.fake.responses()) >= len(burst), timeout=20, what="every reply")
    started = {
        t.ident
        for t in threading.enumerate()
        if t.name.startswith("modeldeck-bot") and t.ident not in before
    }
    assert 1 <= len(started) <= LAZY_WORKERS
    assert [a.status for a in answers] == [200] * len(burst)
