"""Table keys stay within DynamoDB's key sizes at every documented limit, and a verification
that finishes after its topic was deregistered writes nothing (moto, callbacks on 127.0.0.1).

DynamoDB refuses a partition key over 2,048 bytes and a sort key over 1,024 bytes; moto
enforces both, so a key built from a raw 2,048-character URL fails here as it would on AWS.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import pytest
from websub_peer import CallbackServer, websub_peer

from sethub.credentials.dynamodb import PARTITION as CREDENTIALS_PARTITION
from sethub.events import event_problems
from sethub.keyring import RING_PARTITION
from sethub.limits import MAX_CALLBACK_CHARS, MAX_JTI_CHARS, MAX_TOPIC_CHARS
from sethub.messages import VerifyIntent, parse_message
from sethub.outbound import GuardedHttp, OutboundResponse
from sethub.records import Attempt, DeliveryRecords, EventMarkers
from sethub.settings import Settings
from sethub.store import SubscriptionStore
from sethub.verification import MAX_RESPONSE_BYTES, Verifier
from sethub.websub import Hub, HubReply, parse_hub_request

BASE_URL = "http://127.0.0.1:3000"
FORM = "application/x-www-form-urlencoded"
LONG_TOPIC = "é" * MAX_TOPIC_CHARS  # 4,096 bytes of UTF-8: twice a partition key
EVENT_TYPE = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"


@pytest.fixture
def callbacks() -> Iterator[CallbackServer]:
    with websub_peer() as server:
        yield server


def long_callback(callbacks: CallbackServer, length: int = MAX_CALLBACK_CHARS) -> str:
    base = callbacks.url("/")
    return base + "c" * (length - len(base))


class HubUnderTest:
    def __init__(self, fixture: Any, **changes: Any) -> None:
        self.fixture = fixture
        self.settings: Settings = dataclasses.replace(fixture.settings, **changes)
        self.store = SubscriptionStore(fixture.clients, self.settings)
        self.hub = Hub(fixture.clients, self.settings, store=self.store)

    def post(self, params: Mapping[str, str], *, body: bytes | None = None) -> HubReply:
        if body is None:
            request = parse_hub_request(query=None, body=urlencode(params).encode(), content_type=FORM)
        else:
            request = parse_hub_request(query=params, body=body, content_type="application/json")
        return self.hub.handle(request, headers={"x-api-key": self.fixture.api_key}, base_url=BASE_URL)

    def verify_all(self, http: Any = None) -> list[str]:
        verifier = Verifier(
            self.store,
            http or GuardedHttp.from_settings(self.settings, max_response_bytes=MAX_RESPONSE_BYTES),
        )
        sqs = self.fixture.clients.sqs
        outcomes: list[str] = []
        while messages := sqs.receive_message(
            QueueUrl=self.settings.verify_queue_url, MaxNumberOfMessages=10
        ).get("Messages", []):
            for message in messages:
                sqs.delete_message(
                    QueueUrl=self.settings.verify_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
                parsed = parse_message(message["Body"])
                assert isinstance(parsed, VerifyIntent)
                outcomes.append(verifier.process(parsed).kind)
        return outcomes

    def table_items(self) -> list[dict[str, Any]]:
        """The topics' items: everything but the API keys' and signing keys' records (their own
        partitions)."""
        items = self.fixture.clients.dynamodb.scan(TableName=self.settings.table_name)["Items"]
        return [item for item in items if item["pk"]["S"] not in (CREDENTIALS_PARTITION, RING_PARTITION)]


# Subscriptions at the length limits


def test_a_subscription_with_the_longest_callback_and_topic_works_end_to_end(
    hub: Any, callbacks: CallbackServer
) -> None:
    driver = HubUnderTest(hub)
    callback = long_callback(callbacks)
    assert len(callback) == MAX_CALLBACK_CHARS

    assert driver.post({"hub.mode": "register", "hub.topic": LONG_TOPIC}).status == 200
    reply = driver.post({"hub.mode": "subscribe", "hub.topic": LONG_TOPIC, "hub.callback": callback})
    assert reply.status == 202
    assert driver.verify_all() == ["verified"]

    [subscription] = driver.store.list_active(LONG_TOPIC, now=time.time())[0]
    assert (subscription.topic, subscription.callback) == (LONG_TOPIC, callback)
    assert driver.store.get_active(LONG_TOPIC, callback, now=time.time()) == subscription
    driver.store.remove(LONG_TOPIC, callback)
    assert driver.store.get_active(LONG_TOPIC, callback, now=time.time()) is None


def test_keys_fit_dynamodb_and_the_values_are_kept_whole(hub: Any, callbacks: CallbackServer) -> None:
    driver = HubUnderTest(hub)
    callback = long_callback(callbacks)
    driver.post({"hub.mode": "register", "hub.topic": LONG_TOPIC})
    driver.post({"hub.mode": "subscribe", "hub.topic": LONG_TOPIC, "hub.callback": callback})
    driver.verify_all()

    items = driver.table_items()
    assert all(
        len(item["pk"]["S"].encode()) <= 2048 and len(item["sk"]["S"].encode()) <= 1024 for item in items
    )
    [subscription] = [item for item in items if item["sk"]["S"].startswith("SUB#")]
    assert (subscription["topic"]["S"], subscription["callback"]["S"]) == (LONG_TOPIC, callback)


def test_a_short_topic_stays_readable_in_its_key(hub: Any) -> None:
    driver = HubUnderTest(hub)
    driver.post({"hub.mode": "register", "hub.topic": "acme.login"})

    assert {item["pk"]["S"] for item in driver.table_items()} == {"TOPIC#acme.login"}


def test_a_long_topic_is_deregistered_with_its_subscriptions(hub: Any, callbacks: CallbackServer) -> None:
    driver = HubUnderTest(hub)
    driver.post({"hub.mode": "register", "hub.topic": LONG_TOPIC})
    driver.post({"hub.mode": "subscribe", "hub.topic": LONG_TOPIC, "hub.callback": callbacks.url()})
    driver.verify_all()

    assert driver.post({"hub.mode": "deregister", "hub.topic": LONG_TOPIC}).status == 200

    assert driver.table_items() == []


def test_topics_that_share_a_long_prefix_stay_apart(hub: Any, callbacks: CallbackServer) -> None:
    driver = HubUnderTest(hub)
    first, second = LONG_TOPIC[:-1] + "a", LONG_TOPIC[:-1] + "b"
    driver.post({"hub.mode": "register", "hub.topic": first})
    driver.post({"hub.mode": "subscribe", "hub.topic": first, "hub.callback": callbacks.url()})
    driver.verify_all()

    assert not driver.store.topic_exists(second)
    assert driver.store.list_active(second, now=time.time())[0] == []


@pytest.mark.parametrize(
    ("param", "value"),
    [("hub.callback", "callback"), ("hub.topic", "t" * (MAX_TOPIC_CHARS + 1))],
)
def test_one_character_over_the_limit_is_refused_with_a_reason(
    hub: Any, callbacks: CallbackServer, param: str, value: str
) -> None:
    driver = HubUnderTest(hub)
    params = {"hub.mode": "subscribe", "hub.topic": "acme.login", "hub.callback": callbacks.url()}
    params[param] = long_callback(callbacks, MAX_CALLBACK_CHARS + 1) if value == "callback" else value

    reply = driver.post(params)

    assert reply.status == 400
    assert "2048 characters" in reply.body


def test_hub_and_events_agree_on_the_topic_limit(hub: Any) -> None:
    driver = HubUnderTest(hub, open_topics=True)
    at_limit, over = "t" * MAX_TOPIC_CHARS, "t" * (MAX_TOPIC_CHARS + 1)
    set_payload = b'{"events": {"' + EVENT_TYPE.encode() + b'": {}}}'

    # A SET payload published to /hub goes through the /events validation as well.
    assert driver.post({"hub.mode": "publish", "hub.topic": at_limit}, body=set_payload).status == 202
    assert driver.post({"hub.mode": "publish", "hub.topic": over}, body=set_payload).status == 400
    assert not event_problems({"topic": at_limit, "events": {EVENT_TYPE: {}}})
    assert event_problems({"topic": over, "events": {EVENT_TYPE: {}}}) == [
        f"topic must be at most {MAX_TOPIC_CHARS} characters"
    ]


# Event markers and delivery records


def test_delivery_records_of_the_longest_topic_callback_and_jti_are_stored_and_read(hub: Any) -> None:
    records = DeliveryRecords(hub.clients, hub.settings)
    jti = "j" * MAX_JTI_CHARS
    callback = "https://subscriber.example/" + "c" * (MAX_CALLBACK_CHARS - 27)
    attempts = [
        Attempt(
            jti, LONG_TOPIC, callback, 1, "retrying", 1000.0, status_code=503, error="503", duration_ms=12
        ),
        Attempt(jti, LONG_TOPIC, callback, 2, "ok", 1060.0, status_code=200, duration_ms=8),
        Attempt(jti, "acme.login", callback, 1, "ok", 1000.5, status_code=204, duration_ms=3),
    ]

    records.write(attempts)

    assert sorted(records.for_event(jti), key=lambda a: a.at) == sorted(attempts, key=lambda a: a.at)


def test_event_markers_accept_any_jti_once(hub: Any) -> None:
    markers = EventMarkers(hub.clients, hub.settings)
    for jti in ("j" * MAX_JTI_CHARS, "é" * 2048):
        assert markers.claim(jti, LONG_TOPIC, now=1000.0)
        assert not markers.claim(jti, LONG_TOPIC, now=1001.0)


# A verification that completes after its topic was deregistered


class DeregisteringHttp:
    """The callback's answer arrives while the publisher deregisters the topic."""

    def __init__(self, inner: GuardedHttp, deregister: Any) -> None:
        self._inner = inner
        self._deregister = deregister

    def request(self, method: str, url: str, **kwargs: Any) -> OutboundResponse:
        response = self._inner.request(method, url, **kwargs)
        self._deregister()
        return response


