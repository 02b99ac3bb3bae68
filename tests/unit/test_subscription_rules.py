"""The subscription model's keys and rules (``sethub.subscriptions``): pure functions, no AWS.

The table keys are stored data: a key computed differently after an upgrade would lose every
subscription, so their exact form is pinned here.
"""

from __future__ import annotations

import hashlib

import pytest

from sethub.subscriptions import (
    PENDING_TTL_SECONDS,
    TOMBSTONE_TTL_SECONDS,
    PendingRequest,
    Subscription,
    expiry,
    is_live,
    request_key,
    state_ttl,
    subscription_id,
    subscription_key,
    supersedes,
    topic_key,
)

CALLBACK = "https://rp.example/hooks/set?token=s3cr3t"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def subscription(**changes: object) -> Subscription:
    fields: dict[str, object] = {
        "topic": "acme.login",
        "callback": CALLBACK,
        "format": "jwt",
        "secret": b"current",
        "lease_seconds": 3600,
        "expires_at": 2_000,
        "requested_at": 1,
        "sort_key": subscription_key(CALLBACK),
    }
    fields.update(changes)
    return Subscription(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "topic",
    ["acme.login", "t" * 1024, "\u00e9" * 512],  # the last: 512 characters, 1024 UTF-8 bytes
)
def test_a_topic_up_to_1024_bytes_is_its_own_key(topic: str) -> None:
    assert topic_key(topic) == f"TOPIC#{topic}"


@pytest.mark.parametrize("topic", ["t" * 1025, "\u00e9" * 513])
def test_a_longer_topic_is_keyed_by_its_hash(topic: str) -> None:
    assert topic_key(topic) == f"TOPICH#{sha256(topic)}"
    assert topic_key(topic) != topic_key(topic[:-1] + "x")


def test_callbacks_are_keyed_by_their_hash_never_their_url() -> None:
    assert subscription_key(CALLBACK) == f"SUB#{sha256(CALLBACK)}"
    assert request_key(CALLBACK) == f"REQ#{sha256(CALLBACK)}"
    assert "token" not in subscription_key(CALLBACK) + request_key(CALLBACK)


def test_a_subscription_id_is_128_bits_of_the_topic_and_callback() -> None:
    sub_id = subscription_id("acme.login", CALLBACK)

    assert sub_id == sha256(f"acme.login\n{CALLBACK}")[:32]
    assert sub_id != subscription_id("acme.logout", CALLBACK)
    assert sub_id != subscription_id("acme.login", CALLBACK + "x")


def test_a_subscription_signs_with_its_secret_and_its_previous_one_until_the_overlap_ends() -> None:
    rotated = subscription(previous_secret=b"previous", previous_secret_until=1_500)

    assert rotated.secrets(1_499.9) == [b"current", b"previous"]
    assert rotated.secrets(1_500) == [b"current"]
    assert subscription().secrets(0) == [b"current"]


def test_without_a_current_secret_only_the_previous_one_signs_in_its_overlap() -> None:
    assert subscription(secret=None, previous_secret=b"previous", previous_secret_until=10).secrets(5) == [
        b"previous"
    ]
    assert subscription(secret=None).secrets(5) == []
    assert subscription(secret=b"", previous_secret=b"", previous_secret_until=10).secrets(5) == []


def test_a_subscription_is_active_strictly_before_its_expiry() -> None:
    assert subscription(expires_at=2_000).is_active(1_999.999)
    assert not subscription(expires_at=2_000).is_active(2_000)
    assert is_live(10, 9)
    assert not is_live(10, 10)


def test_a_subscription_prints_without_its_secret() -> None:
    shown = repr(subscription(secret=b"hunter2", previous_secret=b"old-one"))

    assert shown == (
        f"Subscription(topic='acme.login', callback={CALLBACK!r}, format='jwt', secret=<set>, "
        "lease_seconds=3600, expires_at=2000)"
    )
    assert "secret=None" in repr(subscription(secret=None))


def test_a_pending_request_prints_without_its_secret() -> None:
    request = PendingRequest(
        request_id="r1",
        mode="subscribe",
        topic="acme.login",
        callback=CALLBACK,
        format="json",
        secret_ciphertext=b"ciphertext-bytes",
        lease_seconds=600,
        requested_at=5,
    )

    assert repr(request) == (
        f"PendingRequest(request_id='r1', mode='subscribe', topic='acme.login', callback={CALLBACK!r}, "
        "format='json', lease_seconds=600)"
    )


def test_a_lease_counts_whole_seconds_from_verification() -> None:
    assert expiry(600, 1_000.9) == 1_600


def test_state_is_kept_until_its_expiry_or_as_long_as_a_pending_request_could_outlive_it() -> None:
    assert PENDING_TTL_SECONDS == 24 * 3600
    assert TOMBSTONE_TTL_SECONDS == 2 * PENDING_TTL_SECONDS
    assert state_ttl(0, 1_000.7) == 1_000 + TOMBSTONE_TTL_SECONDS
    assert state_ttl(10**9, 1_000) == 10**9


def test_only_a_strictly_newer_request_replaces_state() -> None:
    assert supersedes(5, None)
    assert supersedes(6, 5)
    assert not supersedes(5, 5)
    assert not supersedes(4, 5)
