"""``X-Hub-Signature`` on every kind of delivery body: no network.

A subscription with a secret must be able to authenticate whatever it receives: the
compact JWS of a ``jwt`` subscription, the claims of a ``json`` one, and published
content that is not a SET (which every format receives as is).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from sethub import sets
from sethub.delivery import SIGNATURE_HEADER, body_for, request_for
from sethub.messages import PreparedPayload
from sethub.subscriptions import Subscription

SET_PAYLOAD = PreparedPayload(
    jti="j-1",
    jwt="eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJqLTEifQ.c2ln",
    json_b64=base64.b64encode(b'{"jti":"j-1"}').decode(),
)
CONTENT_PAYLOAD = PreparedPayload(
    jti="j-2", content_type="application/xml", content_b64=base64.b64encode(b"<feed/>").decode()
)


def subscription(fmt: str, secret: bytes | None) -> Subscription:
    return Subscription(
        topic="acme.login",
        callback="https://crm.example/hook?token=abc",
        format=fmt,  # type: ignore[arg-type]
        secret=secret,
        lease_seconds=3600,
        expires_at=2_000_000_000,
        requested_at=1,
        sort_key="SUB#x",
    )


@pytest.mark.parametrize(
    ("payload", "fmt", "content_type"),
    [
        (SET_PAYLOAD, "jwt", sets.SET_CONTENT_TYPE),
        (SET_PAYLOAD, "json", sets.JSON_CONTENT_TYPE),
        (CONTENT_PAYLOAD, "jwt", "application/xml"),
        (CONTENT_PAYLOAD, "json", "application/xml"),
    ],
    ids=["jwt", "json", "content-to-jwt", "content-to-json"],
)
def test_a_subscription_with_a_secret_gets_the_hmac_of_the_exact_body(
    payload: PreparedPayload, fmt: str, content_type: str
) -> None:
    # GIVEN a subscription of this format with a secret
    secret = b"s3cret-" + fmt.encode()
    body, body_type = body_for(payload, fmt)

    # WHEN its delivery request is built
    request = request_for(
        subscription(fmt, secret),
        jti=payload.jti,
        hub_url="https://hub/hub",
        body=body,
        content_type=body_type,
        attempt=1,
    )

    # THEN the body is what the format receives and it carries the HMAC of those bytes
    assert request.headers["Content-Type"] == content_type
    assert request.body == body
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    assert request.headers[SIGNATURE_HEADER] == expected


@pytest.mark.parametrize(
    ("payload", "fmt"), [(SET_PAYLOAD, "jwt"), (SET_PAYLOAD, "json"), (CONTENT_PAYLOAD, "jwt")]
)
def test_a_subscription_without_a_secret_gets_no_signature(payload: PreparedPayload, fmt: str) -> None:
    body, body_type = body_for(payload, fmt)

    request = request_for(
        subscription(fmt, None),
        jti=payload.jti,
        hub_url="https://hub/hub",
        body=body,
        content_type=body_type,
        attempt=1,
    )

    assert SIGNATURE_HEADER not in request.headers
