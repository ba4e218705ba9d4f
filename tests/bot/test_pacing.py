"""Acks first: lazy work holds back while a burst of requests is still arriving."""

from __future__ import annotations

from modeldeck.bot.pacing import AckFirst


class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def pacing(time: FakeTime) -> AckFirst:
    return AckFirst(quiet=0.02, max_hold=1.0, monotonic=time.monotonic, sleep=time.sleep)


def test_no_requests_no_wait() -> None:
    time = FakeTime()
    assert pacing(time).hold_while_busy() == 0
    assert time.slept == []


def test_waits_for_the_burst_to_end() -> None:
    time = FakeTime()
    gate = pacing(time)
    gate.request_arrived()
    time.now += 0.005
    assert round(gate.hold_while_busy(), 3) == 0.015  # until 20 ms after the last request


def test_a_steady_stream_never_starves_the_replies() -> None:
    time = FakeTime()
    gate = pacing(time)

    def sleep_while_requests_keep_coming(seconds: float) -> None:
        time.sleep(seconds)
        gate.request_arrived()

    gate.sleep = sleep_while_requests_keep_coming
    gate.request_arrived()
    assert round(gate.hold_while_busy(), 3) == 1.0
