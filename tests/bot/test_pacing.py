"""Acks first: lazy work runs on a bounded pool of threads (it used to start eight, each
sleeping while requests kept arriving) and steps aside while a burst of requests is acked."""

from __future__ import annotations

import threading
import time

from slack_bolt import App
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from modeldeck.bot.pacing import ACKS, LAZY_WORKERS, AckGate, LazyPool
from modeldeck.bot.server import SlackEvents
from tests.bot.conftest import VIEWER, Bot
from tests.bot.slack import Sent, signed_headers
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


def test_lazy_work_waits_until_the_burst_is_acked() -> None:
    gate = AckGate(quiet=0.02, patience=10)
    pool = LazyPool(workers=1, gate=gate)
    ran = threading.Event()
    ran_at: list[float] = []

    def work() -> None:
        ran_at.append(time.monotonic())
        ran.set()

    gate.arrived()
    gate.arrived()
    pool.submit(work)
    gate.acked()
    assert not ran.wait(0.1)  # one request of the burst is still waiting for its ack
    last_ack = time.monotonic()
    gate.acked()
    assert ran.wait(5)
    assert ran_at[0] - last_ack >= 0.02  # and then no request came for `quiet` seconds


def test_a_stream_that_never_pauses_has_priority_for_patience_seconds_only() -> None:
    gate = AckGate(quiet=0.01, patience=0.3)
    pool = LazyPool(workers=1, gate=gate)
    first, second = threading.Event(), threading.Event()
    began = time.monotonic()
    gate.arrived()  # never acked: as if requests never stopped coming
    pool.submit(first.set)
    assert first.wait(5)
    assert time.monotonic() - began >= 0.3
    gate.arrived()  # the same stream: no new priority, the work goes ahead at once
    pool.submit(second.set)
    assert second.wait(0.15)
    gate.acked()
    gate.acked()


def test_a_failing_piece_of_lazy_work_does_not_stop_the_pool() -> None:
    pool = LazyPool(workers=1, gate=AckGate())
    ran = threading.Event()

    def broken() -> None:
        raise RuntimeError("bug")

    pool.submit(broken)
    pool.submit(ran.set)
    assert ran.wait(5)


def test_every_request_leaves_the_gate_answered_or_refused(bot: Bot) -> None:
    """Accepted, forged and malformed requests alike: none holds lazy work back after it."""
    assert bot.slack.command("help", user=VIEWER).status == 200
    assert bot.slack.post("text=help", headers=signed_headers("text=other")).status == 401
    assert bot.slack.post("not a form", headers=signed_headers("not a form")).status == 404
    start = time.monotonic()
    ACKS.step_aside()
    assert time.monotonic() - start < ACKS.patience / 2


class CountingGate(AckGate):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def arrived(self) -> None:
        self.calls.append("arrived")
        super().arrived()

    def acked(self) -> None:
        self.calls.append("acked")
        super().acked()


def test_only_requests_signed_like_slacks_count_for_the_gate() -> None:
    """Without Slack's signature headers a request is refused by bolt and never holds the
    replies of real requests back; a signed one (even a forged signature) is counted until
    its answer is sent."""
    app = App(signing_secret="secret", token="xoxb-test", token_verification_enabled=False)
    gate = CountingGate()
    web = Starlette(routes=[Route("/slack/events", SlackEvents(app, gate), methods=["POST"])])
    with TestClient(web) as client:
        assert client.post("/slack/events", content="text=help").status_code == 401
        assert gate.calls == []
        forged = signed_headers("text=help", secret="not the secret")
        assert client.post("/slack/events", content="text=help", headers=forged).status_code == 401
        assert gate.calls == ["arrived", "acked"]
