"""Standard Webhooks signing and event-type filters (sethub.webhooks), checked against the
``standardwebhooks`` package a receiver uses."""

from __future__ import annotations

import base64
import os
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from sethub import delivery, webhooks
from sethub.errors import BadRequestError
from sethub.subscriptions import Subscription


def _secret(size: int = 32) -> bytes:
    return b"whsec_" + base64.b64encode(os.urandom(size))


def _subscription(secret: bytes, previous: bytes | None = None, until: int = 0) -> Subscription:
    return Subscription(
        topic="t",
        callback="https://example.com/hook",
        format="json",
        secret=secret,
        lease_seconds=60,
        expires_at=2**40,
        requested_at=1,
        sort_key="SUB#x",
        signing="standard-webhooks",
        previous_secret=previous,
        previous_secret_until=until,
    )


@pytest.mark.parametrize("size", [24, 32, 64])
def test_a_delivery_verifies_with_the_package(size):
    secret = _secret(size)
    now = time.time()

    request = delivery.request_for(
        _subscription(secret),
        jti="evt-1",
        hub_url="https://hub/hub",
        body=b'{"jti":"evt-1"}',
        content_type="application/json",
        attempt=1,
        now=now,
    )

    headers = dict(request.headers)
    assert Webhook(secret.decode()).verify(request.body, headers) == {"jti": "evt-1"}
    assert headers["webhook-id"] == "evt-1"
    assert headers["webhook-timestamp"] == str(int(now))
    assert "X-Hub-Signature" not in headers


def test_the_previous_secret_signs_only_within_its_overlap():
    new, old = _secret(), _secret()
    now = time.time()
    within = _subscription(new, old, until=int(now) + 10)
    after = _subscription(new, old, until=int(now))

    def signatures(subscription: Subscription) -> dict[str, str]:
        request = delivery.request_for(
            subscription,
            jti="j",
            hub_url="h",
            body=b"{}",
            content_type="application/json",
            attempt=1,
            now=now,
        )
        return dict(request.headers)

    both, one = signatures(within), signatures(after)
    assert len(both["webhook-signature"].split(" ")) == 2
    Webhook(old.decode()).verify(b"{}", both)
    Webhook(new.decode()).verify(b"{}", both)
    assert len(one["webhook-signature"].split(" ")) == 1
    with pytest.raises(WebhookVerificationError):
        Webhook(old.decode()).verify(b"{}", one)


def test_the_same_secret_twice_is_one_signature():
    secret = _secret()
    headers = webhooks.headers(msg_id="j", timestamp=1, body=b"", secrets=[secret, secret])
    assert " " not in headers["webhook-signature"]


def test_unpadded_secrets_are_accepted_like_the_package_does():
    secret = _secret(32).rstrip(b"=")
    assert webhooks.signing_key(secret) == base64.b64decode(secret[6:] + b"=")


@pytest.mark.parametrize(
    "secret",
    [
        None,
        b"plain-websub-secret",
        b"whsec_",
        b"whsec_" + base64.b64encode(bytes(range(23))),
        b"whsec_" + base64.b64encode(bytes(range(65))),
        b"whsec_!!!!" + base64.b64encode(bytes(range(32))),
        "whsec_é".encode(),
    ],
    # Fixed values and ids: pytest-xdist's workers must collect the same test names.
    ids=["none", "plain", "empty", "23-bytes", "65-bytes", "not-base64", "non-ascii"],
)
def test_standard_webhooks_needs_a_whsec_secret_and_never_echoes_it(secret):
    with pytest.raises(BadRequestError) as refused:
        webhooks.check_subscription("standard-webhooks", secret)
    assert refused.value.status == 400
    if secret and len(secret) > len(b"whsec_"):  # the prefix alone is named in the reason
        assert secret.decode(errors="replace") not in refused.value.reason


def test_websub_signing_takes_any_secret():
    webhooks.check_subscription("websub", b"anything")
    webhooks.check_subscription("websub", None)


def test_signing_values():
    assert webhooks.parse_signing({}) == "websub"
    assert webhooks.parse_signing({"signing": "Standard-Webhooks"}) == "standard-webhooks"
    with pytest.raises(BadRequestError):
        webhooks.parse_signing({"signing": "svix"})


def test_event_filters_are_split_on_spaces_and_commas():
    assert webhooks.parse_events({"events": " urn:a, urn:b urn:c,,urn:a "}) == {"urn:a", "urn:b", "urn:c"}
    assert webhooks.parse_events({}) == frozenset()
    with pytest.raises(BadRequestError):
        webhooks.parse_events({"events": " ".join(f"urn:{i}" for i in range(webhooks.MAX_EVENT_TYPES + 1))})
    with pytest.raises(BadRequestError):
        webhooks.parse_events({"events": "urn:" + "x" * webhooks.MAX_EVENT_TYPE_CHARS})


def test_what_a_filter_lets_through():
    assert webhooks.wanted(frozenset(), None)
    assert webhooks.wanted(frozenset(), {"urn:a"})
    assert webhooks.wanted(frozenset({"urn:a"}), {"urn:b", "urn:a"})
    assert not webhooks.wanted(frozenset({"urn:a"}), {"urn:b"})
    assert not webhooks.wanted(frozenset({"urn:a"}), None)  # untyped content
