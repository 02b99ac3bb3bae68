"""Every sample event in events/ works the way the README uses it.

These are the files a user with Docker passes to ``sam local invoke -e``. Here each one
goes to the real handler of the function the template routes it to, against a hub set up
as the README says (the local admin key, and the topics its ``sam local`` section
registers, registered through the API), and must be accepted: ``202`` with what was
accepted for the API samples, no batch item failures for the SQS ones.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from hubs import build_hub

from devstack.gateway import proxy_event
from devstack.provision import DEFAULT_API_KEY

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SAMPLES = sorted((ROOT / "events").glob("*.json"))
FORM = "application/x-www-form-urlencoded"

# What Lambda puts in every SQS record it hands to a function.
SQS_RECORD_KEYS = {
    "messageId",
    "receiptHandle",
    "body",
    "attributes",
    "messageAttributes",
    "md5OfBody",
    "eventSource",
    "eventSourceARN",
    "awsRegion",
}


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _is_sqs(event: dict[str, Any]) -> bool:
    return bool(event.get("Records")) and event["Records"][0].get("eventSource") == "aws:sqs"


def _function_for(event: dict[str, Any], hub: Any) -> str:
    provisioned = hub.provisioned
    if _is_sqs(event):
        queue_name = event["Records"][0]["eventSourceARN"].rsplit(":", 1)[1]
        for mapping in provisioned.event_sources:
            if queue_name.endswith(f"-{mapping.queue}") or queue_name == mapping.queue:
                return str(mapping.function)
        pytest.fail(f"no function consumes a queue named like {queue_name}")
    for route in provisioned.routes:
        if route.path == event.get("resource", event.get("path")) and route.method == event["httpMethod"]:
            return str(route.function)
    pytest.fail(f"no route for {event.get('httpMethod')} {event.get('path')}")


def _readme_topics() -> list[str]:
    """The topics the README's ``sam local`` section registers (its shell loop, expanded by bash)."""
    match = re.search(r"^for topic in (.+); do$", README, flags=re.MULTILINE)
    assert match, "the README registers the samples' topics with a 'for topic in ...; do' loop"
    expanded = subprocess.run(
        ["bash", "-c", f"printf '%s\\n' {match.group(1)}"], capture_output=True, text=True, check=True
    )
    return expanded.stdout.split()


