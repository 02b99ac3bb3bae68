"""Recovery on moto: dispatch keeps what it takes from the events queue; ``sethub recover
start`` queues a request that dispatch (through its role) runs: the topic's window goes to
one subscription, in order, and to nobody else; a run cut short or crashed continues where
it stopped; ``sethub recover status`` shows how far it got."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from listeners import SubscriberServer
from seeding import seed_subscription

from sethub.archive import EventArchive
from sethub.catalog import WSO2_EVENT_TYPES
from sethub.cli import main
from sethub.cli.target import CliClients
from sethub.dispatch import Dispatcher
from sethub.messages import ContentEvent, RecoverWindow, SetEvent, parse_message
from sethub.outbound import GuardedHttp
from sethub.queues import QueueSender
from sethub.records import DeliveryRecords
from sethub.recovery import RecoveryStore, RecoveryWorker
from sethub.retry import RetryPolicy
from sethub.store import SubscriptionStore
from sethub.subscriptions import subscription_id

TOPIC = "acme.login"
LOGIN = WSO2_EVENT_TYPES["loginSuccess"]
HUB_URL = "http://127.0.0.1:3000/hub"


@dataclass
class Subscribers:
    """Callbacks on 127.0.0.1 that keep what they are sent; a path in ``down`` answers 503."""

    base: str
    received: dict[str, list[tuple[dict[str, str], bytes]]] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def jtis(self, name: str) -> list[str]:
        return [json.loads(body)["jti"] for _, body in self.received.get(f"/{name}", [])]


@pytest.fixture
def subscribers() -> Iterator[Subscribers]:
    found = Subscribers("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            down = self.path in found.down
            if not down:
                found.received.setdefault(self.path, []).append((dict(self.headers), body))
            self.send_response(503 if down else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = SubscriberServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    found.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield found
    server.shutdown()
    server.server_close()


def set_event(jti: str, toe: int, topic: str = TOPIC) -> tuple[str, str]:
    claims = {"iss": "https://hub", "jti": jti, "iat": int(time.time()), "toe": toe, "events": {LOGIN: {}}}
    return str(uuid.uuid4()), SetEvent(topic=topic, claims=claims, hub_url=HUB_URL).to_json()


def kept_set(jti: str, toe: int) -> SetEvent:
    message = parse_message(set_event(jti, toe)[1])
    assert isinstance(message, SetEvent)
    return message


_CLIENTS: dict[str, CliClients] = {}


def cli(hub: Any, moto_endpoint: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    # One set of the operator's clients for every command (a boto3 session each is slow).
    clients = _CLIENTS.setdefault(moto_endpoint, CliClients(moto_endpoint, "us-east-1"))
    code = main(
        [*argv, "--endpoint", moto_endpoint, "--stack", hub.provisioned.prefix, "--json"],
        clients=clients,
        env={},
        out=out,
        err=err,
    )
    return code, out.getvalue(), err.getvalue()


def queued_recoveries(hub: Any) -> list[tuple[str, str]]:
    """The recovery messages on the events queue (taken off it: the test is the poller)."""
    sqs, url = hub.clients.sqs, hub.settings.events_queue_url
    found: list[tuple[str, str]] = []
    while True:
        page = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30, WaitTimeSeconds=0
        )
        messages = page.get("Messages", [])
        if not messages:
            return found
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            assert isinstance(parse_message(message["Body"]), RecoverWindow)
            found.append((message["MessageId"], message["Body"]))


def dispatch_role(hub: Any, **changes: Any) -> Dispatcher:
    """Dispatch as deployed: its role's grants (it alone may decrypt the secret)."""
    settings = replace(hub.settings, **changes)
    return Dispatcher(hub.clients_for("DispatchFunction"), settings, http=GuardedHttp.from_settings(settings))


