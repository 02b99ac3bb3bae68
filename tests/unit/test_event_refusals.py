"""What a publisher reads when ``POST /events`` refuses: the reason and every problem, word for word."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sethub.catalog import CAEP_EVENT_TYPES, WSO2_EVENT_TYPES
from sethub.errors import BadRequestError, PayloadTooLargeError
from sethub.events import MAX_EVENT_BYTES, validate

LOGIN = WSO2_EVENT_TYPES["loginSuccess"]
EMAIL = {"format": "email", "email": "ada@example.com"}


def event(**fields: Any) -> dict[str, Any]:
    return {"topic": "acme.login", "events": {LOGIN: {}}, **fields}


def refusal(raws: list[Any]) -> BadRequestError:
    with pytest.raises(BadRequestError) as refused:
        validate(raws, issuer="https://hub.example", now=lambda: 0.0)
    return refused.value


def sub_id_problems(sub_id: dict[str, Any]) -> list[str]:
    (item,) = refusal([event(sub_id=sub_id)]).problems
    problems: list[str] = item["problems"]  # type: ignore[assignment]
    return problems


def test_the_reason_counts_the_invalid_events() -> None:
    assert refusal([event(), {"topic": "t"}]).reason == "1 event is invalid; nothing was accepted"
    assert refusal([{"topic": "t"}, "nope"]).reason == "2 events are invalid; nothing was accepted"


def test_an_event_over_the_limit_is_413_and_still_lists_the_problems() -> None:
    big = event()
    big["events"][LOGIN] = {"blob": "y" * MAX_EVENT_BYTES}
    with pytest.raises(PayloadTooLargeError) as refused:
        validate([event(), big], issuer="i", now=lambda: 0.0)
    assert refused.value.reason == f"an event is over {MAX_EVENT_BYTES} bytes"
    assert [item["index"] for item in refused.value.problems] == [1]


def test_aliases_need_a_non_empty_list() -> None:
    expected = ["sub_id: identifiers is required for format aliases and must be a non-empty list"]
    assert sub_id_problems({"format": "aliases", "identifiers": []}) == expected
    assert sub_id_problems({"format": "aliases", "identifiers": "ada"}) == expected


def test_aliases_cannot_hold_aliases_nor_complex_subjects() -> None:
    nested_aliases = {"format": "aliases", "identifiers": [EMAIL]}
    nested_complex = {"format": "complex", "user": EMAIL}
    problems = sub_id_problems({"format": "aliases", "identifiers": [EMAIL, nested_aliases, nested_complex]})
    assert problems == [
        "sub_id: identifiers[1]: aliases cannot be nested",
        "sub_id: identifiers[2]: unknown format 'complex'",
    ]


def test_a_complex_subject_names_its_members_and_cannot_nest() -> None:
    assert sub_id_problems({"format": "complex"}) == [
        "sub_id: format complex needs at least one of user, device, session, application, tenant, "
        "org_unit, group"
    ]
    nested = {"format": "complex", "user": {"format": "aliases", "identifiers": [EMAIL]}}
    assert sub_id_problems(nested) == ["sub_id: user: unknown format 'aliases'"]


def test_an_audience_equal_to_the_topic_is_kept() -> None:
    (published,) = validate([event(aud="acme.login")], issuer="i", now=lambda: 0.0)
    assert published.claims["aud"] == "acme.login"


def test_a_caep_event_is_refused_with_what_its_payload_lacks() -> None:
    credential_change = CAEP_EVENT_TYPES["credential-change"]
    (item,) = refusal([event(events={credential_change: {"credential_type": "password"}})]).problems

    assert item["problems"] == ["credential-change: change_type is required"]


def _event_of(size: int) -> dict[str, Any]:
    """An event whose JSON, as the hub measures it (no spaces), is ``size`` bytes."""
    padded = event(events={LOGIN: {"blob": ""}})
    padded["events"][LOGIN]["blob"] = "y" * (size - len(json.dumps(padded, separators=(",", ":"))))
    return padded


def test_an_event_of_exactly_the_limit_is_accepted_and_one_byte_more_is_not() -> None:
    (accepted,) = validate([_event_of(MAX_EVENT_BYTES)], issuer="https://hub.example", now=lambda: 0.0)
    assert accepted.topic == "acme.login"

    with pytest.raises(PayloadTooLargeError):
        validate([_event_of(MAX_EVENT_BYTES + 1)], issuer="https://hub.example", now=lambda: 0.0)


@pytest.mark.parametrize("name", ["iss", "jti", "txn", "rci"])
@pytest.mark.parametrize("value", ["", 7, None, ["a"]])
def test_a_string_claim_must_be_a_non_empty_string(name: str, value: Any) -> None:
    (item,) = refusal([event(**{name: value})]).problems
    assert item["problems"] == [f"{name} must be a non-empty string"]
