"""Validation and normalisation of published events (``POST /events`` and WSO2 publishes).

A published event is a SET payload plus its topic. Validation collects every problem
of every event (a publisher fixes them all in one round trip) and normalises a valid
event into complete SET claims: ``iss``, ``jti`` and ``iat`` filled in when absent,
the optional RFC 8417 claims kept, anything else dropped.

Control characters are refused in the topic, the event type URIs and the string
claims (they end up in table keys, headers and logs). ``aud`` belongs to the hub: the
SETs it signs are bound to the event's topic (``sethub.sets.bind_audience``), so a
publisher's ``aud``, if given, must be that topic.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sethub import caep
from sethub.errors import BadRequestError, PayloadTooLargeError
from sethub.hygiene import has_control
from sethub.limits import MAX_JTI_CHARS, MAX_TOPIC_CHARS

MAX_EVENT_BYTES = 256 * 1024
MAX_REQUEST_BYTES = 1024 * 1024
MAX_EVENTS_PER_REQUEST = 100
MAX_TOPIC_LENGTH = MAX_TOPIC_CHARS
MAX_CLAIM_STRING_LENGTH = 2048
MAX_JTI_LENGTH = MAX_JTI_CHARS

# RFC 3986 absolute URI: a scheme, a colon, and something after it (no whitespace, no controls).
_ABSOLUTE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s\x00-\x1f\x7f-\x9f]+$")

# RFC 9493 subject identifier formats and their required string members.
_SUB_ID_MEMBERS: Mapping[str, tuple[str, ...]] = {
    "account": ("uri",),
    "email": ("email",),
    "iss_sub": ("iss", "sub"),
    "opaque": ("id",),
    "phone_number": ("phone_number",),
    "did": ("url",),
    "uri": ("uri",),
}
# SSF's "complex" format: members are themselves subject identifiers.
_COMPLEX_MEMBERS = ("user", "device", "session", "application", "tenant", "org_unit", "group")

# Claims a publisher may set; everything else in an event is not part of the SET.
_STRING_CLAIMS = ("iss", "jti", "txn", "rci")


NON_FINITE_REASON = "JSON numbers must be finite: NaN, Infinity and out-of-range numbers are not allowed"


class MalformedJsonError(BadRequestError):
    """The body is not JSON at all (as opposed to JSON that sethub refuses)."""


@dataclass(frozen=True)
class JsonDocument:
    """A decoded JSON body, and whether it held a number JSON does not allow."""

    value: Any
    non_finite: bool


def decode_json(raw: bytes | str) -> JsonDocument:
    """Decode ``raw`` as JSON, noting NaN, Infinity and numbers that overflow to infinity.

    Python's decoder accepts those constants, but RFC 8259 does not, and a SET carrying
    them cannot be re-encoded for a subscriber. Raises ``MalformedJsonError`` for a body
    that is not JSON and ``BadRequestError`` for one nested deeper than the decoder goes.
    """
    seen: list[str] = []

    def constant(name: str) -> None:
        seen.append(name)

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            seen.append(text)
        return value

    try:
        value = json.loads(raw, parse_constant=constant, parse_float=number)
    except RecursionError:
        raise BadRequestError("request body JSON is nested too deeply") from None
    except ValueError:
        raise MalformedJsonError("request body is not valid JSON") from None
    return JsonDocument(value=value, non_finite=bool(seen))


@dataclass(frozen=True)
class PublishedEvent:
    """A valid event: its topic and its complete SET claims."""

    topic: str
    claims: dict[str, Any]
    jti_given: bool
    """Whether the publisher chose the ``jti`` (only then is it an idempotency key)."""

    @property
    def jti(self) -> str:
        return str(self.claims["jti"])


def parse_request_body(body: bytes | str | None) -> list[Any]:
    """The raw events of a request body: one event, or ``{"events": [...]}``.

    Raises ``PayloadTooLargeError`` over 1 MiB and ``BadRequestError`` for a body that is
    not JSON (NaN and Infinity included), nested too deeply, not an object, empty, or
    has more than 100 events.
    """
    raw = body.encode() if isinstance(body, str) else (body or b"")
    if len(raw) > MAX_REQUEST_BYTES:
        raise PayloadTooLargeError(f"request body is over {MAX_REQUEST_BYTES} bytes")
    if not raw.strip():
        raise BadRequestError('request body is empty: send one event or {"events": [...]}')
    decoded = decode_json(raw)
    if decoded.non_finite:
        raise BadRequestError(NON_FINITE_REASON)
    document = decoded.value
    if not isinstance(document, dict):
        raise BadRequestError("request body must be a JSON object")
    events = document.get("events")
    # A single event has an "events" object (the SET claim); a batch has an "events" list.
    if isinstance(events, list):
        batch: list[Any] = events
    else:
        batch = [document]
    if not batch:
        raise BadRequestError("no events: the events list is empty")
    if len(batch) > MAX_EVENTS_PER_REQUEST:
        raise BadRequestError(f"too many events: at most {MAX_EVENTS_PER_REQUEST} per request")
    return batch


def event_problems(raw: Any) -> list[str]:
    """Every problem of one raw event, as one-line messages (empty when valid)."""
    if not isinstance(raw, dict):
        return ["an event must be a JSON object"]
    topic = raw.get("topic")
    problems = _topic_problems(topic)
    problems.extend(_events_problems(raw.get("events")))
    problems.extend(_string_claim_problems(raw))
    for name in ("iat", "toe"):
        if name in raw and not _is_int(raw[name], minimum=0):
            problems.append(f"{name} must be a non-negative integer")
    if "aud" in raw and not _is_audience(raw["aud"]):
        problems.append("aud must be a string or a list of strings")
    elif "aud" in raw and isinstance(topic, str) and raw["aud"] not in (topic, [topic]):
        # The hub binds every SET to its topic; another audience would let a recipient
        # replay it to that audience's subscribers.
        problems.append("aud is set by the hub to the event's topic: omit it or give the topic")
    if "sub_id" in raw:
        problems.extend(f"sub_id: {problem}" for problem in sub_id_problems(raw["sub_id"]))
    if not problems and len(json.dumps(raw, separators=(",", ":")).encode()) > MAX_EVENT_BYTES:
        problems.append(f"event is over {MAX_EVENT_BYTES} bytes")
    return problems


def _topic_problems(topic: Any) -> list[str]:
    if not isinstance(topic, str) or not topic.strip():
        return ["topic is required and must be a non-empty string"]
    if len(topic) > MAX_TOPIC_LENGTH:
        return [f"topic must be at most {MAX_TOPIC_LENGTH} characters"]
    if has_control(topic):
        return ["topic must not contain control characters"]
    return []


def _string_claim_problems(raw: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for name in _STRING_CLAIMS:
        if name in raw:
            value = raw[name]
            limit = MAX_JTI_LENGTH if name == "jti" else MAX_CLAIM_STRING_LENGTH
            if not isinstance(value, str) or not value:
                problems.append(f"{name} must be a non-empty string")
            elif len(value) > limit:
                problems.append(f"{name} must be at most {limit} characters")
            elif has_control(value):
                problems.append(f"{name} must not contain control characters")
    return problems


def sub_id_problems(value: Any, *, nested: bool = False) -> list[str]:
    """Problems of an RFC 9493 subject identifier (SSF's ``complex`` format included)."""
    if not isinstance(value, dict):
        return ["must be an object"]
    fmt = value.get("format")
    if not isinstance(fmt, str):
        return ["format is required"]
    if fmt in _SUB_ID_MEMBERS:
        return [
            f"{member} is required for format {fmt} and must be a non-empty string"
            for member in _SUB_ID_MEMBERS[fmt]
            if not isinstance(value.get(member), str) or not value.get(member)
        ]
    if fmt == "aliases" and not nested:
        return _aliases_problems(value.get("identifiers"))
    if fmt == "complex" and not nested:
        return _complex_problems(value)
    return [f"unknown format {fmt[:64]!r}"]


def _aliases_problems(identifiers: Any) -> list[str]:
    if not isinstance(identifiers, list) or not identifiers:
        return ["identifiers is required for format aliases and must be a non-empty list"]
    problems: list[str] = []
    for i, item in enumerate(identifiers):
        if isinstance(item, dict) and item.get("format") == "aliases":
            problems.append(f"identifiers[{i}]: aliases cannot be nested")
        else:
            problems.extend(f"identifiers[{i}]: {problem}" for problem in sub_id_problems(item, nested=True))
    return problems


def _complex_problems(value: dict[str, Any]) -> list[str]:
    members = [name for name in _COMPLEX_MEMBERS if name in value]
    if not members:
        return [f"format complex needs at least one of {', '.join(_COMPLEX_MEMBERS)}"]
    return [f"{name}: {problem}" for name in members for problem in sub_id_problems(value[name], nested=True)]


def normalise(raw: dict[str, Any], *, issuer: str, now: Callable[[], float]) -> PublishedEvent:
    """Complete SET claims for a valid raw event (call ``event_problems`` first)."""
    claims: dict[str, Any] = {
        "iss": raw.get("iss") or issuer,
        "jti": raw.get("jti") or str(uuid.uuid4()),
        "iat": raw["iat"] if "iat" in raw else int(now()),
        "events": raw["events"],
    }
    for name in ("aud", "sub_id", "txn", "toe", "rci"):
        if name in raw:
            claims[name] = raw[name]
    return PublishedEvent(topic=raw["topic"], claims=claims, jti_given="jti" in raw)


def validate(raws: list[Any], *, issuer: str, now: Callable[[], float]) -> list[PublishedEvent]:
    """Validate and normalise a request's events, all or nothing.

    Raises ``BadRequestError`` whose ``problems`` are ``[{"index": i, "problems": [...]}]``
    for each invalid event, or ``PayloadTooLargeError`` when an event is over 256 KiB.
    """
    invalid: list[dict[str, object]] = []
    too_large = False
    for index, raw in enumerate(raws):
        problems = event_problems(raw)
        if problems:
            too_large = too_large or any(problem.startswith("event is over") for problem in problems)
            invalid.append({"index": index, "problems": problems})
    if invalid:
        if too_large:
            raise PayloadTooLargeError(f"an event is over {MAX_EVENT_BYTES} bytes", problems=invalid)
        noun = "event is" if len(invalid) == 1 else "events are"
        raise BadRequestError(f"{len(invalid)} {noun} invalid; nothing was accepted", problems=invalid)
    return [normalise(raw, issuer=issuer, now=now) for raw in raws]


def _events_problems(events: Any) -> list[str]:
    if not isinstance(events, dict) or not events:
        return ["events is required and must be a non-empty object of event type URI to object"]
    problems: list[str] = []
    for key, value in events.items():
        shown = key[:128]
        if not _ABSOLUTE_URI.match(key):
            problems.append(f"events key {shown!r} is not an absolute URI")
        if not isinstance(value, dict):
            problems.append(f"events[{shown!r}] must be an object ({{}} for no payload)")
        else:
            problems.extend(caep.payload_problems(key, value))
    return problems


def _is_int(value: Any, *, minimum: int) -> bool:
    # bool is an int subclass in Python, but true/false is not a timestamp.
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_audience(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, list) and bool(value) and all(isinstance(item, str) for item in value)


__all__ = [
    "MAX_EVENTS_PER_REQUEST",
    "MAX_EVENT_BYTES",
    "MAX_JTI_LENGTH",
    "MAX_REQUEST_BYTES",
    "MAX_TOPIC_LENGTH",
    "NON_FINITE_REASON",
    "JsonDocument",
    "MalformedJsonError",
    "PublishedEvent",
    "decode_json",
    "event_problems",
    "normalise",
    "parse_request_body",
    "sub_id_problems",
    "validate",
]
