"""SETs are bound to their topic: ``aud`` names it, publishers cannot set another, and
``python -m sethub.receiver`` refuses a SET recorded for a topic it did not subscribe to
(a recipient replaying another topic's SET). Control characters in published claims
are refused before anything is accepted, and a delivery request prints no callback path
or query. No network."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest

from sethub import delivery, events, sets
from sethub.errors import BadRequestError
from sethub.receiver import Receiver
from sethub.subscriptions import Subscription

LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"
SET_HEADERS = {"Content-Type": "application/secevent+jwt"}


def token(**claims: object) -> bytes:
    base = {"iss": "https://hub.example", "iat": 1764190000, "jti": "j-1", "events": {LOGIN: {}}}
    encoded = jwt.encode({**base, **claims}, "k" * 32, algorithm="HS256", headers={"typ": "secevent+jwt"})
    return encoded.encode()


@pytest.fixture
def receiver() -> Receiver:
    # No hub: signatures are not checked, so the audience check is all that is exercised.
    return Receiver(topics=["acme.login"])


def test_binding_names_the_topic_as_the_audience() -> None:
    claims = {"iss": "i", "jti": "j", "iat": 1, "events": {LOGIN: {}}}

    assert sets.bind_audience(claims, "acme.login") == {**claims, "aud": "acme.login"}
    assert "aud" not in claims


def test_a_set_for_a_subscribed_topic_is_accepted(receiver: Receiver) -> None:
    status, _ = receiver.on_delivery(SET_HEADERS, token(aud="acme.login"))

    assert status == 202
    assert [event.jti for event in receiver.events] == ["j-1"]


@pytest.mark.parametrize("aud", ["acme.logout", ["acme.logout", "other"], None])
def test_a_set_recorded_for_another_topic_is_refused_as_invalid_audience(
    receiver: Receiver, aud: object
) -> None:
    body = token(aud=aud) if aud is not None else token()

    status, reply = receiver.on_delivery(SET_HEADERS, body)

    assert status == 400
    assert json.loads(reply)["err"] == "invalid_audience"
    assert receiver.events == []


def test_a_topic_the_receiver_confirmed_becomes_an_accepted_audience() -> None:
    receiver = Receiver()
    refused, _ = receiver.on_delivery(SET_HEADERS, token(aud="fresh.topic"))

    receiver.expect("subscribe", "fresh.topic")  # it confirms only intents it started
    receiver.on_verification({"hub.mode": "subscribe", "hub.topic": "fresh.topic", "hub.challenge": "c"})
    accepted, _ = receiver.on_delivery(SET_HEADERS, token(aud="fresh.topic"))

    assert (refused, accepted) == (400, 202)


def _problems(raw: Any) -> list[str]:
    with pytest.raises(BadRequestError) as refused:
        events.validate([raw], issuer="https://hub.example", now=lambda: 0.0)
    [entry] = refused.value.problems
    return entry["problems"]  # type: ignore[return-value]


def test_a_publisher_cannot_name_another_audience() -> None:
    raw = {"topic": "acme.login", "events": {LOGIN: {}}, "aud": "acme.admin"}

    assert _problems(raw) == ["aud is set by the hub to the event's topic: omit it or give the topic"]


@pytest.mark.parametrize("aud", ["acme.login", ["acme.login"]])
def test_a_publisher_may_name_its_own_topic_as_the_audience(aud: object) -> None:
    raw = {"topic": "acme.login", "events": {LOGIN: {}}, "aud": aud}

    [event] = events.validate([raw], issuer="https://hub.example", now=lambda: 0.0)

    assert event.topic == "acme.login"


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("topic", "acme\nlogin"),
        ("jti", "j-1\r\nX-Injected: 1"),
        ("jti", "j\x00"),
        ("iss", "https://idp.example/\x1b[31m"),
        ("txn", "t\u2028x"),
    ],
)
def test_control_characters_in_published_claims_are_refused(claim: str, value: str) -> None:
    raw = {"topic": "acme.login", "events": {LOGIN: {}}, claim: value}

    assert _problems(raw) == [f"{claim} must not contain control characters"]


def test_an_event_type_with_a_control_character_is_refused() -> None:
    raw = {"topic": "acme.login", "events": {"urn:x\x00": {}}}

    assert _problems(raw) == ["events key 'urn:x\\x00' is not an absolute URI"]


def test_a_delivery_request_prints_no_callback_path_or_query() -> None:
    subscription = Subscription(
        topic="acme.login",
        callback="https://crm.example:8443/hooks/path-t0ken?token=query-t0ken",
        format="jwt",
        secret=b"hunter2",
        lease_seconds=3600,
        expires_at=2_000_000_000,
        requested_at=1,
        sort_key="SUB#x",
    )
    request = delivery.request_for(
        subscription,
        jti="j-1",
        hub_url="https://hub/hub",
        body=b"{}",
        content_type="application/json",
        attempt=1,
    )

    shown = repr(request)

    assert "t0ken" not in shown
    assert "hunter2" not in shown
    assert "crm.example:8443" in shown