def status(hub: Any, moto_endpoint: str, recovery_id: str) -> dict[str, Any]:
    code, out, err = cli(hub, moto_endpoint, "recover", "status", recovery_id)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def test_a_subscriber_that_was_down_gets_the_window_in_order_and_nobody_else_gets_more(
    hub, moto_endpoint, subscribers
):
    store = SubscriptionStore(hub.clients, hub.settings)
    seed_subscription(store, TOPIC, subscribers.url("crm"), fmt="json", secret=b"crm-s3cret")
    seed_subscription(store, TOPIC, subscribers.url("siem"), fmt="json")
    seed_subscription(store, "acme.other", subscribers.url("crm"), fmt="json")
    dispatcher = dispatch_role(hub, retry_schedule=(600,))
    dispatcher.dispatch([set_event("before", toe=1)])
    since = time.time()
    # GIVEN the CRM is down while three events come, in two batches and out of toe order,
    # and an event of another topic
    subscribers.down.add("/crm")
    first = dispatcher.dispatch([set_event("e3", toe=30), set_event("e1", toe=10)])
    second = dispatcher.dispatch([set_event("e2", toe=20), set_event("other", toe=5, topic="acme.other")])
    assert first.failed == second.failed == set()
    assert subscribers.jtis("crm") == ["before"]
    siem_before = subscribers.jtis("siem")
    assert sorted(siem_before) == ["before", "e1", "e2", "e3"]
    subscribers.down.clear()

    # WHEN the operator starts a recovery of the window for the CRM (the time as taken:
    # rounded up to the millisecond it could pass a batch archived in that millisecond)
    code, out, err = cli(
        hub,
        moto_endpoint,
        "recover",
        "start",
        "--topic",
        TOPIC,
        "--callback",
        subscribers.url("crm"),
        "--since",
        f"{since:.6f}",
    )
    assert code == 0, err
    started = json.loads(out)
    assert started["status"] == "queued"
    assert f"sethub recover status {started['recovery']}" in err
    # the operator's process sent nothing: dispatch does, from the events queue
    assert subscribers.jtis("crm") == ["before"]
    result = dispatcher.dispatch(queued_recoveries(hub))

    # THEN the CRM gets the window's events of that topic in toe order, signed with its secret
    assert result.failed == set()
    assert subscribers.jtis("crm") == ["before", "e1", "e2", "e3"]
    for headers, body in subscribers.received["/crm"][1:]:
        digest = hmac.new(b"crm-s3cret", body, hashlib.sha256).hexdigest()
        assert headers["X-Hub-Signature"] == f"sha256={digest}"
    # the other subscriber of the topic gets nothing more
    assert subscribers.jtis("siem") == siem_before
    # the attempts are in the delivery records, beside the failed first ones
    crm = subscription_id(TOPIC, subscribers.url("crm"))
    recorded = DeliveryRecords(hub.clients, hub.settings).for_event("e2")
    assert [a.status for a in recorded if a.subscription_id == crm] == ["retrying", "ok"]
    # and the operator sees it done, the callback by host only
    shown = status(hub, moto_endpoint, started["recovery"])
    assert (shown["status"], shown["found"], shown["wanted"], shown["sent"], shown["ok"]) == (
        "done",
        3,
        3,
        3,
        3,
    )
    assert (shown["subscription"], shown["last_jti"], shown["runs"]) == (crm, "e3", 1)
    assert "/crm" not in json.dumps(shown)
    assert result.counts["ok"] == 3  # in dispatch's delivery metrics too


def keep_window(hub: Any, jtis: list[str]) -> float:
    """Events of TOPIC kept a minute ago, toe in the order given; the window's start."""
    archive = EventArchive(hub.clients.dynamodb, hub.settings.table_name, retention_days=14)
    kept_at = time.time() - 60
    archive.keep([kept_set(jti, toe=n) for n, jti in enumerate(jtis)], now=kept_at)
    return kept_at - 1


def worker(hub: Any, dispatcher: Dispatcher, http: Any, **kwargs: Any) -> RecoveryWorker:
    settings = hub.settings
    return RecoveryWorker(
        store=RecoveryStore(hub.clients_for("DispatchFunction").dynamodb, settings.table_name),
        archive=dispatcher.archive,
        subscriptions=dispatcher.store,
        signer=dispatcher.signer,
        http=http,
        records=dispatcher.records,
        sender=QueueSender(hub.clients_for("DispatchFunction").sqs),
        events_queue_url=settings.events_queue_url,
        retry_queue_url=settings.retry_queue_url,
        dead_letter_queue_url=settings.dead_letter_queue_url,
        policy=RetryPolicy(schedule=(600,), jitter=0),
        **kwargs,
    )


