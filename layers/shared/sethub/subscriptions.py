"""The subscription model and its pure rules: leases, expiry, newest-request-wins.

A subscriber's request (subscribe or unsubscribe) is first stored as a
``PendingRequest``; once its callback confirms intent, the request is applied and
becomes the (topic, callback) pair's state: an active ``Subscription`` or an
unsubscribed tombstone. Requests are ordered by ``requested_at`` (nanoseconds at
which the hub received them): a request only takes effect if it is newer than the
state it replaces, so an old request whose verification finishes late never undoes
a newer one. The DynamoDB side of these rules lives in ``sethub.store``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sethub.messages import Format
    from sethub.webhooks import Signing

Mode = Literal["subscribe", "unsubscribe"]
State = Literal["active", "unsubscribed", "disabled"]

SUBSCRIPTION_PREFIX = "SUB#"
REQUEST_PREFIX = "REQ#"
TOPIC_PREFIX = "TOPIC#"
TOPIC_SORT_KEY = "TOPIC"

PENDING_TTL_SECONDS = 24 * 3600
"""A request not verified within a day is forgotten."""
TOMBSTONE_TTL_SECONDS = 2 * PENDING_TTL_SECONDS
"""State is kept at least this long, so a stale pending request can never outlive it."""


HASHED_TOPIC_PREFIX = "TOPICH#"
"""The partition key of a topic too long to be its own key (no literal key starts so)."""
TOPIC_KEY_MAX_LITERAL_BYTES = 1024
"""Topics up to this many UTF-8 bytes are readable in their key; longer ones are hashed."""


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def topic_key(topic: str) -> str:
    """``TOPIC#<topic>``, or ``TOPICH#<sha256>`` for a topic that would overflow the key."""
    if len(topic.encode("utf-8")) <= TOPIC_KEY_MAX_LITERAL_BYTES:
        return f"{TOPIC_PREFIX}{topic}"
    return f"{HASHED_TOPIC_PREFIX}{_sha256(topic)}"


def subscription_key(callback: str) -> str:
    """``SUB#<sha256 of the callback>``: bounded whatever the URL (the URL is an attribute)."""
    return f"{SUBSCRIPTION_PREFIX}{_sha256(callback)}"


def subscription_id(topic: str, callback: str) -> str:
    """A short, fixed-size name for a (topic, callback) pair: 128 bits of SHA-256."""
    return _sha256(f"{topic}\n{callback}")[:32]


def request_key(callback: str) -> str:
    """``REQ#<sha256 of the callback>``: one pending request per (topic, callback), the newest."""
    return f"{REQUEST_PREFIX}{_sha256(callback)}"


@dataclass(frozen=True)
class Subscription:
    """A verified subscription, as the dispatcher needs it (the secret is plaintext)."""

    topic: str
    callback: str
    format: Format
    secret: bytes | None
    lease_seconds: int
    expires_at: int
    """Epoch seconds after which the subscription receives nothing (TTL deletion is late)."""
    requested_at: int
    """Nanoseconds at which the hub received the request that created this state."""
    sort_key: str
    """The item's sort key, ``SUB#<sha256 of the callback>``: the cursor for paginated fan-out."""
    owner: str | None = None
    """The key id of the API key that created it (``sethub.credentials``); None: created without a key."""
    signing: Signing = "websub"
    events: frozenset[str] = frozenset()
    """Event types it receives (``sethub.webhooks.wanted``); empty: every event."""
    previous_secret: bytes | None = None
    """The secret it had before a re-subscription changed it; signs too until ``previous_secret_until``."""
    previous_secret_until: int = 0
    failing_since: int = 0
    """Epoch seconds of the first failed delivery since the last success; 0: not failing."""

    def secrets(self, now: float) -> list[bytes]:
        """The secrets that sign a delivery now: the current one, and the previous one in its overlap."""
        found = [self.secret] if self.secret else []
        if self.previous_secret and now < self.previous_secret_until:
            found.append(self.previous_secret)
        return found

    def is_active(self, now: float) -> bool:
        return is_live(self.expires_at, now)

    def __repr__(self) -> str:
        # Keeps the secret out of logs and tracebacks that print the object.
        secret = "<set>" if self.secret else None
        return (
            f"Subscription(topic={self.topic!r}, callback={self.callback!r}, format={self.format!r}, "
            f"secret={secret}, lease_seconds={self.lease_seconds}, expires_at={self.expires_at})"
        )


@dataclass(frozen=True)
class PendingRequest:
    """A subscribe/unsubscribe request waiting for its verification of intent.

    The secret stays KMS ciphertext: verification never needs it, and applying the
    request copies it as is into the subscription (same encryption context).
    """

    request_id: str
    mode: Mode
    topic: str
    callback: str
    format: Format
    secret_ciphertext: bytes | None
    lease_seconds: int
    requested_at: int
    requester: str | None = None
    """The key id that asked (None: no key, on a public hub): it must own the state it replaces."""
    owner: str | None = None
    """The owner the subscription will have once applied."""
    override: bool = False
    """An admin's request: it may replace state whoever owns it."""
    signing: Signing = "websub"
    events: frozenset[str] = frozenset()
    secret_fingerprint: str | None = None
    """SHA-256 of a Standard Webhooks secret: tells a new secret from a renewal (``sethub.store``)."""

    def __repr__(self) -> str:
        return (
            f"PendingRequest(request_id={self.request_id!r}, mode={self.mode!r}, topic={self.topic!r}, "
            f"callback={self.callback!r}, format={self.format!r}, lease_seconds={self.lease_seconds})"
        )


def is_live(expires_at: int, now: float) -> bool:
    """A subscription is live strictly before its expiry second."""
    return now < expires_at


OWNED_STATES: frozenset[State] = frozenset({"active", "disabled"})
"""States in which a subscription still belongs to its owner (DESIGN.md "Credentials")."""


def is_owned(state: str, expires_at: int, now: float) -> bool:
    """Does a (topic, callback) state still belong to the key that created it?

    Until it is deleted (unsubscribed, or removed after a ``410``) or its lease expires: a
    disabled subscription is still its owner's, so another key cannot re-claim it by
    re-subscribing (only its owner or an admin enables it again).
    """
    return state in OWNED_STATES and is_live(expires_at, now)


def expiry(lease_seconds: int, verified_at: float) -> int:
    """The lease runs from the moment intent was verified (W3C WebSub 5.3)."""
    return int(verified_at) + lease_seconds


def state_ttl(expires_at: int, now: float) -> int:
    """When DynamoDB may delete a subscription or tombstone item.

    Never before the pending requests that could still be verified have expired,
    otherwise a stale request would find no newer state to lose against.
    """
    return max(expires_at, int(now) + TOMBSTONE_TTL_SECONDS)


def supersedes(requested_at: int, current_requested_at: int | None) -> bool:
    """Newest request wins: a request replaces state only if it is strictly newer."""
    return current_requested_at is None or requested_at > current_requested_at


__all__ = [
    "HASHED_TOPIC_PREFIX",
    "OWNED_STATES",
    "PENDING_TTL_SECONDS",
    "TOMBSTONE_TTL_SECONDS",
    "Mode",
    "PendingRequest",
    "State",
    "Subscription",
    "expiry",
    "is_live",
    "is_owned",
    "request_key",
    "state_ttl",
    "subscription_key",
    "supersedes",
    "topic_key",
]