def test_a_verification_finishing_during_deregister_writes_nothing(
    hub: Any, callbacks: CallbackServer
) -> None:
    driver = HubUnderTest(hub)
    driver.post({"hub.mode": "register", "hub.topic": "acme.login"})
    driver.post({"hub.mode": "subscribe", "hub.topic": "acme.login", "hub.callback": callbacks.url()})
    topic_item = {"pk": {"S": "TOPIC#acme.login"}, "sk": {"S": "TOPIC"}}

    def delete_topic_item() -> None:
        # Deregistering deletes the topic item first and sweeps the items under it after:
        # this verification completes in between, before the sweep reaches its request.
        hub.clients.dynamodb.delete_item(TableName=driver.settings.table_name, Key=topic_item)

    http = DeregisteringHttp(
        GuardedHttp.from_settings(driver.settings, max_response_bytes=MAX_RESPONSE_BYTES), delete_topic_item
    )

    outcomes = driver.verify_all(http)

    assert len(callbacks.gets()) == 1  # the callback did confirm its intent
    assert outcomes == ["superseded"]  # "a newer request had already been applied": nothing written
    assert [item["sk"]["S"] for item in driver.table_items() if item["sk"]["S"].startswith("SUB#")] == []
    driver.post({"hub.mode": "register", "hub.topic": "acme.login"})
    assert driver.store.list_active("acme.login", now=time.time())[0] == []


def test_with_open_topics_a_verification_needs_no_topic_item(hub: Any, callbacks: CallbackServer) -> None:
    driver = HubUnderTest(hub, open_topics=True)
    driver.post({"hub.mode": "subscribe", "hub.topic": "never.registered", "hub.callback": callbacks.url()})

    assert driver.verify_all() == ["verified"]
    assert [s.callback for s in driver.store.list_active("never.registered", now=time.time())[0]] == [
        callbacks.url()
    ]
