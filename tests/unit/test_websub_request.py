"""Parsing of ``POST /hub`` requests and the pure subscription rules (no network, no AWS)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from sethub.errors import BadRequestError, PayloadTooLargeError
from sethub.secretbox import SecretBox, encryption_context
from sethub.subscriptions import Subscription, expiry, is_live, state_ttl, supersedes
from sethub.verification import callback_url, new_challenge
from sethub.websub import MAX_FORM_FIELDS, MAX_HUB_BODY_BYTES, parse_hub_request

FORM = "application/x-www-form-urlencoded"


def test_form_body_and_query_are_merged_and_the_body_wins() -> None:
    request = parse_hub_request(
        query={"hub.mode": "publish", "hub.topic": "from-query"},
        body=b"hub.topic=from-body&extra=1",
        content_type=f"{FORM}; charset=UTF-8",
    )

    assert request.params == {"hub.mode": "publish", "hub.topic": "from-body", "extra": "1"}
    assert request.params_in_body


def test_a_wso2_publish_keeps_its_body_as_content() -> None:
    body = b'{"events": {}}'
    request = parse_hub_request(
        query={"hub.mode": "publish", "hub.topic": "t"}, body=body, content_type="application/json"
    )

    assert request.params == {"hub.mode": "publish", "hub.topic": "t"}
    assert not request.params_in_body
    assert (request.body, request.content_type) == (body, "application/json")


def test_a_form_body_without_hub_parameters_is_content() -> None:
    request = parse_hub_request(
        query={"hub.mode": "publish", "hub.topic": "t"}, body=b"name=ada", content_type=FORM
    )

    assert not request.params_in_body
    assert request.params["hub.topic"] == "t"


def test_form_values_are_percent_decoded() -> None:
    request = parse_hub_request(
        query=None, body=b"hub.callback=https%3A%2F%2Fx.example%2Fcb%3Fa%3D1%26b%3D2", content_type=FORM
    )

    assert request.params["hub.callback"] == "https://x.example/cb?a=1&b=2"


def test_a_body_over_one_mebibyte_is_refused() -> None:
    with pytest.raises(PayloadTooLargeError):
        parse_hub_request(query=None, body=b"x" * (MAX_HUB_BODY_BYTES + 1), content_type="text/plain")


def test_form_fields_and_query_parameters_are_bounded() -> None:
    at_limit = "&".join(f"f{n}=" for n in range(MAX_FORM_FIELDS)).encode()
    assert len(parse_hub_request(query=None, body=at_limit, content_type=FORM).form) == MAX_FORM_FIELDS

    # A body of a million empty fields (under 1 MiB) is refused before it becomes a dict.
    with pytest.raises(BadRequestError, match="too many form fields"):
        parse_hub_request(query=None, body=b"&a=" * 300_000, content_type=FORM)
    with pytest.raises(BadRequestError, match="too many query parameters"):
        parse_hub_request(
            query={f"q{n}": "" for n in range(MAX_FORM_FIELDS + 1)}, body=b"", content_type=None
        )


def test_a_form_body_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(BadRequestError, match="UTF-8"):
        parse_hub_request(query=None, body=b"hub.mode=\xff\xfe", content_type=FORM)


@pytest.mark.parametrize(
    ("callback", "expected"),
    [
        ("https://a.example/cb", "https://a.example/cb?hub.mode=subscribe&hub.challenge=c%2Bd"),
        ("https://a.example/cb?x=1", "https://a.example/cb?x=1&hub.mode=subscribe&hub.challenge=c%2Bd"),
        (
            "https://a.example/cb?x=%20y#frag",
            "https://a.example/cb?x=%20y&hub.mode=subscribe&hub.challenge=c%2Bd",
        ),
    ],
)
def test_verification_parameters_are_appended_to_the_callbacks_query(callback: str, expected: str) -> None:
    assert callback_url(callback, {"hub.mode": "subscribe", "hub.challenge": "c+d"}) == expected


def test_challenges_are_long_and_distinct() -> None:
    challenges = {new_challenge() for _ in range(100)}

    assert len(challenges) == 100
    for challenge in challenges:
        assert len(base64.urlsafe_b64decode(challenge + "=" * (-len(challenge) % 4))) >= 16


def test_newest_request_wins() -> None:
    assert supersedes(2, None)
    assert supersedes(2, 1)
    assert not supersedes(1, 2)
    assert not supersedes(2, 2)


def test_a_lease_runs_from_verification_and_ends_at_its_expiry() -> None:
    expires_at = expiry(300, verified_at=1000.7)

    assert expires_at == 1300
    assert is_live(expires_at, 1299.9)
    assert not is_live(expires_at, 1300)


def test_state_outlives_any_pending_request() -> None:
    assert state_ttl(0, now=1000) >= 1000 + 24 * 3600
    assert state_ttl(10**10, now=1000) == 10**10


def test_a_subscription_never_shows_its_secret_when_printed() -> None:
    subscription = Subscription(
        topic="t",
        callback="https://a.example/cb",
        format="jwt",
        secret=b"hunter2",
        lease_seconds=300,
        expires_at=2000,
        requested_at=1,
        sort_key="SUB#https://a.example/cb",
    )

    assert "hunter2" not in repr(subscription)
    assert subscription.is_active(1999)
    assert not subscription.is_active(2000)


class FakeKms:
    """Encrypts by tagging the plaintext with its context; counts the calls."""

    def __init__(self) -> None:
        self.decrypts = 0

    def encrypt(self, *, KeyId: str, Plaintext: bytes, EncryptionContext: dict[str, str]) -> dict[str, Any]:
        return {"CiphertextBlob": repr(sorted(EncryptionContext.items())).encode() + b"|" + Plaintext[::-1]}

    def decrypt(
        self, *, CiphertextBlob: bytes, EncryptionContext: dict[str, str], **_: Any
    ) -> dict[str, Any]:
        self.decrypts += 1
        context, _sep, reversed_plaintext = CiphertextBlob.partition(b"|")
        assert context == repr(sorted(EncryptionContext.items())).encode()
        return {"Plaintext": reversed_plaintext[::-1]}


def test_secretbox_round_trips_and_caches_decryptions() -> None:
    kms = FakeKms()
    box = SecretBox(kms, "key")  # type: ignore[arg-type]
    context = encryption_context("t", "https://a.example/cb")

    ciphertext = box.encrypt(b"s3cret", context)

    assert b"s3cret" not in ciphertext
    assert box.decrypt(ciphertext, context) == b"s3cret"
    assert box.decrypt(ciphertext, context) == b"s3cret"
    assert kms.decrypts == 1


def test_secretbox_cache_is_bounded() -> None:
    kms = FakeKms()
    box = SecretBox(kms, "key", cache_size=2)  # type: ignore[arg-type]
    context = encryption_context("t", "https://a.example/cb")
    blobs = [box.encrypt(f"s{i}".encode(), context) for i in range(3)]

    for blob in blobs:
        box.decrypt(blob, context)
    box.decrypt(blobs[0], context)

    assert kms.decrypts == 4
