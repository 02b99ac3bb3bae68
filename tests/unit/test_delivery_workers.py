"""A fan-out's deliveries run on a few shared workers: every subscriber is served once,
each outcome is recorded, and a delivery that crashes is a failure of that subscriber
alone (recorded and retried), never a lost or a hung batch. No network: the subscribers
are a fake HTTP client, the table a fake DynamoDB."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any, cast

from sethub.clients import AwsClients
from sethub.dispatch import Dispatcher
from sethub.messages import SetEvent
from sethub.outbound import OutboundResponse
from sethub.queues import Outgoing, QueueSender
from sethub.records import DeliveryRecords
from sethub.settings import Settings
from sethub.subscriptions import Subscription

SUBSCRIBERS = 50
CRASHING = "https://sub7.example/hook"
SETTINGS = Settings(
    table_name="hub",
    delivery_concurrency=4,
    events_queue_url="https://sqs.example/events",
    retry_queue_url="https://sqs.example/retry",
)


class FakeDynamoDB:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        self.items += [request["PutRequest"]["Item"] for request in RequestItems["hub"]]
        return {"UnprocessedItems": {}}

    def query(self, **kwargs: Any) -> dict[str, Any]:
        pk = kwargs["ExpressionAttributeValues"][":pk"]["S"]
        return {"Items": [item for item in self.items if item["pk"]["S"] == pk]}


class Store:
    def __init__(self, subscriptions: list[Subscription]) -> None:
        self.subscriptions = subscriptions

    def list_active(
        self, topic: str, *, now: float, start_after: str | None = None, limit: int | None = None
    ) -> tuple[list[Subscription], str | None]:
        return self.subscriptions, None

    def mark_failing(self, topic: str, callback: str, *, requested_at: int, now: float) -> int:
        return int(now)

    def due_outcomes(self, attempts: Any) -> list[Any]:
        return []  # last outcomes (sethub.outcomes) are not what this test looks at


class Subscribers:
    """Answers 202, but raises a bug (not a network error) for ``CRASHING``; counts requests."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.posted: list[str] = []
        self.threads: set[str] = set()

    def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> OutboundResponse:
        with self.lock:
            self.posted.append(url)
            self.threads.add(threading.current_thread().name)
        if url == CRASHING:
            raise RuntimeError("a bug in the delivery path")
        return OutboundResponse(status=202, headers={}, body=b"", elapsed=0.001)


class Queues(QueueSender):
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send_all(self, queue_url: str, messages: Sequence[Outgoing]) -> list[int]:
        self.sent += [(queue_url, message.body) for message in messages]
        return []


class NoStreams:
    """No SSF stream takes the event."""

    def plan(self, messages: Sequence[Any]) -> list[Any]:
        return [SimpleNamespace(requests=[], followups=[], flush=None) for _ in messages]


class Archive:
    def keep(self, events: Sequence[Any], *, now: float) -> None:
        pass


def _subscription(n: int) -> Subscription:
    return Subscription(
        topic="acme.login",
        callback=f"https://sub{n}.example/hook",
        format="json",
        secret=None,
        lease_seconds=3600,
        expires_at=2_000_000_000,
        requested_at=1,
        sort_key=f"SUB#{n:04d}",
    )


def test_every_subscriber_once_and_a_crashing_delivery_is_that_subscribers_failure() -> None:
    db, subscribers, queues = FakeDynamoDB(), Subscribers(), Queues()
    dispatcher = Dispatcher(
        AwsClients(dynamodb=db),
        SETTINGS,
        http=subscribers,
        store=cast(Any, Store([_subscription(n) for n in range(SUBSCRIBERS)])),
        streams=cast(Any, NoStreams()),
        records=DeliveryRecords(AwsClients(dynamodb=db), SETTINGS),
        sender=queues,
        archive=cast(Any, Archive()),
        now=lambda: 1_764_190_000.0,
    )
    claims = {"iss": "https://hub.example", "jti": "e1", "iat": 1_764_190_000, "events": {}}
    event = SetEvent(topic="acme.login", claims=claims, hub_url="https://hub.example/hub")
    try:
        result = dispatcher.dispatch([("m1", event.to_json())])
    finally:
        dispatcher.close()

    assert sorted(subscribers.posted) == sorted(s.callback for s in map(_subscription, range(SUBSCRIBERS)))
    assert len(subscribers.threads) <= SETTINGS.delivery_concurrency
    assert result.failed == set()  # the crash is retried on its own, not the whole message
    assert result.counts["ok"] == SUBSCRIBERS - 1
    # Records name the callback's host (its path may carry a token).
    records = DeliveryRecords(AwsClients(dynamodb=db), SETTINGS).for_event("e1")
    recorded = {a.callback_host: a for a in records}
    assert len(records) == len(recorded) == SUBSCRIBERS
    assert recorded["sub7.example"].status != "ok"
    assert recorded["sub7.example"].error == "RuntimeError"
    assert [url for url, _ in queues.sent] == [SETTINGS.retry_queue_url]
    assert CRASHING in queues.sent[0][1]
