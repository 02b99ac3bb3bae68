"""SSF 1.0 streams: the configuration object, its validation, subjects and the metadata.

Pure: no AWS, no HTTP. ``service`` turns requests into these calls; ``store`` keeps them.
Field rules (SSF 1.0 section 8.1.1): the receiver supplies ``events_requested``,
``delivery`` and ``description``; the transmitter supplies ``stream_id``, ``iss``,
``aud``, ``events_supported``, ``events_delivered`` and ``min_verification_interval``.
A transmitter-supplied field in an update must equal its current value; in a create it
is refused (the receiver cannot choose it).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from sethub.catalog import CAEP_EVENT_TYPES, RISC_EVENT_TYPES, SSF_EVENT_TYPES
from sethub.errors import BadRequestError
from sethub.events import sub_id_problems

PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
DELIVERY_METHODS = (PUSH, POLL)
VERIFICATION = SSF_EVENT_TYPES["verification"]
STREAM_UPDATED = SSF_EVENT_TYPES["stream-updated"]

# Events an SSF stream can get: CAEP and RISC from publishers, SSF's own from sethub.
EVENTS_SUPPORTED: tuple[str, ...] = (
    *CAEP_EVENT_TYPES.values(),
    *RISC_EVENT_TYPES.values(),
    *SSF_EVENT_TYPES.values(),
)
ROUTED_EVENTS = frozenset((*CAEP_EVENT_TYPES.values(), *RISC_EVENT_TYPES.values()))
"""Types that reach streams from ``POST /events``; SSF's own are sent by sethub only."""

Status = Literal["enabled", "paused", "disabled"]
STATUSES: tuple[Status, ...] = ("enabled", "paused", "disabled")

MIN_VERIFICATION_INTERVAL = 5
"""Seconds between receiver-requested verifications of one stream (429 when sooner)."""
MAX_EVENTS_REQUESTED = 100
MAX_URI_CHARS = 2048
MAX_AUTHORIZATION_CHARS = 4096
MAX_DESCRIPTION_CHARS = 500
MAX_REASON_CHARS = 500
MAX_STATE_CHARS = 500
MAX_REMOVED_SUBJECTS = 100
"""Subjects a stream may exclude: they travel with every index item of the stream."""

RECEIVER_FIELDS = ("events_requested", "delivery", "description")
TRANSMITTER_FIELDS = (
    "stream_id",
    "iss",
    "aud",
    "events_supported",
    "events_delivered",
    "min_verification_interval",
)


@dataclass(frozen=True)
class Stream:
    """One receiver's stream, as stored."""

    stream_id: str
    client_id: str
    iss: str
    method: str
    endpoint_url: str
    """The receiver's URL (push) or the transmitter's poll URL (poll)."""
    events_requested: tuple[str, ...] = ()
    authorization_header: str | None = None
    description: str | None = None
    status: Status = "enabled"
    reason: str | None = None
    removed_subjects: tuple[str, ...] = ()
    """Canonical JSON of each removed subject (default subjects: all)."""
    created_at: int = 0
    updated_at: int = 0
    verified_at: int = 0
    """When the receiver last asked for a verification (``min_verification_interval``)."""
    failing_since: int = 0
    """When pushes to the stream started failing (0: the last one succeeded)."""

    @property
    def aud(self) -> str:
        """SETs of the stream are for its receiver: the client id (SSF 8.1.1: transmitter-supplied)."""
        return self.client_id

    @property
    def events_delivered(self) -> tuple[str, ...]:
        supported = set(EVENTS_SUPPORTED)
        return tuple(event for event in self.events_requested if event in supported)

    @property
    def routed_events(self) -> tuple[str, ...]:
        """The index entries the stream needs: delivered types that publishers send."""
        return tuple(event for event in self.events_delivered if event in ROUTED_EVENTS)

    def configuration(self) -> dict[str, Any]:
        """The stream configuration object a receiver reads (no ``authorization_header``: a secret)."""
        delivery: dict[str, Any] = {"method": self.method, "endpoint_url": self.endpoint_url}
        config: dict[str, Any] = {
            "stream_id": self.stream_id,
            "iss": self.iss,
            "aud": self.aud,
            "events_supported": list(EVENTS_SUPPORTED),
            "delivery": delivery,
            "min_verification_interval": MIN_VERIFICATION_INTERVAL,
        }
        # SSF 7.2.3 spirit, and the conformance suite: empty arrays are omitted.
        if self.events_requested:
            config["events_requested"] = list(self.events_requested)
        config["events_delivered"] = list(self.events_delivered)
        if self.description is not None:
            config["description"] = self.description
        return config

    def status_object(self) -> dict[str, Any]:
        body: dict[str, Any] = {"stream_id": self.stream_id, "status": self.status}
        if self.reason:
            body["reason"] = self.reason
        return body


