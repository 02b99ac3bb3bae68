"""sethub.ssf.sets: the claims of the SETs a stream's receiver gets (SSF 1.0 sections 3, 4 and 8;
CAEP interoperability profile 2.8)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from sethub.ssf.model import STREAM_UPDATED, VERIFICATION, Stream
from sethub.ssf.sets import (
    event_set,
    new_jti,
    stream_event_set,
    stream_updated_payload,
    subject_of_event,
    verification_payload,
)

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
SUBJECT = {"format": "email", "email": "ann@example.com"}
STREAM = Stream(
    stream_id="st-1",
    client_id="rx",
    iss="https://hub.example/ssf",
    method="urn:ietf:rfc:8935",
    endpoint_url="https://rx.example/events",
)
JTI = re.compile(r"\A\d{13}-[0-9a-f]{16}\Z")


def test_a_jti_is_the_milliseconds_then_64_random_bits_so_that_key_order_is_time_order():
    earlier, later = new_jti(1_700_000_000.1234), new_jti(1_700_000_000.125)

    assert JTI.match(earlier)
    assert JTI.match(later)
    assert earlier.startswith("1700000000123-")
    assert later.startswith("1700000000125-")
    assert new_jti(1.5).startswith("0000000001500-")
    assert earlier < later
    assert len({new_jti(5.0) for _ in range(3)}) == 3


def test_an_event_set_is_the_streams_with_the_events_subject_and_one_event_type():
    payload = {"initiating_entity": "policy", "event_timestamp": 1_700_000_000}
    claims = {"jti": "evt-1", "txn": "txn-9", "sub_id": SUBJECT, "toe": 1_699_999_990, "sub": "x", "exp": 1}

    result = event_set(STREAM, claims, SESSION_REVOKED, payload, now=1_700_000_001.75)

    assert JTI.match(result.pop("jti"))
    assert result == {
        "iss": "https://hub.example/ssf",
        "aud": "rx",
        "iat": 1_700_000_001,
        "txn": "txn-9",
        "sub_id": SUBJECT,
        "events": {SESSION_REVOKED: payload},
        "toe": 1_699_999_990,
    }


def test_without_a_txn_the_events_jti_is_the_txn_and_without_toe_there_is_none():
    result = event_set(STREAM, {"jti": "evt-1", "sub_id": SUBJECT}, SESSION_REVOKED, {}, now=10.0)

    assert result["txn"] == "evt-1"
    assert "toe" not in result
    assert "sub" not in result
    assert "exp" not in result


def test_each_set_of_one_event_gets_its_own_jti():
    claims = {"jti": "evt-1", "sub_id": SUBJECT}

    first = event_set(STREAM, claims, SESSION_REVOKED, {}, now=10.0)
    second = event_set(STREAM, claims, SESSION_REVOKED, {}, now=10.0)

    assert first["jti"] != second["jti"]
    assert first["jti"] != "evt-1"


@pytest.mark.parametrize(
    ("claims", "payload", "subject"),
    [
        ({"sub_id": SUBJECT}, {"subject": {"format": "opaque", "id": "legacy"}}, SUBJECT),
        ({}, {"subject": SUBJECT}, SUBJECT),
        ({"sub_id": "not-an-object"}, {"subject": SUBJECT}, SUBJECT),
        ({}, {"subject": "not-an-object"}, None),
        ({}, ["not", "an", "object"], None),
        ({}, {}, None),
    ],
)
def test_the_sets_subject_is_the_events_sub_id_or_else_a_legacy_in_event_subject(claims, payload, subject):
    assert subject_of_event(claims, payload) == subject
    assert event_set(STREAM, {"jti": "e", **claims}, SESSION_REVOKED, payload, now=1.0)["sub_id"] == subject


def test_a_verification_set_is_about_the_stream_and_is_its_own_transaction():
    payload = {"state": "abc"}

    result = stream_event_set(STREAM, VERIFICATION, payload, now=1_700_000_002.9)

    jti = result.pop("jti")
    assert JTI.match(jti)
    assert jti.startswith("1700000002900-")
    assert result == {
        "iss": "https://hub.example/ssf",
        "aud": "rx",
        "iat": 1_700_000_002,
        "txn": jti,
        "sub_id": {"format": "opaque", "id": "st-1"},
        "events": {VERIFICATION: {"state": "abc"}},
    }
    # A copy: the signed claims do not change with the caller's dict.
    payload["state"] = "changed"
    assert result["events"][VERIFICATION] == {"state": "abc"}


def test_a_verification_carries_the_receivers_state_and_a_transmitters_none():
    assert verification_payload("st4te") == {"state": "st4te"}
    assert verification_payload("") == {"state": ""}
    assert verification_payload(None) == {}


def test_a_stream_updated_event_says_the_status_and_the_reason_when_there_is_one():
    paused = dataclasses.replace(STREAM, status="paused", reason="receiver asked")

    assert stream_updated_payload(paused) == {"status": "paused", "reason": "receiver asked"}
    assert stream_updated_payload(STREAM) == {"status": "enabled"}
    assert stream_event_set(STREAM, STREAM_UPDATED, stream_updated_payload(paused), now=1.0)["events"] == {
        STREAM_UPDATED: {"status": "paused", "reason": "receiver asked"}
    }
