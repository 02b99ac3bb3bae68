"""The dispatcher's hot path under moto: subscription pages sized to what is needed,
every attempt recorded in batches, and one summary log line per event."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from typing import Any

import boto3
import pytest
from counting import Counting
from listeners import SubscriberServer
from operator_cli import run_cli, table_rows
from seeding import seed_subscription

from sethub.archive import ARCHIVE_PREFIX
from sethub.catalog import WSO2_EVENT_TYPES
from sethub.dispatch import Dispatcher
from sethub.messages import SetEvent
from sethub.outbound import GuardedHttp
from sethub.records import DeliveryRecords, item_size
from sethub.store import SubscriptionStore
from sethub.subscriptions import subscription_key, topic_key

TOPIC = "acme.login"
LOGIN = WSO2_EVENT_TYPES["loginSuccess"]


@pytest.fixture
def receiver() -> Iterator[str]:
    """Subscribers on 127.0.0.1: a path starting with /fail answers 500, anything else 202."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(500 if self.path.startswith("/fail") else 202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = SubscriberServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def subscribe(
    store: SubscriptionStore, callback: str, *, fmt: str = "jwt", secret: bytes | None = None
) -> None:
    seed_subscription(store, TOPIC, callback, fmt=fmt, secret=secret)


def set_event(hub_url: str = "http://127.0.0.1:3000/hub") -> tuple[str, str]:
    claims = {"iss": "https://hub", "jti": str(uuid.uuid4()), "iat": int(time.time()), "events": {LOGIN: {}}}
    return str(uuid.uuid4()), SetEvent(topic=TOPIC, claims=claims, hub_url=hub_url).to_json()


def test_a_page_of_subscriptions_skips_ended_ones_and_keeps_formats_and_secrets(hub):
    store = SubscriptionStore(hub.clients, hub.settings)
    callbacks = [f"https://sub.example/{n}" for n in range(8)]
    for n, callback in enumerate(callbacks):
        subscribe(store, callback, fmt="json" if n % 2 else "jwt", secret=b"s3cret" if n == 5 else None)
    # GIVEN half of them ended (expired, not yet removed by TTL, or unsubscribed)
    ended = set(callbacks[::2])
    for n, callback in enumerate(sorted(ended)):
        change = "SET expires_at = :past" if n % 2 else "SET #state = :gone"
        hub.clients.dynamodb.update_item(
            TableName=hub.settings.table_name,
            Key={"pk": {"S": topic_key(TOPIC)}, "sk": {"S": subscription_key(callback)}},
            UpdateExpression=change,
            **(
                {"ExpressionAttributeValues": {":past": {"N": "1000"}}}
                if n % 2
                else {
                    "ExpressionAttributeNames": {"#state": "state"},
                    "ExpressionAttributeValues": {":gone": {"S": "unsubscribed"}},
                }
            ),
        )

    # WHEN they are read two at a time
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page, cursor = store.list_active(TOPIC, now=time.time(), start_after=cursor, limit=2)
        pages.append([s.callback for s in page])
        if cursor is None:
            break

    # THEN every live one comes exactly once, in pages of at most two, as it was subscribed
    live = [callback for callback in callbacks if callback not in ended]
    assert sorted(c for page in pages for c in page) == sorted(live)
    assert all(len(page) <= 2 for page in pages)
    everyone = {s.callback: s for s in store.list_active(TOPIC, now=time.time())[0]}
    assert set(everyone) == set(live)
    assert everyone["https://sub.example/5"].secret == b"s3cret"
    assert everyone["https://sub.example/5"].format == "json"
    assert everyone["https://sub.example/1"].secret is None
    assert everyone["https://sub.example/1"].lease_seconds == 3600


def test_every_attempt_of_a_big_fan_out_is_recorded(hub, receiver):
    store = SubscriptionStore(hub.clients, hub.settings)
    for n in range(57):
        subscribe(store, f"{receiver}/{'fail' if n < 3 else 'ok'}/{n}")
    # The dispatcher calls AWS as DispatchFunction does, through its role's endpoint.
    dynamodb = Counting(boto3.client("dynamodb", endpoint_url=hub.endpoint_for("DispatchFunction").url))
    settings = replace(hub.settings, retry_schedule=(60,))
    clients = hub.clients_for("DispatchFunction", dynamodb=dynamodb)
    dispatcher = Dispatcher(clients, settings, http=GuardedHttp.from_settings(settings))
    message_id, body = set_event()

    result = dispatcher.dispatch([(message_id, body)])

    assert result.failed == set()
    jti = result.jtis[0]
    recorded = DeliveryRecords(hub.clients, hub.settings).for_event(jti)
    assert len(recorded) == 57
    assert sorted({a.status for a in recorded}) == ["ok", "retrying"]
    assert sum(a.status == "retrying" for a in recorded) == 3
    # The event's 57 outcomes are one record item (under 4 KB): one BatchWriteItem, and one
    # more keeps the event for recovery (sethub.archive).
    assert dynamodb.calls.get("batch_write_item") == 2
    assert dynamodb.calls.get("query") == 1


