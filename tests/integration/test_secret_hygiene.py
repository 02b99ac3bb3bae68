"""A subscriber's ``hub.secret`` is used to sign its deliveries and appears nowhere else.

One complete flow through the real handlers against moto, with a known secret: register,
subscribe (with the secret), verification of intent, publish, a delivery that fails, its
retry, and the dead letter. Then every response, every queue message (including the
dead letter), every table item and every captured log line is searched for the secret,
in plain text, hex and base64.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from authorized import AuthorizedFunction
from listeners import SubscriberServer

from devstack.gateway import proxy_event

ROOT = Path(__file__).resolve().parents[2]
SECRET = "Kn0wn-s3cret-for-the-hygiene-test-5f1c9a"
TOPIC = "acme.hygiene"
EVENT_TYPE = "https://schemas.identity.wso2.org/events/credential/event-type/credentialUpdated"
FORM = "application/x-www-form-urlencoded"


def secret_spellings() -> list[str]:
    raw = SECRET.encode()
    return [
        SECRET,
        raw.hex(),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        json.dumps(SECRET)[1:-1],
    ]


@dataclass
class Subscriber:
    """Answers verification of intent, then fails every delivery with a 500."""

    url: str = ""
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    state = Subscriber()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            self._answer(200, query.get("hub.challenge", [""])[0].encode())

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                state.deliveries.append((dict(self.headers), body))
            self._answer(500, b"down for maintenance")

    server = SubscriberServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/sethub"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


def api_event(path: str, *, body: str, headers: dict[str, str]) -> dict[str, Any]:
    return proxy_event(resource=path, method="POST", headers=list(headers.items()), body=body.encode())


class Flow:
    """Drives the four handlers and keeps everything the hub said or queued."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.sqs = hub.clients.sqs
        # Each handler's AWS calls go through its own role's endpoint.
        self.functions = {name: hub.function(name) for name in hub.provisioned.functions}
        self.produced: list[str] = []
        """Every response body and every queue message the hub produced."""

    def api(self, function: str, path: str, body: str, content_type: str) -> dict[str, Any]:
        headers = {"Content-Type": content_type, "x-api-key": self.hub.api_key}
        response: dict[str, Any] = self.functions[function].invoke(
            api_event(path, body=body, headers=headers)
        )
        self.produced.append(json.dumps(response))
        return response

    def take(self, queue_url: str) -> list[dict[str, Any]]:
        """Every message now on the queue, recorded and removed."""
        taken: list[dict[str, Any]] = []
        while True:
            received = self.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=60
            ).get("Messages", [])
            if not received:
                return taken
            for message in received:
                self.produced.append(message["Body"])
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            taken.extend(dict(message) for message in received)

    def consume(self, function: str, queue_logical_id: str) -> int:
        """Run ``function`` on what is waiting on the queue, as its SQS trigger would."""
        queue_url = self.hub.provisioned.queue_urls[queue_logical_id]
        messages = self.take(queue_url)
        if messages:
            event = {
                "Records": [
                    {
                        "messageId": message["MessageId"],
                        "receiptHandle": message["ReceiptHandle"],
                        "body": message["Body"],
                        "attributes": message.get("Attributes", {}),
                        "messageAttributes": {},
                        "md5OfBody": message.get("MD5OfBody", ""),
                        "eventSource": "aws:sqs",
                        "eventSourceARN": self.hub.provisioned.queue_arns[queue_logical_id],
                        "awsRegion": self.hub.provisioned.region,
                    }
                    for message in messages
                ]
            }
            self.produced.append(json.dumps(self.functions[function].invoke(event)))
        return len(messages)

    def table_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        paginator = self.hub.clients.dynamodb.get_paginator("scan")
        for page in paginator.paginate(TableName=self.hub.settings.table_name):
            items.extend(page["Items"])
        return items


@pytest.fixture
def flow(hub: Any, monkeypatch: pytest.MonkeyPatch) -> Flow:
    # One retry, at once: the flow reaches the dead-letter queue in two attempts.
    for name, value in {**hub.env, "SETHUB_RETRY_SCHEDULE": "0"}.items():
        monkeypatch.setenv(name, value)
    created = Flow(hub)
    # Handlers build their dependencies once per container; this test's hub is a new "container".
    websub: AuthorizedFunction = created.functions["WebSubFunction"]
    for name in ("settings", "clients", "hub", "signer"):
        cache_clear = getattr(websub.handler.__globals__.get(name), "cache_clear", None)
        if cache_clear is not None:
            cache_clear()
    return created


def test_the_secret_signs_deliveries_and_appears_nowhere_else(
    flow: Flow, subscriber: Subscriber, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="sethub")
    register = {"hub.mode": "register", "hub.topic": TOPIC}
    assert flow.api("WebSubFunction", "/hub", urlencode(register), FORM)["statusCode"] == 200
    subscribe = {
        "hub.mode": "subscribe",
        "hub.topic": TOPIC,
        "hub.callback": subscriber.url,
        "hub.secret": SECRET,
        "format": "json",
    }
    assert flow.api("WebSubFunction", "/hub", urlencode(subscribe), FORM)["statusCode"] == 202
    assert flow.consume("VerifierFunction", "VerifyQueue") == 1

    event = {"topic": TOPIC, "events": {EVENT_TYPE: {"credentialType": "PASSWORD", "action": "RESET"}}}
    assert flow.api("IngestFunction", "/events", json.dumps(event), "application/json")["statusCode"] == 202
    assert flow.consume("DispatchFunction", "EventsQueue") == 1
    # The first attempt failed; its retry is the last attempt; then the dead letter.
    assert flow.consume("DispatchFunction", "RetryQueue") == 1
    dead_letters = flow.take(flow.hub.settings.dead_letter_queue_url)
    assert len(dead_letters) == 1

    # The secret did its job: both attempts carry a valid signature of their exact bytes.
    assert len(subscriber.deliveries) == 2
    for headers, body in subscriber.deliveries:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Hub-Signature"], expected)

    out, err = capfd.readouterr()
    logs = out + err + caplog.text
    assert "hub request" in logs  # the capture works: the handlers' own log lines are here
    items = flow.table_items()
    assert any(item["sk"]["S"].startswith("SUB#") for item in items)
    searched = {
        "logs": logs,
        "responses and queue messages (the dead letter included)": "\n".join(flow.produced),
        "table items": json.dumps(items, default=lambda value: base64.b64encode(value).decode()),
    }
    for spelling in secret_spellings():
        for where, text in searched.items():
            assert spelling not in text, f"the secret ({spelling[:6]}...) appears in the {where}"
    # Binary attributes (the encrypted secret) must not hold the plain bytes either.
    for item in items:
        for value in item.values():
            if "B" in value:
                assert SECRET.encode() not in value["B"]