def new_stream_id() -> str:
    """Unguessable and made of RFC 3986 unreserved characters (SSF 8.1.1)."""
    return secrets.token_urlsafe(18)


def poll_url(base_url: str, stream_id: str) -> str:
    return f"{base_url}/ssf/poll?stream_id={stream_id}"


# ---------------------------------------------------------------------------- requests


def json_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or 400."""
    try:
        document = json.loads(body or b"null")
    except ValueError:
        raise BadRequestError("the body is not valid JSON") from None
    if not isinstance(document, dict):
        raise BadRequestError("the body must be a JSON object")
    return document


def _control_free(value: str) -> bool:
    return not any(ord(char) < 0x20 or ord(char) == 0x7F for char in value)


def _events_requested(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadRequestError("events_requested must be an array of event type URIs")
    if len(value) > MAX_EVENTS_REQUESTED:
        raise BadRequestError(f"events_requested may list at most {MAX_EVENTS_REQUESTED} event types")
    if any(len(item) > MAX_URI_CHARS or not _control_free(item) for item in value):
        raise BadRequestError("events_requested has an event type that is too long or has control characters")
    # Unknown types are kept as requested and never delivered (SSF 8.1.1: ignored).
    return tuple(dict.fromkeys(value))


def _description(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequestError("description must be a string")
    return value[:MAX_DESCRIPTION_CHARS]  # SSF 8.1.1: the transmitter may truncate it


@dataclass(frozen=True)
class Delivery:
    method: str
    endpoint_url: str = ""
    authorization_header: str | None = None


def _delivery(value: Any, *, allow_http: bool) -> Delivery:
    if value is None:
        return Delivery(POLL)  # SSF 8.1.1.1: no delivery means poll
    if not isinstance(value, dict):
        raise BadRequestError("delivery must be an object")
    method = value.get("method", POLL)
    if method not in DELIVERY_METHODS:
        raise BadRequestError(f"delivery.method must be {PUSH} (push) or {POLL} (poll)")
    if method == POLL:
        # The transmitter assigns a poll stream's endpoint_url: whatever was sent is replaced.
        return Delivery(POLL)
    url = value.get("endpoint_url")
    if not isinstance(url, str) or not url:
        raise BadRequestError("delivery.endpoint_url is required for push delivery")
    if len(url) > MAX_URI_CHARS or not _control_free(url):
        raise BadRequestError("delivery.endpoint_url is too long or has control characters")
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        raise BadRequestError(f"delivery.endpoint_url must be an absolute {' or '.join(schemes)} URL")
    header = value.get("authorization_header")
    if header is not None:
        if not isinstance(header, str) or not header:
            raise BadRequestError("delivery.authorization_header must be a non-empty string")
        if len(header) > MAX_AUTHORIZATION_CHARS or not _control_free(header):
            raise BadRequestError("delivery.authorization_header is too long or has control characters")
    return Delivery(PUSH, url, header)


def create(
    body: Mapping[str, Any],
    *,
    client_id: str,
    iss: str,
    base_url: str,
    now: int,
    allow_http: bool,
) -> Stream:
    """A new stream from a create request (SSF 8.1.1.1)."""
    chosen = [name for name in TRANSMITTER_FIELDS if name in body]
    if chosen:
        raise BadRequestError(f"{chosen[0]} is set by the transmitter, not in a create request")
    stream_id = new_stream_id()
    return _with_receiver_fields(
        Stream(
            stream_id=stream_id,
            client_id=client_id,
            iss=iss,
            method=POLL,
            endpoint_url="",
            created_at=now,
            updated_at=now,
        ),
        body,
        base_url=base_url,
        allow_http=allow_http,
        replace_all=True,
    )


def _with_receiver_fields(
    stream: Stream, body: Mapping[str, Any], *, base_url: str, allow_http: bool, replace_all: bool
) -> Stream:
    """``stream`` with the receiver-supplied fields of ``body``; absent ones are cleared when
    ``replace_all`` (create, PUT) and kept otherwise (PATCH)."""
    changes: dict[str, Any] = {}
    if "events_requested" in body or replace_all:
        value = body.get("events_requested")
        changes["events_requested"] = () if value is None else _events_requested(value)
    if "description" in body or replace_all:
        changes["description"] = _description(body.get("description"))
    if "delivery" in body or replace_all:
        delivery = _delivery(body.get("delivery"), allow_http=allow_http)
        changes["method"] = delivery.method
        changes["endpoint_url"] = (
            poll_url(base_url, stream.stream_id) if delivery.method == POLL else delivery.endpoint_url
        )
        changes["authorization_header"] = delivery.authorization_header
    return replace(stream, **changes)


def update(
    stream: Stream, body: Mapping[str, Any], *, base_url: str, now: int, allow_http: bool, replace_all: bool
) -> Stream:
    """``stream`` after a PATCH (``replace_all=False``) or a PUT (SSF 8.1.1.3, 8.1.1.4)."""
    current = stream.configuration()
    for name in TRANSMITTER_FIELDS:
        if name == "stream_id" or name not in body:
            continue
        expected = current.get(name)
        if body[name] != expected:
            raise BadRequestError(f"{name} is set by the transmitter and cannot be changed")
    updated = _with_receiver_fields(
        stream, body, base_url=base_url, allow_http=allow_http, replace_all=replace_all
    )
    if updated.method == POLL and stream.method == POLL:
        updated = replace(updated, endpoint_url=stream.endpoint_url)
    return replace(updated, updated_at=now)


def stream_id_of(body: Mapping[str, Any]) -> str:
    value = body.get("stream_id")
    if not isinstance(value, str) or not value:
        raise BadRequestError("stream_id is required")
    return value


def status_change(body: Mapping[str, Any]) -> tuple[Status, str | None]:
    status = body.get("status")
    if status not in STATUSES:
        raise BadRequestError("status must be enabled, paused or disabled")
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or not _control_free(reason)):
        raise BadRequestError("reason must be a string without control characters")
    return cast("Status", status), (reason[:MAX_REASON_CHARS] if reason else None)


def verification_state(body: Mapping[str, Any]) -> str | None:
    state = body.get("state")
    if state is None:
        return None
    if not isinstance(state, str) or len(state) > MAX_STATE_CHARS or not _control_free(state):
        raise BadRequestError(f"state must be a string of at most {MAX_STATE_CHARS} characters")
    return state


# ---------------------------------------------------------------------------- subjects


def subject_of(body: Mapping[str, Any]) -> dict[str, Any]:
    subject = body.get("subject")
    if not isinstance(subject, dict):
        raise BadRequestError("subject must be a subject identifier object (RFC 9493)")
    problems = sub_id_problems(subject)
    if problems:
        raise BadRequestError(f"subject: {problems[0]}")
    verified = body.get("verified", True)
    if not isinstance(verified, bool):
        raise BadRequestError("verified must be true or false")
    return subject


def canonical(subject: Mapping[str, Any]) -> str:
    return json.dumps(subject, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def subject_matches(pattern: Any, subject: Any) -> bool:
    """SSF 8.1.3.1: simple subjects match when identical; complex ones when every member
    defined on both sides matches."""
    if not isinstance(pattern, dict) or not isinstance(subject, dict):
        return bool(pattern == subject)
    if pattern.get("format") == "complex" and subject.get("format") == "complex":
        members = (set(pattern) & set(subject)) - {"format"}
        return all(subject_matches(pattern[name], subject[name]) for name in members)
    return pattern == subject


def removed(stream: Stream, sub_id: Any) -> bool:
    """Whether events about ``sub_id`` are excluded from ``stream`` (default subjects: all)."""
    return any(subject_matches(json.loads(entry), sub_id) for entry in stream.removed_subjects)


def with_subject(stream: Stream, subject: Mapping[str, Any], *, add: bool) -> Stream:
    key = canonical(subject)
    kept = tuple(entry for entry in stream.removed_subjects if entry != key)
    if add:
        return replace(stream, removed_subjects=kept)
    if len(kept) >= MAX_REMOVED_SUBJECTS:
        raise BadRequestError(f"a stream may exclude at most {MAX_REMOVED_SUBJECTS} subjects")
    return replace(stream, removed_subjects=(*kept, key))


# ---------------------------------------------------------------------------- metadata


def metadata(issuer: str, base_url: str) -> dict[str, Any]:
    """``/.well-known/ssf-configuration`` (SSF 7.1; CAEP interoperability profile 2.3)."""
    return {
        "spec_version": "1_0",
        "issuer": issuer,
        # The hub's one JWKS (DESIGN.md): every key that signs or signed a SET, SSF's included.
        "jwks_uri": f"{base_url}/.well-known/jwks.json",
        "delivery_methods_supported": list(DELIVERY_METHODS),
        "configuration_endpoint": f"{base_url}/ssf/stream",
        "status_endpoint": f"{base_url}/ssf/status",
        "add_subject_endpoint": f"{base_url}/ssf/subjects/add",
        "remove_subject_endpoint": f"{base_url}/ssf/subjects/remove",
        "verification_endpoint": f"{base_url}/ssf/verify",
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
        "default_subjects": "ALL",
    }


def scopes_of(value: str | Sequence[str]) -> frozenset[str]:
    parts = value.split() if isinstance(value, str) else value
    return frozenset(part for part in parts if part)


__all__ = [
    "DELIVERY_METHODS",
    "EVENTS_SUPPORTED",
    "POLL",
    "PUSH",
    "STATUSES",
    "STREAM_UPDATED",
    "VERIFICATION",
    "Status",
    "Stream",
    "canonical",
    "create",
    "json_object",
    "metadata",
    "removed",
    "status_change",
    "stream_id_of",
    "subject_matches",
    "subject_of",
    "update",
    "verification_state",
    "with_subject",
]
