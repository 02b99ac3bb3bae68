"""SSF streams by status, the dashboard's ``SsfStreams`` gauge, on moto with the functions' roles.

GIVEN a receiver, WHEN it creates a stream and pauses it through the SSF function, THEN
each change is followed by the count of streams by status in the function's EMF output;
AND dispatch, which disables failing streams, counts them on its first batch (and every
five minutes after)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hubs import local_receiver_token

from devstack.gateway import proxy_event


def stream_counts(output: str) -> list[dict[str, float]]:
    """Each count of the output: status -> streams, in the order written."""
    counts: list[dict[str, float]] = []
    for line in output.splitlines():
        if '"SsfStreams"' not in line:
            continue
        document = json.loads(line)
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "sethub"
        assert directive["Dimensions"] == [["service", "status"]]
        value = document["SsfStreams"]
        status = document["status"]
        if not counts or status in counts[-1]:
            counts.append({})
        counts[-1][status] = value[0] if isinstance(value, list) else value
    return counts


def test_stream_changes_and_dispatch_publish_the_streams_by_status(
    hub: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    for name, value in hub.env.items():  # the functions' environment (their handlers read it)
        monkeypatch.setenv(name, value)
    ssf = hub.function("SsfFunction")
    bearer = [("Authorization", f"Bearer {local_receiver_token(hub, 'ssf.manage ssf.read')}")]
    json_body = [*bearer, ("Content-Type", "application/json")]
    capsys.readouterr()

    # WHEN a receiver creates a stream, reads it (no change), then pauses it
    created = ssf.invoke(
        proxy_event(
            resource="/ssf/stream", method="POST", headers=json_body, body=b'{"events_requested": []}'
        )
    )
    assert created["statusCode"] == 201, created["body"]
    stream_id = json.loads(created["body"])["stream_id"]
    ssf.invoke(proxy_event(resource="/ssf/stream", method="GET", headers=bearer))
    paused = ssf.invoke(
        proxy_event(
            resource="/ssf/status",
            method="POST",
            headers=json_body,
            body=json.dumps({"stream_id": stream_id, "status": "paused"}).encode(),
        )
    )
    assert paused["statusCode"] == 200, paused["body"]

    # THEN one count per change, every status present
    assert stream_counts(capsys.readouterr().out) == [
        {"enabled": 1, "paused": 0, "disabled": 0},
        {"enabled": 0, "paused": 1, "disabled": 0},
    ]

    # AND dispatch counts them with its role (its first batch; later ones within five minutes do not)
    dispatch = hub.function("DispatchFunction")
    for _ in range(2):
        assert dispatch.invoke({"Records": []}) == {"batchItemFailures": []}
    assert stream_counts(capsys.readouterr().out) == [{"enabled": 0, "paused": 1, "disabled": 0}]