def test_one_summary_line_per_batch_and_successes_only_at_debug(hub, receiver, caplog):
    store = SubscriptionStore(hub.clients, hub.settings)
    for n in range(6):
        subscribe(store, f"{receiver}/{'fail' if n == 0 else 'ok'}/{n}")
    settings = replace(hub.settings, retry_schedule=(60,))
    dispatcher = Dispatcher(
        hub.clients_for("DispatchFunction"), settings, http=GuardedHttp.from_settings(settings)
    )
    caplog.set_level(logging.INFO, logger="sethub")

    result = dispatcher.dispatch([set_event(), set_event()])

    assert result.failed == set()
    (summary,) = [r for r in caplog.records if r.getMessage() == "batch deliveries"]
    assert summary.events == 2  # type: ignore[attr-defined]
    assert sorted(summary.jtis) == sorted(result.jtis)  # type: ignore[attr-defined]
    assert summary.topics == [TOPIC]  # type: ignore[attr-defined]
    assert summary.deliveries == {"ok": 10, "retrying": 2}  # type: ignore[attr-defined]
    assert summary.max_duration_ms >= 0  # type: ignore[attr-defined]
    per_delivery = [r.getMessage() for r in caplog.records if r.getMessage().startswith("delivery ")]
    assert per_delivery == ["delivery retrying", "delivery retrying"]


class Writes(Counting):
    """Counts calls and keeps the items of every BatchWriteItem."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.items: list[dict[str, Any]] = []

    def batch_write_item(self, **kwargs: Any) -> Any:
        for requests in kwargs["RequestItems"].values():
            self.items += [request["PutRequest"]["Item"] for request in requests]
        return self.__getattr__("batch_write_item")(**kwargs)


def test_an_event_to_ten_subscribers_is_recorded_in_one_write_unit_and_answered_by_the_command(hub, receiver):
    store = SubscriptionStore(hub.clients, hub.settings)
    callbacks = [f"{receiver}/{'fail' if n == 0 else 'ok'}/{n}" for n in range(10)]
    for callback in callbacks:
        subscribe(store, callback)
    dynamodb = Writes(boto3.client("dynamodb", endpoint_url=hub.endpoint_for("DispatchFunction").url))
    settings = replace(hub.settings, retry_schedule=(60,))
    dispatcher = Dispatcher(
        hub.clients_for("DispatchFunction", dynamodb=dynamodb),
        settings,
        http=GuardedHttp.from_settings(settings),
    )

    result = dispatcher.dispatch([set_event(), set_event()])

    assert result.failed == set()
    # One record item per event, each under 1 KB (one write unit), in one BatchWriteItem; the
    # batch's events are kept for recovery in one item of another (sethub.archive).
    assert dynamodb.calls.get("batch_write_item") == 2
    records = [item for item in dynamodb.items if not item["pk"]["S"].startswith(ARCHIVE_PREFIX)]
    kept = [item for item in dynamodb.items if item["pk"]["S"].startswith(ARCHIVE_PREFIX)]
    assert len(records) == 2
    assert all(item_size(item) <= 1024 for item in records)
    assert [item["n"]["N"] for item in kept] == ["2"]
    # "Did subscriber X get event Y, and what did it answer?"
    for jti in result.jtis:
        code, out, _ = run_cli(
            ["deliveries", jti, "--callback", callbacks[0], "--table", hub.settings.table_name],
            clients=hub.clients,
        )
        rows = table_rows(out)[1:]
        assert code == 0
        assert [(row[3], row[5], row[6]) for row in rows] == [
            (f"127.0.0.1:{receiver.rsplit(':', 1)[1]}", "retrying", "500")
        ]
        code, out, _ = run_cli(["deliveries", jti, "--table", hub.settings.table_name], clients=hub.clients)
        rows = table_rows(out)[1:]
        assert sorted(row[5] for row in rows) == ["ok"] * 9 + ["retrying"]
