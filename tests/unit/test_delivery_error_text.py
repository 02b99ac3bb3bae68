"""What an operator reads about a delivery: the subscriber's RFC 8935 error, one line, and
objects that name a subscription without its secret or its callback's path."""

from __future__ import annotations

from dataclasses import dataclass, field

from sethub.delivery import DeliveryRequest, classify, rfc8935_error
from sethub.subscriptions import Subscription, subscription_id

CALLBACK = "https://rp.example/hooks/set?token=s3cr3t"


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def test_an_rfc8935_error_reads_err_then_description() -> None:
    assert (
        rfc8935_error(b'{"err": "invalid_key", "description": "unknown kid"}') == "invalid_key: unknown kid"
    )
    assert rfc8935_error(b'{"err": "invalid_key"}') == "invalid_key"
    assert rfc8935_error(b'{"err": "invalid_key", "description": 7}') == "invalid_key"
    assert rfc8935_error(b'{"err": "' + b"e" * 100 + b'"}') == "e" * 64


def test_a_body_without_a_string_err_is_no_rfc8935_error() -> None:
    assert rfc8935_error(b'{"description": "no err"}') is None
    assert rfc8935_error(b'{"err": 400}') is None
    assert rfc8935_error(b'["err"]') is None
    assert rfc8935_error(b"<html>") is None


def test_a_rejection_is_recorded_on_one_line() -> None:
    answer = Answer(400, b'{"err": "invalid_request", "description": "bad\\n   audience\\tclaim"}')

    outcome = classify(answer, duration_ms=1, now=0)

    assert (outcome.status, outcome.error) == ("rejected", "400 invalid_request: bad audience claim")


def test_a_delivery_request_names_its_subscription_not_its_callback_path() -> None:
    request = DeliveryRequest(
        topic="acme.login",
        callback=CALLBACK,
        jti="j-1",
        hub_url="https://hub.example/hub",
        content_type="application/json",
        body=b"{}",
        headers={"X-Hub-Signature": "sha256=abc"},
        attempt=1,
        subscribed_at=0,
    )

    shown = repr(request)

    expected = f"rp.example (subscription {subscription_id('acme.login', CALLBACK)})"
    assert shown == f"DeliveryRequest(topic='acme.login', callback={expected!r}, jti='j-1')"


def test_a_subscription_shows_whether_it_has_a_secret_not_the_secret() -> None:
    def subscription(secret: bytes | None) -> Subscription:
        return Subscription(
            topic="t",
            callback="https://rp.example/cb",
            format="jwt",
            secret=secret,
            lease_seconds=60,
            expires_at=100,
            requested_at=0,
            sort_key="SUB#x",
        )

    assert "secret=<set>," in repr(subscription(b"k3y"))
    assert "k3y" not in repr(subscription(b"k3y"))
    assert "secret=None," in repr(subscription(None))
