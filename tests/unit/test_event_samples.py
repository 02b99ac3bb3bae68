"""The samples in events/ for POST /events and the dispatch queue are valid."""

from __future__ import annotations

import json
from pathlib import Path

from sethub.catalog import WSO2_EVENT_TYPES
from sethub.events import parse_request_body, validate
from sethub.messages import SetEvent, parse_message

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_there_is_a_valid_sample_for_every_wso2_event_type():
    covered = set()
    for name, uri in WSO2_EVENT_TYPES.items():
        sample = json.loads((EVENTS / f"events-{name}.json").read_text())
        assert (sample["httpMethod"], sample["path"]) == ("POST", "/events")
        (published,) = validate(parse_request_body(sample["body"]), issuer="https://hub", now=lambda: 0.0)
        covered.update(published.claims["events"])
        assert published.claims["events"] == {uri: published.claims["events"][uri]}
    assert covered == set(WSO2_EVENT_TYPES.values())


def test_dispatch_sample_holds_set_events():
    sample = json.loads((EVENTS / "dispatch-sqs.json").read_text())
    messages = [parse_message(record["body"]) for record in sample["Records"]]
    assert messages
    assert all(isinstance(message, SetEvent) for message in messages)
