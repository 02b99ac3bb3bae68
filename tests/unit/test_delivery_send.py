"""What one attempt records when it goes wrong: the reason on one line and how long it took.

The delivery record is all an operator has to tell a slow subscriber from a refusing one, so
every outcome of ``send`` carries the time the attempt took, measured on a clock the test moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from sethub import delivery
from sethub.delivery import DeliveryRequest, send
from sethub.errors import BlockedAddressError, OutboundError, OutboundTimeoutError


class Clock:
    """Both of delivery's clocks: the monotonic one and the wall clock, moved together."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = 480.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class TakesTime:
    """An Http whose request takes ``seconds`` on the clock, then answers or raises."""

    def __init__(self, clock: Clock, seconds: float, result: Answer | Exception) -> None:
        self.clock = clock
        self.seconds = seconds
        self.result = result

    def request(self, method: str, url: str, *, headers: Any = None, body: Any = None) -> Answer:
        self.clock.advance(self.seconds)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    # Only delivery's view of the clock moves: nothing else in the process is affected.
    monkeypatch.setattr(delivery, "time", SimpleNamespace(monotonic=clock.monotonic, time=clock.time))
    return clock


def _request() -> DeliveryRequest:
    return DeliveryRequest(
        topic="t",
        callback="https://rp.example/hook",
        jti="j",
        hub_url="https://hub.example/hub",
        content_type="application/json",
        body=b"{}",
        headers={},
        attempt=1,
        subscribed_at=0,
    )


def test_a_blocked_callback_records_why_and_how_long_the_check_took(clock: Clock) -> None:
    refused = BlockedAddressError("refused to contact 10.0.0.1: private network")

    outcome = send(TakesTime(clock, 0.25, refused), _request())

    assert outcome.status == "rejected"
    assert outcome.status_code is None
    assert outcome.error == "blocked: refused to contact 10.0.0.1: private network"
    assert outcome.duration_ms == 250


def test_a_network_failure_records_the_reason_on_one_line_and_the_time_spent(clock: Clock) -> None:
    failure = OutboundError("connection failed:\n  connection refused\tby rp.example")

    outcome = send(TakesTime(clock, 1.5, failure), _request())

    assert outcome.status == "failed"
    assert outcome.status_code is None
    assert outcome.error == "connection failed: connection refused by rp.example"
    assert outcome.duration_ms == 1500
    assert not outcome.throttled


def test_a_timeout_records_the_whole_wait(clock: Clock) -> None:
    outcome = send(TakesTime(clock, 10.0, OutboundTimeoutError("read timed out after 10 s")), _request())

    assert (outcome.status, outcome.error) == ("failed", "read timed out after 10 s")
    assert outcome.duration_ms == 10000
    assert outcome.throttled


def test_an_answer_records_the_time_until_it_came(clock: Clock) -> None:
    outcome = send(TakesTime(clock, 0.125, Answer(503, headers={"Retry-After": "30"})), _request())

    assert (outcome.status, outcome.status_code, outcome.duration_ms) == ("failed", 503, 125)
    assert outcome.retry_after == 30


def test_a_retry_after_date_counts_from_when_the_answer_came(clock: Clock) -> None:
    # The answer comes at 540 s past the epoch (480 + 60): 00:10:00 is 60 s after it.
    busy = Answer(503, headers={"Retry-After": "Thu, 01 Jan 1970 00:10:00 GMT"})

    outcome = send(TakesTime(clock, 60.0, busy), _request())

    assert outcome.retry_after == 60
