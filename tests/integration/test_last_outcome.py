"""A subscription's last delivery outcome, as dispatch stores it and ``sethub subscriptions`` shows it.

Dispatch runs under its own role (its IAM policy applied) against a hub in moto and
delivers to a real HTTP subscriber on 127.0.0.1; the clock is the test's.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from counting import Counting
from listeners import SubscriberServer
from operator_cli import run_cli
from seeding import seed_subscription

from sethub.catalog import WSO2_EVENT_TYPES
from sethub.dispatch import Dispatcher
from sethub.ingest import Ingestor
from sethub.outbound import GuardedHttp
from sethub.outcomes import HEARTBEAT_SECONDS, LastOutcome
from sethub.store import OutcomeWrite, SubscriptionStore

TOPIC = "acme.login"
LOGIN = WSO2_EVENT_TYPES["loginSuccess"]


class Subscriber:
    """Answers every POST with ``status``."""

    def __init__(self) -> None:
        self.status = 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                self.send_response(owner.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = SubscriberServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/crm?token=crm-t0ken"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    running = Subscriber()
    yield running
    running.server.shutdown()
    running.server.server_close()


class Hub:
    """Events in, one dispatch invocation each, at the test's clock; what the CLI lists."""

    def __init__(self, hub: Any, subscriber: Subscriber) -> None:
        self.hub = hub
        self.clock = time.time()
        self.dynamodb = Counting(hub.clients_for("DispatchFunction").dynamodb)
        clients = hub.clients_for("DispatchFunction", dynamodb=self.dynamodb)
        self.dispatcher = Dispatcher(
            clients, hub.settings, http=GuardedHttp.from_settings(hub.settings), now=lambda: self.clock
        )
        self.ingestor = Ingestor(hub.clients, hub.settings)
        seed_subscription(SubscriptionStore(hub.clients, hub.settings), TOPIC, subscriber.url)

    def deliver(self, seconds_later: float) -> None:
        self.clock += seconds_later
        self.ingestor.ingest([{"topic": TOPIC, "events": {LOGIN: {}}}], base_url="http://127.0.0.1:3000")
        sqs = self.hub.clients.sqs
        queue = self.hub.settings.events_queue_url
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        result = self.dispatcher.dispatch([(m["MessageId"], m["Body"]) for m in messages])
        assert len(messages) == 1
        assert not result.failed

    def cli(self, *argv: str) -> tuple[int, str, str]:
        return run_cli([*argv, "--table", self.hub.settings.table_name], clients=self.hub.clients)

    def listed(self, *argv: str) -> tuple[str, str]:
        code, out, err = self.cli("subscriptions", "list", *(argv or ("--topic", TOPIC)), "--json")
        assert code == 0, err
        (row,) = json.loads(out)
        return row["last_outcome"], row["last_outcome_at"]

    def at(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock))

    def outcome_writes(self) -> int:
        return self.dynamodb.calls.get("update_item", 0)


@pytest.fixture
def stack(hub: Any, subscriber: Subscriber) -> Iterator[Hub]:
    built = Hub(hub, subscriber)
    yield built
    built.dispatcher.close()


def test_the_listing_shows_a_success_then_a_failure_then_a_success(
    stack: Hub, subscriber: Subscriber
) -> None:
    stack.deliver(0)
    assert stack.listed() == ("delivered (200)", stack.at())

    subscriber.status = 503
    stack.deliver(10)
    assert stack.listed() == ("failed (503)", stack.at())
    # Listed by state (from the index, the outcome read by key) and shown alone, alike.
    assert stack.listed("--state", "active") == ("failed (503)", stack.at())
    code, out, _ = stack.cli("subscriptions", "show", TOPIC, subscriber.url, "--json")
    assert code == 0
    shown = json.loads(out)
    assert (shown["last_outcome"], shown["last_outcome_at"]) == ("failed (503)", stack.at())
    code, out, _ = stack.cli("subscriptions", "show", TOPIC, shown["subscription"])
    assert code == 0
    assert "last_outcome     failed (503)" in out
    assert "t0ken" not in out  # named by host and id, never by its URL
    code, _, err = stack.cli("subscriptions", "show", TOPIC, "0" * 32)
    assert (code, err) == (1, f"sethub: no subscription {'0' * 32} of topic {TOPIC}\n")

    subscriber.status = 200
    stack.deliver(10)
    assert stack.listed() == ("delivered (200)", stack.at())


def test_a_burst_of_successes_writes_the_item_once_then_once_per_heartbeat(stack: Hub) -> None:
    stack.deliver(0)
    first = stack.at()
    writes = stack.outcome_writes()
    assert writes == 1  # the first outcome stored
    for _ in range(5):
        stack.deliver(10)
    # Five more successes: the same kind, fresh enough, no write; the listing keeps the first time.
    assert stack.outcome_writes() == writes
    assert stack.listed() == ("delivered (200)", first)

    stack.deliver(HEARTBEAT_SECONDS)
    assert stack.outcome_writes() == writes + 1
    assert stack.listed() == ("delivered (200)", stack.at())


def test_a_late_writer_never_overwrites_a_newer_outcome(stack: Hub, subscriber: Subscriber) -> None:
    subscriber.status = 503
    stack.deliver(0)
    newer = stack.at()
    store = SubscriptionStore(stack.hub.clients, stack.hub.settings)
    subscription = store.get_active(TOPIC, subscriber.url, now=stack.clock)
    assert subscription is not None
    late = LastOutcome("delivered", stack.clock - 1, 200)
    assert not store.write_outcome(OutcomeWrite(TOPIC, subscriber.url, subscription.requested_at, late))
    assert stack.listed() == ("failed (503)", newer)
    # Nor does an outcome of the subscription it replaced (another requested_at).
    later = LastOutcome("delivered", stack.clock + 1, 200)
    assert not store.write_outcome(OutcomeWrite(TOPIC, subscriber.url, subscription.requested_at - 1, later))
    assert stack.listed() == ("failed (503)", newer)