def start(hub: Any, moto_endpoint: str, callback: str, since: float) -> str:
    code, out, err = cli(
        hub,
        moto_endpoint,
        "recover",
        "start",
        "--topic",
        TOPIC,
        "--callback",
        callback,
        "--since",
        f"{since}",
    )
    assert code == 0, err
    (_, body), *_ = queued_recoveries(hub)
    message = parse_message(body)
    assert isinstance(message, RecoverWindow)
    assert message.recovery_id == json.loads(out)["recovery"]
    return message.recovery_id


def test_a_run_out_of_time_saves_lets_go_and_the_next_run_continues_after_it(hub, moto_endpoint, subscribers):
    seed_subscription(SubscriptionStore(hub.clients, hub.settings), TOPIC, subscribers.url("crm"), fmt="json")
    since = keep_window(hub, ["a", "b", "c", "d"])
    recovery_id = start(hub, moto_endpoint, subscribers.url("crm"), since)
    dispatcher = dispatch_role(hub)
    http = GuardedHttp.from_settings(dispatcher._settings)
    # GIVEN an invocation whose time is up after two deliveries (a clock that moves a
    # second per reading, the deadline two readings away)
    clock = iter(range(1000))
    first = worker(hub, dispatcher, http, monotonic=lambda: float(next(clock)))

    # WHEN it runs
    report = first.run(recovery_id, start_by=2.0, lease_seconds=60)

    # THEN it sent two, saved where it stopped, and queued the same recovery again
    assert report is not None
    assert not report.complete
    assert subscribers.jtis("crm") == ["a", "b"]
    shown = status(hub, moto_endpoint, recovery_id)
    assert (shown["status"], shown["sent"], shown["last_jti"]) == ("running", 2, "b")
    again = queued_recoveries(hub)
    assert len(again) == 1

    # AND the next run (dispatch taking that message) sends the rest, nothing twice
    assert dispatcher.dispatch(again).failed == set()
    assert subscribers.jtis("crm") == ["a", "b", "c", "d"]
    shown = status(hub, moto_endpoint, recovery_id)
    assert (shown["status"], shown["sent"], shown["ok"], shown["runs"]) == ("done", 4, 4, 2)
    # a finished recovery is never run again (an SQS duplicate of its message)
    assert dispatcher.dispatch(again).failed == set()
    assert subscribers.jtis("crm") == ["a", "b", "c", "d"]


class Crash(BaseException):
    """The invocation dies (killed, out of memory): nothing after it runs, not even finally's
    ``except Exception``."""


@dataclass
class CrashingHttp:
    """Sends through ``http``, and dies while the ``crash_at``-th request is in flight."""

    http: Any
    crash_at: int
    sent: int = 0

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self.sent += 1
        answer = self.http.request(*args, **kwargs)
        if self.sent == self.crash_at:
            raise Crash
        return answer


def test_a_crashed_run_is_continued_after_its_lease_sending_the_event_in_flight_again(
    hub, moto_endpoint, subscribers
):
    seed_subscription(SubscriptionStore(hub.clients, hub.settings), TOPIC, subscribers.url("crm"), fmt="json")
    since = keep_window(hub, ["a", "b", "c"])
    recovery_id = start(hub, moto_endpoint, subscribers.url("crm"), since)
    dispatcher = dispatch_role(hub)
    http = GuardedHttp.from_settings(dispatcher._settings)
    # GIVEN a run that dies while its second delivery is in flight (the subscriber got it)
    with pytest.raises(Crash):
        worker(hub, dispatcher, CrashingHttp(http, crash_at=2)).run(
            recovery_id, start_by=None, lease_seconds=60
        )
    assert subscribers.jtis("crm") == ["a", "b"]

    # WHEN SQS delivers the message again while the dead run's lease holds, nothing runs
    assert worker(hub, dispatcher, http).run(recovery_id, start_by=None, lease_seconds=60) is None
    assert subscribers.jtis("crm") == ["a", "b"]
    # and once it has run out (SQS's visibility timeout is longer than any lease)
    later = worker(hub, dispatcher, http, now=lambda: time.time() + 120)
    report = later.run(recovery_id, start_by=None, lease_seconds=60)

    # THEN the recovery continues after the last saved event: the one in flight again
    # (at least once: receivers deduplicate on jti), the first not
    assert report is not None
    assert report.complete
    assert subscribers.jtis("crm") == ["a", "b", "b", "c"]
    shown = status(hub, moto_endpoint, recovery_id)
    assert (shown["status"], shown["sent"], shown["runs"]) == ("done", 3, 2)


