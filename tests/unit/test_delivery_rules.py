"""SET encoding, delivery headers and outcome classification: no network."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field

import pytest

from sethub import sets
from sethub.delivery import DeliveryRequest, Outcome, body_for, classify, headers_for, send
from sethub.errors import BlockedAddressError, OutboundError, OutboundTimeoutError
from sethub.messages import PreparedPayload
from sethub.queues import Outgoing, QueueSender
from sethub.signing import thumbprint


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def outcome(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Outcome:
    return classify(Answer(status, body, headers or {}), duration_ms=1, now=0)


def test_outcomes():
    assert outcome(202).status == "ok"
    assert outcome(410).status == "gone"
    assert outcome(400, b'{"err":"invalid_request","description":"bad"}').status == "rejected"
    assert outcome(400, b"<html>").status == "failed"
    assert outcome(500).status == "failed"
    throttled = outcome(429, headers={"Retry-After": "30"})
    assert (throttled.status, throttled.throttled, throttled.retry_after) == ("failed", True, 30)
    assert outcome(302).status == "failed"


def test_headers_carry_link_message_id_and_a_signature_only_with_a_secret():
    body = b'{"a":1}'
    signed = headers_for(
        topic="t", hub_url="https://hub/hub", jti="j", content_type="application/json", body=body, secret=b"k"
    )
    assert signed["Link"] == '<https://hub/hub>; rel="hub", <t>; rel="self"'
    assert signed["x-hub-messageId"] == "j"
    assert signed["X-Hub-Signature"] == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert "Accept" not in signed
    bare = headers_for(
        topic="t", hub_url="h", jti="j", content_type=sets.SET_CONTENT_TYPE, body=body, secret=None
    )
    assert "X-Hub-Signature" not in bare
    assert bare["Accept"] == "application/json"


def test_each_format_gets_its_body():
    payload = PreparedPayload(jti="j", jwt="a.b.c", json_b64=base64.b64encode(b"{}").decode())
    assert body_for(payload, "jwt") == (b"a.b.c", "application/secevent+jwt")
    assert body_for(payload, "json") == (b"{}", "application/json")
    content = PreparedPayload(
        jti="j", content_type="text/plain", content_b64=base64.b64encode(b"hi").decode()
    )
    assert body_for(content, "jwt") == (b"hi", "text/plain")


def test_raw_content_published_without_a_type_goes_out_as_octet_stream():
    # WebSub content publishing: the hub passes the bytes on and must not guess their type.
    content = PreparedPayload(jti="j", content_b64=base64.b64encode(b"\x00\x01").decode())
    assert body_for(content, "jwt") == (b"\x00\x01", "application/octet-stream")
    assert body_for(content, "json") == (b"\x00\x01", "application/octet-stream")


def test_a_jwt_subscriber_of_an_event_without_a_jws_is_an_error_that_says_so():
    # The dispatcher logs this one line when an event was prepared without its signed form.
    unsigned = PreparedPayload(jti="j", json_b64=base64.b64encode(b"{}").decode())
    with pytest.raises(ValueError, match=r"^prepared payload has no JWS for a jwt subscription$"):
        body_for(unsigned, "jwt")


def test_signing_input_has_the_set_header():
    signing_input = sets.signing_input({"jti": "j"}, alg="ES256", kid="k1")
    header_b64, _payload = signing_input.split(b".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + b"=" * (-len(header_b64) % 4)))
    assert header == {"alg": "ES256", "typ": "secevent+jwt", "kid": "k1"}
    assert sets.compact(signing_input, b"\x01").count(".") == 2


def test_rfc7638_thumbprint_example():
    # RFC 7638 section 3.1.
    key = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
            "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
            "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
            "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
            "Cur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


class FlakySqs:
    """Refuses each entry the first time it is sent."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.delivered: list[str] = []
        self.calls = 0

    def send_message_batch(self, QueueUrl, Entries):
        self.calls += 1
        ok, failed = [], []
        for entry in Entries:
            if entry["MessageBody"] in self.seen:
                self.delivered.append(entry["MessageBody"])
                ok.append({"Id": entry["Id"]})
            else:
                self.seen.add(entry["MessageBody"])
                failed.append({"Id": entry["Id"], "SenderFault": False, "Code": "InternalError"})
        return {"Successful": ok, "Failed": failed}


def test_partial_batch_failures_are_sent_again_in_batches_of_ten():
    sqs = FlakySqs()
    messages = [Outgoing(f"m{i}") for i in range(25)]
    QueueSender(sqs).send("q", messages)  # type: ignore[arg-type]
    assert sorted(sqs.delivered) == sorted(m.body for m in messages)
    assert sqs.calls == 6


def test_entries_that_never_go_are_reported():
    class Refusing(FlakySqs):
        def send_message_batch(self, QueueUrl, Entries):
            self.calls += 1
            return {"Successful": [], "Failed": [{"Id": e["Id"], "SenderFault": False} for e in Entries]}

    sqs = Refusing()
    assert QueueSender(sqs, rounds=2).send_all("q", [Outgoing("a"), Outgoing("b")]) == [0, 1]  # type: ignore[arg-type]
    assert sqs.calls == 2


class _Raising:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def request(self, method, url, *, headers=None, body=None):
        raise self.error


def _request() -> DeliveryRequest:
    return DeliveryRequest(
        topic="t",
        callback="https://x.example/cb",
        jti="j",
        hub_url="https://hub/hub",
        content_type="application/json",
        body=b"{}",
        headers={},
        attempt=1,
        subscribed_at=0,
    )


def test_a_timeout_is_a_throttled_failure_and_a_refusal_is_not():
    timed_out = send(_Raising(OutboundTimeoutError("read timed out after 10 s")), _request())
    refused = send(_Raising(OutboundError("connection failed: connection refused")), _request())

    assert (timed_out.status, timed_out.throttled) == ("failed", True)
    assert (refused.status, refused.throttled) == ("failed", False)


def test_a_callback_the_guard_refuses_at_connect_time_is_final():
    outcome = send(_Raising(BlockedAddressError("address 10.0.0.1 is private")), _request())

    assert outcome.status == "rejected"
