"""Callback URLs may carry tokens in their path or query: what the websub and verifier
handlers print (logs, metrics) names a callback by host and subscription id only.
Handlers invoked as Lambda would, against moto."""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from websub_peer import CallbackServer, websub_peer

from sethub.subscriptions import subscription_id

EVENTS = Path(__file__).resolve().parents[2] / "events"
TOPIC = "acme.login"


@pytest.fixture
def callbacks() -> Iterator[CallbackServer]:
    with websub_peer() as server:
        yield server


def invoke_hub(hub: Any, params: dict[str, str]) -> dict[str, Any]:
    event = copy.deepcopy(json.loads((EVENTS / "hub-subscribe.json").read_text()))
    event["body"] = urlencode(params)
    event["headers"]["x-api-key"] = hub.api_key
    return hub.function("WebSubFunction").invoke(event)  # type: ignore[no-any-return]


def verify_queue_event(hub: Any) -> dict[str, Any]:
    template = json.loads((EVENTS / "verify-sqs.json").read_text())["Records"][0]
    records = []
    queue_url = hub.settings.verify_queue_url
    while messages := hub.clients.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for message in messages:
            hub.clients.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            records.append(template | {"messageId": message["MessageId"], "body": message["Body"]})
    return {"Records": records}


def test_verifier_logs_name_callbacks_by_host_and_subscription_id(
    hub: Any, callbacks: CallbackServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in hub.env.items():
        monkeypatch.setenv(name, value)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    answering = callbacks.url("/hooks/path-t0ken", query="token=query-t0ken")
    unreachable = f"http://127.0.0.1:{closed_port}/hooks/path-t0ken?token=query-t0ken"
    assert invoke_hub(hub, {"hub.mode": "register", "hub.topic": TOPIC})["statusCode"] == 200
    for callback in (answering, unreachable):
        params = {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": callback}
        assert invoke_hub(hub, params)["statusCode"] == 202

    hub.function("VerifierFunction").invoke(verify_queue_event(hub))

    printed = capsys.readouterr().out
    assert len(callbacks.gets()) == 1
    assert "t0ken" not in printed
    assert subscription_id(TOPIC, answering) in printed
    assert subscription_id(TOPIC, unreachable) in printed
