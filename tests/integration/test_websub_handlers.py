"""The websub and verifier Lambda handlers, invoked with the sample events in events/
against moto, as Lambda (or the local stack) would invoke them."""

from __future__ import annotations

import copy
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from authorized import AuthorizedFunction
from websub_peer import CallbackServer, websub_peer

from sethub.messages import SetEvent, parse_message
from sethub.store import SubscriptionStore

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
TOPIC = "acme.login"


def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


class Functions:
    def __init__(self, hub: Any) -> None:
        self.hub = hub
        # Each handler's AWS calls go through its own role's endpoint.
        self.websub: AuthorizedFunction = hub.function("WebSubFunction")
        self.verifier: AuthorizedFunction = hub.function("VerifierFunction")

    def post_hub(self, params: dict[str, str], *, api_key: bool = True) -> dict[str, Any]:
        event = copy.deepcopy(sample("hub-subscribe.json"))
        event["body"] = urlencode(params)
        event["headers"]["x-api-key"] = self.hub.api_key if api_key else ""
        return self.websub.invoke(event)  # type: ignore[no-any-return]

    def get(self, path: str) -> dict[str, Any]:
        event = copy.deepcopy(sample("hub-subscribe.json"))
        event |= {"path": path, "resource": path, "httpMethod": "GET", "body": None}
        event["requestContext"] |= {"resourcePath": path, "httpMethod": "GET"}
        return self.websub.invoke(event)  # type: ignore[no-any-return]

    def verify_queue_event(self) -> dict[str, Any]:
        """The verify queue's messages as one SQS event, like the event source mapping sends."""
        queue_url = self.hub.settings.verify_queue_url
        template = sample("verify-sqs.json")["Records"][0]
        records = []
        while messages := self.hub.clients.sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10
        ).get("Messages", []):
            for message in messages:
                self.hub.clients.sqs.delete_message(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
                records.append(template | {"messageId": message["MessageId"], "body": message["Body"]})
        return {"Records": records}


@pytest.fixture
def functions(hub: Any, monkeypatch: pytest.MonkeyPatch) -> Functions:
    for name, value in hub.env.items():
        monkeypatch.setenv(name, value)
    return Functions(hub)


@pytest.fixture
def callbacks() -> Iterator[CallbackServer]:
    with websub_peer() as server:
        yield server


def headers(response: dict[str, Any]) -> dict[str, str]:
    found = {name.lower(): value for name, value in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        found.setdefault(name.lower(), values[0])
    return found


def test_subscribe_then_verify_through_the_handlers(
    functions: Functions, callbacks: CallbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = f"secret-{uuid.uuid4().hex}"
    assert functions.post_hub({"hub.mode": "register", "hub.topic": TOPIC})["statusCode"] == 200

    response = functions.post_hub(
        {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": callbacks.url(), "hub.secret": secret}
    )
    result = functions.verifier.invoke(functions.verify_queue_event())

    assert response["statusCode"] == 202
    assert response["body"] == "hub.mode=accepted"
    assert headers(response)["content-type"].startswith("text/plain")
    assert result == {"batchItemFailures": []}
    store = SubscriptionStore(functions.hub.clients, functions.hub.settings)
    assert store.get_active(TOPIC, callbacks.url(), now=time.time()) is not None
    # The secret went in, and nothing the functions printed (logs, metrics) shows it.
    assert secret not in capsys.readouterr().out


def test_a_callback_that_cannot_be_reached_is_settled_and_holds_up_no_other(
    functions: Functions, callbacks: CallbackServer
) -> None:
    with socket.socket() as probe:  # a port with nobody listening on it
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/cb"
    functions.post_hub({"hub.mode": "register", "hub.topic": TOPIC})
    functions.post_hub({"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": dead})
    functions.post_hub({"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": callbacks.url()})
    event = functions.verify_queue_event()
    dead_record = next(r for r in event["Records"] if parse_message(r["body"]).callback == dead)  # type: ignore[union-attr]

    result = functions.verifier.invoke(event)

    # Every attempt is final: SQS gets nothing back to redeliver to a dead callback.
    assert result == {"batchItemFailures": []}
    assert len(callbacks.gets()) == 1
    store = SubscriptionStore(functions.hub.clients, functions.hub.settings)
    assert store.get_active(TOPIC, callbacks.url(), now=time.time()) is not None
    dead_message = parse_message(dead_record["body"])
    assert store.get_pending(TOPIC, dead, dead_message.request_id) is None  # type: ignore[union-attr]


def test_a_malformed_verify_message_is_dropped_not_retried(functions: Functions) -> None:
    event = sample("verify-sqs.json")
    event["Records"][0]["body"] = "not json"

    assert functions.verifier.invoke(event) == {"batchItemFailures": []}


def test_the_sample_publish_event_enqueues_a_set(functions: Functions) -> None:
    functions.post_hub({"hub.mode": "register", "hub.topic": TOPIC})
    event = sample("hub-publish.json")
    event["headers"]["x-api-key"] = functions.hub.api_key

    response = functions.websub.invoke(event)

    assert (response["statusCode"], response["body"]) == (202, "hub.mode=accepted")
    queue_url = functions.hub.settings.events_queue_url
    [message] = functions.hub.clients.sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
    parsed = parse_message(message["Body"])
    assert isinstance(parsed, SetEvent)
    assert parsed.topic == TOPIC


def test_refusals_are_plain_text_one_liners(functions: Functions) -> None:
    response = functions.post_hub({"hub.mode": "register", "hub.topic": TOPIC}, api_key=False)

    assert response["statusCode"] == 401
    assert headers(response)["content-type"].startswith("text/plain")
    assert response["body"].strip()
    assert "\n" not in response["body"]


def test_jwks_is_served_with_a_cache_lifetime(functions: Functions) -> None:
    response = functions.get("/.well-known/jwks.json")

    assert response["statusCode"] == 200
    assert headers(response)["cache-control"] == "public, max-age=300"
    keys = json.loads(response["body"])["keys"]
    assert keys
    assert all(key["use"] == "sig" and key["kid"] and key["alg"] for key in keys)


def test_health(functions: Functions) -> None:
    response = functions.get("/health")

    assert (response["statusCode"], json.loads(response["body"])) == (200, {"status": "ok"})
