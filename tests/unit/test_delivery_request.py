"""The request one delivery attempt makes, as a subscriber receives it and the record keeps it."""

from __future__ import annotations

import base64
import hashlib
import hmac

from sethub.delivery import request_for
from sethub.subscriptions import Subscription

TOPIC = "https://hub.example/topics/login"
HUB = "https://hub.example/hub"
# An attempt made long ago (2001-09-09): the request must use it, not the clock.
THEN = 1_000_000_000.0


def _subscription(**fields: object) -> Subscription:
    defaults: dict[str, object] = {
        "topic": TOPIC,
        "callback": "https://rp.example/hook?token=t",
        "format": "jwt",
        "secret": b"websub-secret",
        "lease_seconds": 3600,
        "expires_at": 2**40,
        "requested_at": 1_234_567,
        "sort_key": "SUB#x",
        "failing_since": 999_000_000,
    }
    return Subscription(**(defaults | fields))  # type: ignore[arg-type]


def test_a_request_carries_the_event_the_subscription_and_the_attempt() -> None:
    request = request_for(
        _subscription(),
        jti="evt-1",
        hub_url=HUB,
        body=b"a.b.c",
        content_type="application/secevent+jwt",
        attempt=3,
        now=THEN,
    )

    assert (request.topic, request.callback, request.jti, request.hub_url) == (
        TOPIC,
        "https://rp.example/hook?token=t",
        "evt-1",
        HUB,
    )
    assert (request.content_type, request.body, request.attempt) == ("application/secevent+jwt", b"a.b.c", 3)
    # What the delivery record keeps: when the subscription was made and since when it fails.
    assert (request.subscribed_at, request.failing_since) == (1_234_567, 999_000_000)
    digest = hmac.new(b"websub-secret", b"a.b.c", hashlib.sha256).hexdigest()
    assert dict(request.headers) == {
        "Content-Type": "application/secevent+jwt",
        "Accept": "application/json",
        "Link": f'<{HUB}>; rel="hub", <{TOPIC}>; rel="self"',
        "x-hub-messageId": "evt-1",
        "User-Agent": "sethub",
        "X-Hub-Signature": f"sha256={digest}",
    }


def test_standard_webhooks_are_signed_at_the_attempt_time_with_the_secrets_of_that_time() -> None:
    current = b"whsec_" + base64.b64encode(b"c" * 32)
    previous = b"whsec_" + base64.b64encode(b"p" * 32)
    # The previous secret still signs at THEN (its overlap ends a minute later), not today.
    subscription = _subscription(
        signing="standard-webhooks",
        secret=current,
        previous_secret=previous,
        previous_secret_until=int(THEN) + 60,
    )

    request = request_for(
        subscription,
        jti="evt-2",
        hub_url=HUB,
        body=b"{}",
        content_type="application/json",
        attempt=1,
        now=THEN,
    )

    assert request.headers["webhook-timestamp"] == "1000000000"
    assert len(request.headers["webhook-signature"].split()) == 2
    assert "X-Hub-Signature" not in request.headers
