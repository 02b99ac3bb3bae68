"""CAEP payloads checked at ``POST /events`` on the local stack: 400 with a problem list per event."""

from __future__ import annotations

import json
from typing import Any

from e2e_harness import LocalStackProcess

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
TOPIC = "https://idp.example.com/topics/caep-ingest"
SUB_ID = {"format": "email", "email": "ada@example.com"}


def _post(stack: LocalStackProcess, events: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    status, _, body = stack.request(
        "POST",
        "/events",
        body=json.dumps({"events": events}).encode(),
        headers={"x-api-key": stack.api_key, "Content-Type": "application/json"},
    )
    return status, json.loads(body)


def test_a_broken_caep_payload_refuses_the_batch_with_each_events_problems(
    local_stack: LocalStackProcess,
) -> None:
    assert local_stack.hub(**{"hub.mode": "register", "hub.topic": TOPIC})[0] == 200
    revoked = {
        "topic": TOPIC,
        "sub_id": SUB_ID,
        "events": {CAEP + "session-revoked": {"reason_admin": {"en": "Landspeed Policy Violation"}}},
    }
    broken = {
        "topic": TOPIC,
        "sub_id": SUB_ID,
        "events": {
            CAEP + "device-compliance-change": {
                "current_status": "noncompliant",
                "reason_admin": "Location policy violation",
            }
        },
    }

    status, answer = _post(local_stack, [revoked, broken])

    assert status == 400
    assert "accepted" not in answer
    assert answer["problems"] == [
        {
            "index": 1,
            "problems": [
                "device-compliance-change: reason_admin must be a non-empty object of language tag "
                'to message, e.g. {"en": "..."}',
                "device-compliance-change: previous_status is required",
                "device-compliance-change: current_status must be one of compliant, not-compliant "
                "(got 'noncompliant')",
            ],
        }
    ]

    fixed = {
        **broken,
        "events": {
            CAEP + "device-compliance-change": {
                "previous_status": "compliant",
                "current_status": "not-compliant",
                "reason_admin": {"en": "Location policy violation"},
            }
        },
    }
    assert len(local_stack.publish(revoked, fixed)) == 2