def _published(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of a ``POST /events`` body: one event, or ``{"events": [...]}``."""
    body = json.loads(event["body"])
    return body["events"] if isinstance(body.get("events"), list) else [body]  # type: ignore[no-any-return]


def _hub_params(event: dict[str, Any]) -> dict[str, str]:
    params = dict(event.get("queryStringParameters") or {})
    if event["headers"].get("Content-Type") == FORM:
        params.update({name: values[-1] for name, values in parse_qs(event["body"]).items()})
    return params


def _sample_topics() -> set[str]:
    """Every topic an API sample publishes or subscribes to, and every topic of a queued event."""
    topics: set[str] = set()
    for path in SAMPLES:
        event = _load(path)
        if _is_sqs(event):
            topics.update(json.loads(record["body"])["topic"] for record in event["Records"])
        elif event["resource"] == "/events":
            topics.update(item["topic"] for item in _published(event))
        else:
            topics.add(_hub_params(event)["hub.topic"])
    return topics


def _queued(hub: Any, queue_url: str) -> list[dict[str, Any]]:
    """The bodies now on a queue, removed from it."""
    bodies: list[dict[str, Any]] = []
    while messages := hub.clients.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for message in messages:
            hub.clients.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            bodies.append(json.loads(message["Body"]))
    return bodies


@pytest.fixture(scope="module")
def readme_hub(moto_endpoint: str, template: dict[str, Any]) -> Iterator[Any]:
    """One hub for the module, set up as the README says: the local admin key, the README's
    topics registered through the API. Each sample's test takes what it queued off the queues."""
    hub = build_hub(moto_endpoint, template)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in hub.env.items():
            patch.setenv(name, value)
        assert hub.api_key == DEFAULT_API_KEY
        websub = hub.function("WebSubFunction")
        for topic in _readme_topics():
            # curl -X POST $API/hub -H "x-api-key: local-dev-key" -d hub.mode=register -d hub.topic=...
            register = proxy_event(
                resource="/hub",
                method="POST",
                headers=[("Host", "127.0.0.1:3000"), ("Content-Type", FORM), ("x-api-key", DEFAULT_API_KEY)],
                body=urlencode({"hub.mode": "register", "hub.topic": topic}).encode(),
            )
            answer = websub.invoke(register)
            assert (answer["statusCode"], answer["body"]) == (200, "hub.mode=accepted"), topic
        yield hub
    hub.close()


def test_there_are_samples_of_both_kinds() -> None:
    events = [_load(path) for path in SAMPLES]

    assert any(_is_sqs(event) for event in events)
    assert any("httpMethod" in event for event in events)


def test_the_readme_registers_every_topic_the_samples_use() -> None:
    assert _sample_topics() <= set(_readme_topics())


def test_the_readme_invokes_each_sample_with_the_function_its_route_reaches(readme_hub: Any) -> None:
    invocations = re.findall(r"sam local invoke (\w+) -e events/([\w.-]+\.json)", README)

    assert invocations
    for function, name in invocations:
        assert _function_for(_load(ROOT / "events" / name), readme_hub) == function, name


@pytest.mark.parametrize("path", SAMPLES, ids=[path.name for path in SAMPLES])
def test_sample_is_a_complete_event_as_aws_sends_it(path: Path) -> None:
    event = _load(path)
    if _is_sqs(event):
        for record in event["Records"]:
            assert set(record) == SQS_RECORD_KEYS
            assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        return
    # devstack's builder writes every field API Gateway's REST proxy integration sends.
    reference = proxy_event(resource=event["resource"], method=event["httpMethod"], body=b"x")
    assert set(event) == set(reference)
    assert set(event["requestContext"]) == set(reference["requestContext"])
    assert event["requestContext"]["resourcePath"] == event["resource"]
    assert event["requestContext"]["httpMethod"] == event["httpMethod"]
    assert {name: [value] for name, value in event["headers"].items()} == event["multiValueHeaders"]
    single_query = event["queryStringParameters"] or {}
    assert {name: [value] for name, value in single_query.items()} == (
        event["multiValueQueryStringParameters"] or {}
    )
    assert event["headers"]["x-api-key"] == DEFAULT_API_KEY
    assert event["isBase64Encoded"] is False


@pytest.mark.parametrize("path", SAMPLES, ids=[path.name for path in SAMPLES])
def test_sample_is_accepted_by_its_function(path: Path, readme_hub: Any) -> None:
    hub = readme_hub
    event = _load(path)
    function = hub.function(_function_for(event, hub))  # its AWS calls authorised by its role

    result = function.invoke(event)

    if _is_sqs(event):
        assert result == {"batchItemFailures": []}
        return
    assert result["statusCode"] == 202, result.get("body")
    if event["resource"] == "/events":
        sent = _published(event)
        assert json.loads(result["body"]) == {
            "accepted": [{"jti": item["jti"], "topic": item["topic"]} for item in sent]
        }
        queued = _queued(hub, hub.settings.events_queue_url)
        assert [(message["topic"], message["claims"]["jti"]) for message in queued] == [
            (item["topic"], item["jti"]) for item in sent
        ]
        return
    params = _hub_params(event)
    assert result["body"] == "hub.mode=accepted"
    if params["hub.mode"] == "subscribe":
        (intent,) = _queued(hub, hub.settings.verify_queue_url)
        assert (intent["kind"], intent["topic"], intent["callback"]) == (
            "verify",
            params["hub.topic"],
            params["hub.callback"],
        )
    else:
        (published,) = _queued(hub, hub.settings.events_queue_url)
        assert (published["kind"], published["topic"]) == ("set", params["hub.topic"])
