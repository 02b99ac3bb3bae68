"""Validation and normalisation of published events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sethub.catalog import CAEP_EVENT_TYPES, KNOWN_EVENT_TYPES, WSO2_EVENT_TYPES, profile_of
from sethub.errors import BadRequestError, PayloadTooLargeError
from sethub.events import MAX_EVENT_BYTES, parse_request_body, validate

LOGIN = WSO2_EVENT_TYPES["loginSuccess"]


def event(**fields: Any) -> dict[str, Any]:
    return {"topic": "acme.login", "events": {LOGIN: {"user": {"id": "42"}}}, **fields}


def problems_of(raws: list[Any]) -> BadRequestError:
    with pytest.raises(BadRequestError) as refused:
        validate(raws, issuer="https://hub.example", now=lambda: 1000.0)
    return refused.value


def test_a_minimal_event_gets_iss_jti_and_iat():
    (published,) = validate([event()], issuer="https://hub.example", now=lambda: 1764190000.5)
    assert published.claims["iss"] == "https://hub.example"
    assert published.claims["iat"] == 1764190000
    assert len(published.claims["jti"]) == 36
    assert not published.jti_given
    assert "exp" not in published.claims


def test_publisher_claims_pass_through_and_unknown_fields_are_dropped():
    raw = event(
        iss="https://idp.example",
        jti="j-1",
        iat=1751705149662,
        rci="r",
        txn="t",
        toe=5,
        sub_id={"format": "iss_sub", "iss": "https://idp.example", "sub": "42"},
        color="blue",
    )
    (published,) = validate([raw], issuer="https://hub.example", now=lambda: 0.0)
    assert published.jti_given
    assert published.claims == {key: value for key, value in raw.items() if key not in ("topic", "color")}


def test_every_problem_of_every_event_is_listed_by_index():
    refusal = problems_of(
        [
            event(),
            {"topic": "", "events": {"not a uri": []}},
            event(toe="yesterday", sub_id={"format": "email"}),
            "nope",
        ]
    )
    by_index: dict[Any, list[str]] = {item["index"]: item["problems"] for item in refusal.problems}  # type: ignore[misc]
    assert set(by_index) == {1, 2, 3}
    assert any("topic" in p for p in by_index[1])
    assert any("not an absolute URI" in p for p in by_index[1])
    assert any("must be an object" in p for p in by_index[1])
    assert any("toe" in p for p in by_index[2])
    assert any(p.startswith("sub_id: email is required") for p in by_index[2])
    assert refusal.status == 400


@pytest.mark.parametrize(
    "sub_id",
    [
        {"format": "opaque", "id": "x"},
        {"format": "account", "uri": "acct:ada@example.com"},
        {
            "format": "aliases",
            "identifiers": [{"format": "email", "email": "a@b"}, {"format": "opaque", "id": "1"}],
        },
        {
            "format": "complex",
            "user": {"format": "email", "email": "a@b"},
            "device": {"format": "opaque", "id": "d"},
        },
    ],
)
def test_rfc9493_subject_formats_are_accepted(sub_id):
    (published,) = validate([event(sub_id=sub_id)], issuer="i", now=lambda: 0.0)
    assert published.claims["sub_id"] == sub_id


@pytest.mark.parametrize(
    "sub_id",
    [
        {"format": "aliases", "identifiers": [{"format": "aliases", "identifiers": []}]},
        {"format": "complex"},
        {"format": "telepathy"},
        {"email": "a@b"},
    ],
)
def test_malformed_subjects_are_refused(sub_id):
    assert problems_of([event(sub_id=sub_id)]).problems


def test_iat_true_is_not_a_timestamp():
    assert problems_of([event(iat=True)]).problems


def test_an_event_over_256_kib_is_413():
    big = event(rci="x" * 10)
    big["events"][LOGIN] = {"blob": "y" * MAX_EVENT_BYTES}
    with pytest.raises(PayloadTooLargeError):
        validate([big], issuer="i", now=lambda: 0.0)


def test_request_body_shapes_and_limits():
    assert parse_request_body(json.dumps(event())) == [event()]
    assert parse_request_body(json.dumps({"events": [event(), event()]})) == [event(), event()]
    with pytest.raises(PayloadTooLargeError):
        parse_request_body(b" " * (1024 * 1024 + 1))
    for bad in (b"", b"{", b"[]", json.dumps({"events": []}).encode()):
        with pytest.raises(BadRequestError):
            parse_request_body(bad)
    with pytest.raises(BadRequestError, match="at most 100"):
        parse_request_body(json.dumps({"events": [event()] * 101}))


def test_catalog_knows_each_profile():
    assert profile_of(LOGIN) == "wso2"
    assert profile_of(CAEP_EVENT_TYPES["session-revoked"]) == "caep"
    assert profile_of("https://example.com/custom") is None
    assert len(WSO2_EVENT_TYPES) == 24
    assert all(uri.startswith("https://schemas.") for uri in KNOWN_EVENT_TYPES)


@pytest.mark.parametrize(
    "body",
    [
        b'{"topic": "t", "events": {"https://e.example/x": {"score": NaN}}}',
        b'{"topic": "t", "events": {"https://e.example/x": {"score": Infinity}}}',
        b'{"events": [{"topic": "t", "events": {"https://e.example/x": {"n": [1, -Infinity]}}}]}',
        b'{"topic": "t", "events": {"https://e.example/x": {"n": 1e999}}, "extra": 0}',
    ],
)
def test_nan_and_infinity_anywhere_are_refused_with_a_reason(body: bytes):
    with pytest.raises(BadRequestError, match="must be finite") as refused:
        parse_request_body(body)
    assert refused.value.status == 400


def test_json_nested_deeper_than_the_decoder_goes_is_a_400():
    with pytest.raises(BadRequestError, match="nested too deeply") as refused:
        parse_request_body(b'{"events": ' * 5000)
    assert refused.value.status == 400


def test_large_finite_numbers_are_still_accepted():
    [raw] = parse_request_body(b'{"topic": "t", "events": {"https://e.example/x": {"n": 1.5e300, "i": 10}}}')
    assert raw["events"]["https://e.example/x"] == {"n": 1.5e300, "i": 10}
