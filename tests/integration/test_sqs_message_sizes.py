"""Queue messages at the documented limits fit SQS's 1 MiB, and moto's SQS (with the
template's ``MaximumMessageSize``) takes them: the largest event, its signed retry and
its fan-out shard, and the largest published content."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import pytest

from sethub import events, sets
from sethub.keyring import signer_for
from sethub.limits import MAX_CALLBACK_CHARS, MAX_CONTENT_BYTES, MAX_JTI_CHARS, MAX_TOPIC_CHARS
from sethub.messages import ContentEvent, DeliveryRetry, FanoutShard, PreparedPayload, SetEvent, parse_message
from sethub.queues import SQS_MAX_MESSAGE_BYTES, Outgoing, QueueSender
from sethub.websub import Hub, parse_hub_request

HUB_URL = "http://127.0.0.1:3000/hub"
EVENT_TYPE = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"


def largest_event() -> dict[str, Any]:
    """A valid event of exactly ``MAX_EVENT_BYTES``, every string claim at its limit."""
    raw: dict[str, Any] = {
        "topic": "t" * MAX_TOPIC_CHARS,
        "events": {EVENT_TYPE: {"blob": ""}},
        "jti": "j" * MAX_JTI_CHARS,
        "iss": "https://idp.example/" + "i" * 2000,
        "txn": "x" * 2048,
        "rci": "r" * 2048,
        "iat": 1764190000,
        "toe": 1764190000,
    }
    size = len(json.dumps(raw, separators=(",", ":")).encode())
    raw["events"][EVENT_TYPE]["blob"] = "b" * (events.MAX_EVENT_BYTES - size)
    return raw


def take_all(hub: Any, queue_url: str) -> list[str]:
    bodies: list[str] = []
    sqs = hub.clients.sqs
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            bodies.append(message["Body"])
    return bodies


def test_the_largest_event_its_retry_and_its_shard_fit_one_sqs_message(hub: Any) -> None:
    raw = largest_event()
    assert len(json.dumps(raw, separators=(",", ":")).encode()) == events.MAX_EVENT_BYTES
    [event] = events.validate([raw], issuer="https://hub.example", now=lambda: 0.0)
    jws = signer_for(hub.clients, hub.settings).sign(event.claims)
    callback = "https://subscriber.example/" + "c" * (MAX_CALLBACK_CHARS - 27)
    set_event = SetEvent(topic=event.topic, claims=event.claims, hub_url=HUB_URL)
    retry = DeliveryRetry(
        topic=event.topic,
        callback=callback,
        jti=event.jti,
        hub_url=HUB_URL,
        content_type=sets.SET_CONTENT_TYPE,
        body_b64=base64.b64encode(jws.encode()).decode(),
        attempts=12,
        not_before=1764190000.0,
        last_error="e" * 512,
    )
    shard = FanoutShard(
        topic=event.topic,
        hub_url=HUB_URL,
        payload=PreparedPayload(
            jti=event.jti, jwt=jws, json_b64=base64.b64encode(sets.claims_json(event.claims)).decode()
        ),
        start_after="SUB#" + "f" * 64,
        limit=200,
    )
    messages = [set_event.to_json(), retry.to_json(), shard.to_json()]
    assert len(messages[1].encode()) > 256 * 1024  # the old limit could not carry a retry of it
    assert all(len(body.encode()) <= SQS_MAX_MESSAGE_BYTES for body in messages)

    QueueSender(hub.clients.sqs).send(hub.settings.events_queue_url, [Outgoing(body) for body in messages])

    received = take_all(hub, hub.settings.events_queue_url)
    assert sorted(received) == sorted(messages)
    assert parse_message(received[received.index(messages[1])]) == retry


def test_sqs_takes_a_message_of_exactly_one_mebibyte(hub: Any) -> None:
    body = "m" * SQS_MAX_MESSAGE_BYTES

    assert QueueSender(hub.clients.sqs).send_all(hub.settings.retry_queue_url, [Outgoing(body)]) == []

    assert take_all(hub, hub.settings.retry_queue_url) == [body]


@pytest.mark.parametrize(("size", "status"), [(MAX_CONTENT_BYTES, 202), (MAX_CONTENT_BYTES + 1, 413)])
def test_published_content_is_taken_up_to_256_kib(hub: Any, size: int, status: int) -> None:
    settings = dataclasses.replace(hub.settings, open_topics=True)
    body = b"\xff" * size  # bytes that grow most in base64 and are no JSON
    topic = "t" * MAX_TOPIC_CHARS
    request = parse_hub_request(
        query={"hub.mode": "publish", "hub.topic": topic}, body=body, content_type="application/octet-stream"
    )

    reply = Hub(hub.clients, settings).handle(
        request, headers={"x-api-key": hub.api_key}, base_url="http://127.0.0.1:3000"
    )

    assert reply.status == status
    queued = [parse_message(message) for message in take_all(hub, settings.events_queue_url)]
    if status == 202:
        [content] = queued
        assert isinstance(content, ContentEvent)
        assert content.body == body
    else:
        assert reply.body == f"published content is over {MAX_CONTENT_BYTES} bytes"
        assert queued == []
