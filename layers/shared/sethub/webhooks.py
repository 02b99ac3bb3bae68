"""What webhook users expect of a subscription (issue 14): Standard Webhooks signing and
event-type filters.

Standard Webhooks (https://www.standardwebhooks.com): a subscription made with
``signing=standard-webhooks`` has a ``whsec_`` secret (base64 of 24 to 64 random bytes)
and every delivery carries

    webhook-id         the event's jti: the same on every retry (receivers deduplicate on it)
    webhook-timestamp  Unix seconds of this attempt
    webhook-signature  v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>

After a re-subscription with a new secret the previous one signs too, for
``ROTATION_OVERLAP_SECONDS``: the header then holds both signatures, space-separated, so
a receiver can switch secrets without losing a delivery.

Event-type filters (``events``): only events with at least one of the listed types are
delivered. The filter is an attribute of the subscription item that the dispatcher
already reads, so it costs no AWS call; it is applied before anything is signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from sethub.errors import BadRequestError

Signing = Literal["websub", "standard-webhooks"]
SIGNINGS: tuple[Signing, ...] = ("websub", "standard-webhooks")

SECRET_PREFIX = "whsec_"  # noqa: S105 - the scheme's prefix, not a secret
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
ROTATION_OVERLAP_SECONDS = 24 * 3600
"""How long the previous secret keeps signing after a re-subscription with a new one."""

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"

MAX_EVENT_TYPES = 50
"""Types one subscription may list: a filter is a handful of URIs, not a catalogue."""
MAX_EVENT_TYPE_CHARS = 512
_SEPARATORS = re.compile(r"[\s,]+")


def parse_signing(params: Mapping[str, str]) -> Signing:
    value = params.get("signing", "").strip().lower() or "websub"
    if value == "websub":
        return "websub"
    if value == "standard-webhooks":
        return "standard-webhooks"
    raise BadRequestError("signing must be websub or standard-webhooks")


def parse_events(params: Mapping[str, str]) -> frozenset[str]:
    """The ``events`` filter: event type URIs, space- or comma-separated; empty = every event."""
    types = frozenset(part for part in _SEPARATORS.split(params.get("events", "")) if part)
    if len(types) > MAX_EVENT_TYPES:
        raise BadRequestError(f"events lists too many types (at most {MAX_EVENT_TYPES})")
    for event_type in types:
        if len(event_type) > MAX_EVENT_TYPE_CHARS:
            raise BadRequestError(f"an event type in events is over {MAX_EVENT_TYPE_CHARS} characters")
        if not event_type.isprintable():
            raise BadRequestError("events must not contain control characters")
    return types


def signing_key(secret: bytes) -> bytes:
    """The HMAC key of a ``whsec_`` secret; ``ValueError`` unless it is 24 to 64 bytes of base64."""
    try:
        text = secret.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("not a whsec_ secret") from None
    if not text.startswith(SECRET_PREFIX):
        raise ValueError("not a whsec_ secret")
    try:
        encoded = text[len(SECRET_PREFIX) :]
        # Padding may be left off (the reference libraries accept both).
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not a whsec_ secret") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError("not a whsec_ secret")
    return key


def check_subscription(signing: Signing, secret: bytes | None) -> None:
    """Refuse, at subscribe, a Standard Webhooks subscription without a proper ``whsec_`` secret."""
    if signing != "standard-webhooks":
        return
    if secret is None:
        raise BadRequestError("signing=standard-webhooks needs a hub.secret (whsec_...)")
    try:
        signing_key(secret)
    except ValueError:
        # The secret itself is never echoed.
        raise BadRequestError(
            f"hub.secret must be {SECRET_PREFIX} followed by the base64 of "
            f"{MIN_KEY_BYTES} to {MAX_KEY_BYTES} random bytes for signing=standard-webhooks"
        ) from None


def signature(key: bytes, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``."""
    signed = b"%s.%d.%s" % (msg_id.encode("utf-8"), timestamp, body)
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")


def headers(*, msg_id: str, timestamp: int, body: bytes, secrets: Sequence[bytes]) -> dict[str, str]:
    """The three Standard Webhooks headers, one signature per distinct secret (newest first)."""
    seen: list[bytes] = []
    for secret in secrets:
        key = signing_key(secret)
        if key not in seen:
            seen.append(key)
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(
            signature(key, msg_id=msg_id, timestamp=timestamp, body=body) for key in seen
        ),
    }


def wanted(event_filter: frozenset[str], event_types: Iterable[str] | None) -> bool:
    """Whether a subscription with ``event_filter`` receives an event of ``event_types``.

    No filter: everything. A filter and content that is not a SET (no types): nothing,
    since the subscriber asked for typed events only.
    """
    if not event_filter:
        return True
    return event_types is not None and not event_filter.isdisjoint(event_types)


__all__ = [
    "ID_HEADER",
    "ROTATION_OVERLAP_SECONDS",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "SIGNINGS",
    "TIMESTAMP_HEADER",
    "Signing",
    "check_subscription",
    "headers",
    "parse_events",
    "parse_signing",
    "signature",
    "signing_key",
    "wanted",
]