def test_a_subscription_gone_before_its_recovery_runs_fails_it_with_a_reason(hub, moto_endpoint, subscribers):
    store = SubscriptionStore(hub.clients, hub.settings)
    seed_subscription(store, TOPIC, subscribers.url("crm"), fmt="json")
    since = keep_window(hub, ["a"])
    recovery_id = start(hub, moto_endpoint, subscribers.url("crm"), since)
    store.remove(TOPIC, subscribers.url("crm"))

    dispatch_role(hub).dispatch([("m", RecoverWindow(recovery_id=recovery_id).to_json())])

    code, out, err = cli(hub, moto_endpoint, "recover", "status", recovery_id)
    assert code == 1
    assert json.loads(out)["status"] == "failed"
    assert err.startswith(f"sethub: recovery {recovery_id} failed: no live subscription of 127.0.0.1")
    assert subscribers.received == {}


def test_the_window_ends_where_the_operator_says_and_a_dry_run_sends_nothing(hub, moto_endpoint, subscribers):
    store = SubscriptionStore(hub.clients, hub.settings)
    seed_subscription(store, TOPIC, subscribers.url("crm"), fmt="json")
    archive = EventArchive(hub.clients.dynamodb, hub.settings.table_name, retention_days=14)
    content = ContentEvent(
        topic=TOPIC,
        jti="content",
        content_type="text/plain",
        body_b64=base64.b64encode(b"hi").decode(),
        hub_url=HUB_URL,
    )
    start_at = time.time() - 3600
    archive.keep([kept_set("a", toe=1)], now=start_at)
    archive.keep([content], now=start_at + 60)
    archive.keep([kept_set("b", toe=2)], now=start_at + 120)

    code, out, err = cli(
        hub,
        moto_endpoint,
        "recover",
        "start",
        "--topic",
        TOPIC,
        "--callback",
        subscribers.url("crm"),
        "--since",
        f"{start_at + 30:.0f}",
        "--until",
        f"{start_at + 90:.0f}",
        "--dry-run",
    )

    assert code == 0, err
    assert [(o["jti"], o["status"]) for o in json.loads(out)] == [("content", "would-send")]
    assert subscribers.received == {}
    assert queued_recoveries(hub) == []
    # Expired (TTL deletes late): no longer kept.
    assert archive.events(TOPIC, since=start_at - 1, now=start_at + 15 * 86400) == []


def test_no_subscription_for_that_callback_is_a_one_line_failure(hub, moto_endpoint, subscribers):
    code, _, err = cli(
        hub,
        moto_endpoint,
        "recover",
        "start",
        "--topic",
        TOPIC,
        "--callback",
        subscribers.url("nobody"),
        "--since",
        "1h",
    )
    assert code == 1
    assert err.startswith("sethub: no live subscription of 127.0.0.1")
    assert len(err.splitlines()) == 1
    assert queued_recoveries(hub) == []
    code, _, err = cli(hub, moto_endpoint, "recover", "status", "0123456789abcdef")
    assert (code, err) == (1, "sethub: no recovery 0123456789abcdef (kept 30 days)\n")


def test_waiting_for_a_recovery_nobody_runs_gives_up_with_exit_code_1(hub, moto_endpoint, subscribers):
    seed_subscription(SubscriptionStore(hub.clients, hub.settings), TOPIC, subscribers.url("crm"), fmt="json")
    recovery_id = start(hub, moto_endpoint, subscribers.url("crm"), keep_window(hub, ["a"]))

    # No dispatch runs it (the test took its message): a script waiting learns it is not done.
    code, out, err = cli(hub, moto_endpoint, "recover", "status", recovery_id, "--wait", "--timeout", "0")

    assert code == 1
    assert json.loads(out)["status"] == "queued"
    assert err == f"sethub: recovery {recovery_id} still queued after 0 s\n"
