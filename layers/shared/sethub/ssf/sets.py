"""SSF SETs (SSF 1.0 sections 3 and 4; CAEP interoperability profile 2.8).

One event per SET: an accepted event with several event types becomes one SET per type
a stream receives. ``iss`` is the stream's (the metadata issuer), ``aud`` the stream's
receiver, ``jti`` a new one per (event, stream, type) that every retry keeps (the signed
bytes are what is retried), ``txn`` the publisher's or else the event's ``jti``, and the
event's ``sub_id`` at the top level; never ``sub`` or ``exp``.

``jti``s are time-ordered (milliseconds, then randomness): a stream's queue read in key
order is oldest first.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from sethub.ssf.model import STREAM_UPDATED, VERIFICATION, Stream


def new_jti(now: float) -> str:
    return f"{int(now * 1000):013d}-{secrets.token_hex(8)}"


def subject_of_event(claims: Mapping[str, Any], payload: Any) -> Any:
    """The SET's top-level ``sub_id``: the event's, or a legacy in-event ``subject`` (SSF 3.1.1)."""
    if isinstance(claims.get("sub_id"), dict):
        return claims["sub_id"]
    if isinstance(payload, dict) and isinstance(payload.get("subject"), dict):
        return payload["subject"]
    return None


def event_set(
    stream: Stream, claims: Mapping[str, Any], event_type: str, payload: Any, *, now: float
) -> dict[str, Any]:
    """The claims of ``stream``'s SET for one event type of an accepted event."""
    result: dict[str, Any] = {
        "iss": stream.iss,
        "aud": stream.aud,
        "jti": new_jti(now),
        "iat": int(now),
        "txn": str(claims.get("txn") or claims.get("jti")),
        "sub_id": subject_of_event(claims, payload),
        "events": {event_type: payload},
    }
    if "toe" in claims:
        result["toe"] = claims["toe"]
    return result


def stream_event_set(
    stream: Stream, event_type: str, payload: Mapping[str, Any], *, now: float
) -> dict[str, Any]:
    """A verification or stream-updated SET: about the stream itself (SSF 8.1.4.1, 8.1.5)."""
    jti = new_jti(now)
    return {
        "iss": stream.iss,
        "aud": stream.aud,
        "jti": jti,
        "iat": int(now),
        "txn": jti,
        "sub_id": {"format": "opaque", "id": stream.stream_id},
        "events": {event_type: dict(payload)},
    }


def verification_payload(state: str | None) -> dict[str, Any]:
    # SSF 8.1.4.2: a transmitter-initiated verification carries no state.
    return {} if state is None else {"state": state}


def stream_updated_payload(stream: Stream) -> dict[str, Any]:
    payload: dict[str, Any] = {"status": stream.status}
    if stream.reason:
        payload["reason"] = stream.reason
    return payload


__all__ = [
    "STREAM_UPDATED",
    "VERIFICATION",
    "event_set",
    "new_jti",
    "stream_event_set",
    "stream_updated_payload",
    "subject_of_event",
    "verification_payload",
]
