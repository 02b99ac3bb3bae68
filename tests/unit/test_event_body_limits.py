"""``POST /events`` bodies at their limits, and the reasons a publisher reads, word for word."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sethub.catalog import WSO2_EVENT_TYPES
from sethub.errors import BadRequestError, PayloadTooLargeError
from sethub.events import (
    MAX_CLAIM_STRING_LENGTH,
    MAX_EVENTS_PER_REQUEST,
    MAX_JTI_LENGTH,
    MAX_REQUEST_BYTES,
    MAX_TOPIC_LENGTH,
    MalformedJsonError,
    parse_request_body,
    validate,
)

LOGIN = WSO2_EVENT_TYPES["loginSuccess"]


def event(**fields: Any) -> dict[str, Any]:
    return {"topic": "acme.login", "events": {LOGIN: {}}, **fields}


def body_of(size: int, *, filler: str = " ") -> bytes:
    """One event, padded with ``filler`` inside a string claim to exactly ``size`` bytes."""
    bare = json.dumps(event(txn="")).encode()
    pad = (size - len(bare)) // len(filler.encode())
    return json.dumps(event(txn=filler * pad), ensure_ascii=False).encode()


def reason(body: bytes | str | None) -> str:
    with pytest.raises(BadRequestError) as refused:
        parse_request_body(body)
    return refused.value.reason


def problems(raw: Any) -> list[str]:
    with pytest.raises(BadRequestError) as refused:
        validate([raw], issuer="i", now=lambda: 0.0)
    found: list[str] = refused.value.problems[0]["problems"]  # type: ignore[assignment]
    return found


def test_a_body_of_exactly_one_mib_is_taken_and_one_byte_more_is_413() -> None:
    exact = body_of(MAX_REQUEST_BYTES)
    assert len(exact) == MAX_REQUEST_BYTES
    assert len(parse_request_body(exact)) == 1
    with pytest.raises(PayloadTooLargeError) as refused:
        parse_request_body(exact + b" ")
    assert refused.value.reason == f"request body is over {MAX_REQUEST_BYTES} bytes"


def test_the_limit_counts_bytes_not_characters() -> None:
    # Three bytes per character: far fewer characters than the limit, more bytes.
    text = body_of(MAX_REQUEST_BYTES + 3, filler="€").decode()
    assert len(text) < MAX_REQUEST_BYTES
    with pytest.raises(PayloadTooLargeError):
        parse_request_body(text)


def test_a_hundred_events_are_taken_and_a_hundred_and_one_are_not() -> None:
    assert len(parse_request_body(json.dumps({"events": [event()] * MAX_EVENTS_PER_REQUEST}))) == 100
    assert reason(json.dumps({"events": [event()] * 101})) == "too many events: at most 100 per request"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (None, 'request body is empty: send one event or {"events": [...]}'),
        (b" \n", 'request body is empty: send one event or {"events": [...]}'),
        (b"[1]", "request body must be a JSON object"),
        (b'{"events": []}', "no events: the events list is empty"),
        (b"[" * 100_000, "request body JSON is nested too deeply"),
    ],
)
def test_a_refused_body_says_why(body: bytes | None, expected: str) -> None:
    assert reason(body) == expected


def test_a_body_that_is_not_json_is_its_own_error() -> None:
    with pytest.raises(MalformedJsonError) as refused:
        parse_request_body(b"{")
    assert refused.value.reason == "request body is not valid JSON"


def test_timestamps_may_be_zero_but_not_negative() -> None:
    (published,) = validate([event(iat=0, toe=0)], issuer="i", now=lambda: 5.0)
    assert (published.claims["iat"], published.claims["toe"]) == (0, 0)
    assert problems(event(iat=-1)) == ["iat must be a non-negative integer"]


def test_an_empty_audience_list_is_refused() -> None:
    assert problems(event(aud=[])) == ["aud must be a string or a list of strings"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (5, ["an event must be a JSON object"]),
        (event(sub_id=5), ["sub_id: must be an object"]),
        (event(sub_id={"email": "ada@example.com"}), ["sub_id: format is required"]),
        (
            event(sub_id={"format": "email", "email": ""}),
            ["sub_id: email is required for format email and must be a non-empty string"],
        ),
        (event(sub_id={"format": "telepathy"}), ["sub_id: unknown format 'telepathy'"]),
        (event(sub_id={"format": "t" * 100}), [f"sub_id: unknown format {'t' * 64!r}"]),
    ],
)
def test_an_invalid_event_says_why(raw: Any, expected: list[str]) -> None:
    assert problems(raw) == expected


def test_claims_may_be_as_long_as_their_limit_and_not_a_character_longer() -> None:
    at_limit = event(
        topic="t" * MAX_TOPIC_LENGTH, jti="j" * MAX_JTI_LENGTH, txn="x" * MAX_CLAIM_STRING_LENGTH
    )
    (published,) = validate([at_limit], issuer="i", now=lambda: 0.0)
    assert published.jti == "j" * MAX_JTI_LENGTH

    assert problems(event(jti="j" * (MAX_JTI_LENGTH + 1))) == ["jti must be at most 256 characters"]
    assert problems(event(txn="x" * (MAX_CLAIM_STRING_LENGTH + 1))) == ["txn must be at most 2048 characters"]
    assert problems(event(topic="t" * (MAX_TOPIC_LENGTH + 1))) == ["topic must be at most 2048 characters"]


def test_an_event_without_events_or_topic_says_what_is_missing() -> None:
    missing_events = ["events is required and must be a non-empty object of event type URI to object"]
    assert problems({"topic": "t", "events": {}}) == missing_events
    assert problems({"topic": "t", "events": [LOGIN]}) == missing_events
    assert problems({"events": {LOGIN: {}}}) == ["topic is required and must be a non-empty string"]


def test_a_long_event_type_is_shown_cut_to_128_characters() -> None:
    key = "x" * 200
    assert problems({"topic": "t", "events": {key: {}}}) == [
        f"events key {key[:128]!r} is not an absolute URI"
    ]
