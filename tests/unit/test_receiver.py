"""sethub.receiver: what a subscriber trying sethub out sees for good and bad deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json

import jwt
import pytest

from sethub.receiver import DeliveryRejectedError, Receiver, SetVerifier, check_signature

LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"
CLAIMS = {"iss": "https://hub.example", "iat": 1764190000, "jti": "j-1", "events": {LOGIN: {}}}


def _signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_a_matching_signature_passes_and_a_wrong_one_is_refused():
    body = b'{"a": 1}'
    check_signature(b"s", body, _signature(b"s", body))

    with pytest.raises(DeliveryRejectedError) as refused:
        check_signature(b"s", body, _signature(b"other", body))
    assert refused.value.code == "authentication_failed"
    with pytest.raises(DeliveryRejectedError):
        check_signature(b"s", body, "")


def test_json_delivery_with_a_valid_signature_is_verified():
    body = json.dumps(CLAIMS).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature": _signature(b"s", body),
        "Link": '<http://127.0.0.1:3000/hub>; rel="hub", <acme.login>; rel="self"',
    }

    event = SetVerifier(None, b"s").verify(headers, body)

    assert (event.jti, event.topic, event.event_types, event.verified) == (
        "j-1",
        "acme.login",
        (LOGIN,),
        True,
    )


def test_a_token_without_the_set_type_is_refused():
    token = jwt.encode(CLAIMS, "k" * 32, algorithm="HS256", headers={"typ": "JWT"})

    with pytest.raises(DeliveryRejectedError) as refused:
        SetVerifier(None, None).verify({"Content-Type": "application/secevent+jwt"}, token.encode())

    assert refused.value.code == "invalid_request"


def test_a_refused_delivery_gets_an_rfc8935_error_body_and_no_secret():
    receiver = Receiver(secret=b"the-secret")
    try:
        status, body = receiver.on_delivery(
            {"Content-Type": "application/json", "X-Hub-Signature": "sha256=00"}, b"{}"
        )
    finally:
        receiver.stop()

    assert status == 400
    assert json.loads(body)["err"] == "authentication_failed"
    assert b"the-secret" not in body
    assert receiver.events == []


def test_verification_of_an_intent_it_started_echoes_the_challenge_once():
    receiver = Receiver()
    receiver.expect("subscribe", "t")
    challenge = {"hub.mode": "subscribe", "hub.topic": "t", "hub.challenge": "c-9"}
    try:
        first = receiver.on_verification(challenge)
        again = receiver.on_verification({**challenge, "hub.challenge": "c-10"})
    finally:
        receiver.stop()

    assert (first, again) == ((200, b"c-9"), (404, b""))


@pytest.mark.parametrize(
    ("started", "query"),
    [
        ([], {"hub.mode": "subscribe", "hub.topic": "t", "hub.challenge": "c"}),
        ([], {"hub.mode": "unsubscribe", "hub.topic": "t", "hub.challenge": "c"}),
        # A request for another topic, or in the other mode, is not the one it started.
        ([("subscribe", "t")], {"hub.mode": "subscribe", "hub.topic": "other", "hub.challenge": "c"}),
        ([("subscribe", "t")], {"hub.mode": "unsubscribe", "hub.topic": "t", "hub.challenge": "c"}),
    ],
)
def test_a_challenge_it_did_not_ask_for_gets_404(started, query):
    receiver = Receiver()
    for mode, topic in started:
        receiver.expect(mode, topic)
    try:
        status, body = receiver.on_verification(query)
    finally:
        receiver.stop()

    assert (status, body) == (404, b"")
    assert receiver.topics == set()


def test_a_denial_is_acknowledged_without_an_intent():
    receiver = Receiver()
    try:
        status, _ = receiver.on_verification({"hub.mode": "denied", "hub.topic": "t", "hub.reason": "r"})
    finally:
        receiver.stop()

    assert status == 200
