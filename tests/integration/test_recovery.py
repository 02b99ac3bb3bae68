"""Recovery on moto: dispatch keeps what it takes from the events queue; ``sethub recover``
re-delivers a topic's window to one subscription, in order, and to nobody else."""

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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from seeding import seed_subscription

from sethub import recovery
from sethub.archive import EventArchive
from sethub.catalog import WSO2_EVENT_TYPES
from sethub.cli import main
from sethub.dispatch import Dispatcher
from sethub.messages import ContentEvent, SetEvent, parse_message
from sethub.outbound import GuardedHttp
from sethub.records import DeliveryRecords
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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
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


def recover_cli(hub: Any, moto_endpoint: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["recover", *argv, "--endpoint", moto_endpoint, "--stack", hub.provisioned.prefix, "--json"],
        env={},
        out=out,
        err=err,
    )
    return code, out.getvalue(), err.getvalue()


def test_a_subscriber_that_was_down_gets_the_window_in_order_and_nobody_else_gets_more(
    hub, moto_endpoint, subscribers
):
    store = SubscriptionStore(hub.clients, hub.settings)
    seed_subscription(store, TOPIC, subscribers.url("crm"), fmt="json", secret=b"crm-s3cret")
    seed_subscription(store, TOPIC, subscribers.url("siem"), fmt="json")
    seed_subscription(store, "acme.other", subscribers.url("crm"), fmt="json")
    settings = replace(hub.settings, retry_schedule=(600,))
    # Dispatch calls AWS through its role: keeping events needs no grant it lacks.
    dispatcher = Dispatcher(
        hub.clients_for("DispatchFunction"), settings, http=GuardedHttp.from_settings(settings)
    )
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

    # WHEN the operator recovers the window for the CRM (the time as taken: rounded up to the
    # millisecond it could pass a batch archived in that millisecond)
    code, out, err = recover_cli(
        hub, moto_endpoint, "--topic", TOPIC, "--callback", subscribers.url("crm"), "--since", f"{since:.6f}"
    )

    # THEN the CRM gets the window's events of that topic in toe order, signed with its secret
    assert code == 0, err
    assert subscribers.jtis("crm") == ["before", "e1", "e2", "e3"]
    for headers, body in subscribers.received["/crm"][1:]:
        digest = hmac.new(b"crm-s3cret", body, hashlib.sha256).hexdigest()
        assert headers["X-Hub-Signature"] == f"sha256={digest}"
    assert [(o["jti"], o["status"]) for o in json.loads(out)] == [("e1", "ok"), ("e2", "ok"), ("e3", "ok")]
    assert "3 event(s) kept for the window" in err
    # the other subscriber of the topic gets nothing more
    assert subscribers.jtis("siem") == siem_before
    # and the attempts are in the delivery records, beside the failed first ones
    crm = subscription_id(TOPIC, subscribers.url("crm"))
    recorded = DeliveryRecords(hub.clients, hub.settings).for_event("e2")
    assert [a.status for a in recorded if a.subscription_id == crm] == ["retrying", "ok"]


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
    start = time.time() - 3600
    archive.keep([kept_set("a", toe=1)], now=start)
    archive.keep([content], now=start + 60)
    archive.keep([kept_set("b", toe=2)], now=start + 120)

    code, out, err = recover_cli(
        hub,
        moto_endpoint,
        "--topic",
        TOPIC,
        "--callback",
        subscribers.url("crm"),
        "--since",
        f"{start + 30:.0f}",
        "--until",
        f"{start + 90:.0f}",
        "--dry-run",
    )

    assert code == 0, err
    assert [(o["jti"], o["status"]) for o in json.loads(out)] == [("content", "would-send")]
    assert subscribers.received == {}
    # Expired (TTL deletes late): no longer kept.
    assert archive.events(TOPIC, since=start - 1, now=start + 15 * 86400) == []


def test_no_subscription_for_that_callback_is_a_one_line_failure(hub, moto_endpoint, subscribers):
    code, _, err = recover_cli(
        hub, moto_endpoint, "--topic", TOPIC, "--callback", subscribers.url("nobody"), "--since", "1h"
    )
    assert code == 1
    assert err.startswith("sethub: no live subscription of 127.0.0.1")
    assert len(err.splitlines()) == 1


def test_python_m_sethub_recovery_finds_the_hub_in_the_functions_variables(
    hub, subscribers, monkeypatch, capsys
):
    # The operator's shell with a function's SETHUB_* variables (and the moto endpoint).
    for name, value in hub.provisioned.env_for("DispatchFunction").items():
        monkeypatch.setenv(name, value)
    seed_subscription(SubscriptionStore(hub.clients, hub.settings), TOPIC, subscribers.url("crm"), fmt="json")
    archive = EventArchive(hub.clients.dynamodb, hub.settings.table_name, retention_days=14)
    archive.keep([kept_set("late", toe=2), kept_set("early", toe=1)], now=time.time() - 60)

    code = recovery.main(["--topic", TOPIC, "--callback", subscribers.url("crm"), "--since", "2m"])

    assert code == 0
    assert subscribers.jtis("crm") == ["early", "late"]
    assert "2 event(s) kept, 2 wanted by the subscription; sent 2, 2 ok" in capsys.readouterr().out
