"""Verified subscriptions for delivery tests, written through the store's own request path."""

from __future__ import annotations

import time

from sethub.store import SubscriptionStore


def seed_subscription(
    store: SubscriptionStore, topic: str, callback: str, *, fmt: str = "jwt", secret: bytes | None = None
) -> None:
    """Register ``topic`` and apply a verified subscription of ``callback`` to it, as the
    verifier would after a successful challenge (the GET itself is the hub tests' concern)."""
    store.register_topic(topic)
    request_id = store.put_pending(
        mode="subscribe",
        topic=topic,
        callback=callback,
        format=fmt,  # type: ignore[arg-type]
        secret=secret,
        lease_seconds=3600,
        requested_at=time.time_ns(),
    )
    pending = store.get_pending(topic, callback, request_id)
    assert pending is not None
    assert store.apply_verified(pending)
