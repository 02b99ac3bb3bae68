"""How a subscriber's answer is recorded: the status code, the bounds of success, ``410``,
``Retry-After`` in any letter case, and the request that was sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from sethub.delivery import DeliveryRequest, classify, send


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@pytest.mark.parametrize(("code", "status"), [(199, "failed"), (200, "ok"), (299, "ok"), (300, "failed")])
def test_only_2xx_is_a_delivery(code: int, status: str) -> None:
    outcome = classify(Answer(code), duration_ms=7, now=0)
    assert (outcome.status, outcome.status_code, outcome.duration_ms) == (status, code, 7)
    assert outcome.error == ("" if status == "ok" else f"HTTP {code}")


def test_gone_and_rejected_answers_keep_their_code_and_duration() -> None:
    gone = classify(Answer(410), duration_ms=5, now=0)
    rejected = classify(Answer(400, b'{"err": "invalid_key"}'), duration_ms=6, now=0)

    assert (gone.status, gone.status_code, gone.error, gone.duration_ms) == ("gone", 410, "410 Gone", 5)
    assert (rejected.status, rejected.status_code, rejected.duration_ms) == ("rejected", 400, 6)


@pytest.mark.parametrize("name", ["Retry-After", "retry-after", "RETRY-AFTER"])
def test_retry_after_is_read_in_any_letter_case(name: str) -> None:
    outcome = classify(Answer(503, headers={"X-Other": "1", name: "120"}), duration_ms=1, now=0)
    assert outcome.retry_after == 120


def test_an_http_date_retry_after_counts_from_now() -> None:
    answer = Answer(503, headers={"Retry-After": "Thu, 01 Jan 1970 00:10:00 GMT"})
    assert classify(answer, duration_ms=1, now=540.0).retry_after == 60


class Recording:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any, Any]] = []

    def request(self, method: str, url: str, *, headers: Any = None, body: Any = None) -> Answer:
        self.sent.append((method, url, headers, body))
        return Answer(202)


def test_send_posts_the_body_and_headers_of_the_request() -> None:
    http = Recording()
    request = DeliveryRequest(
        topic="t",
        callback="https://rp.example/hook",
        jti="j",
        hub_url="https://hub.example/hub",
        content_type="application/json",
        body=b'{"a": 1}',
        headers={"Content-Type": "application/json", "x-hub-messageId": "j"},
        attempt=1,
        subscribed_at=0,
    )

    outcome = send(http, request)

    assert http.sent == [("POST", "https://rp.example/hook", request.headers, b'{"a": 1}')]
    assert (outcome.status, outcome.status_code) == ("ok", 202)
