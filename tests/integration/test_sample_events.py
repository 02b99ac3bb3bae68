"""Every sample event in events/ runs through the handler the template routes it to.

These are the files a user with Docker passes to ``sam local invoke -e``; here they go
to the real handlers against moto: API Gateway events to their route's function (no
5xx), SQS events to the function their queue feeds (no batch item failures).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "events").glob("*.json"))


def _is_sqs(event: dict[str, Any]) -> bool:
    return bool(event.get("Records")) and event["Records"][0].get("eventSource") == "aws:sqs"


def _function_for(event: dict[str, Any], hub) -> str:
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


def test_there_are_samples_of_both_kinds():
    events = [json.loads(path.read_text()) for path in SAMPLES]

    assert any(_is_sqs(event) for event in events)
    assert any("httpMethod" in event for event in events)


@pytest.mark.parametrize("path", SAMPLES, ids=[path.name for path in SAMPLES])
def test_sample_event_is_handled(path, hub, monkeypatch):
    event = json.loads(path.read_text())
    for name, value in hub.env.items():
        monkeypatch.setenv(name, value)
    logical_id = _function_for(event, hub)
    function = hub.function(logical_id)  # its AWS calls authorised by its role

    result = function.invoke(event)

    if _is_sqs(event):
        assert result == {"batchItemFailures": []}
    else:
        assert result["statusCode"] < 500, result.get("body")
