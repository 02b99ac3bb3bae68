"""The local stack refuses what the deployed roles would refuse: each function's AWS calls go
through an endpoint that applies its role from the SAM-transformed template."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import ROOT, wait_for  # type: ignore[import-not-found]
from websub_peer import CallbackServer, websub_peer  # type: ignore[import-not-found]

from devstack.template import load_template

TOPIC = "acme.roles"


@pytest.fixture
def peer() -> Iterator[CallbackServer]:
    with websub_peer() as server:
        yield server


def _without_action(template: dict[str, Any], function: str, action: str) -> dict[str, Any]:
    """``template`` with ``action`` taken out of ``function``'s inline policy statements."""
    removed = 0
    for policy in template["Resources"][function]["Properties"]["Policies"]:
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            actions = statement.get("Action")
            if isinstance(actions, list) and action in actions:
                actions.remove(action)
                removed += 1
    assert removed, f"{function} has no {action} to remove"
    return template


@pytest.fixture
def verifier_without_condition_check() -> Iterator[Path]:
    """template.yaml whose verifier role lacks dynamodb:ConditionCheckItem (the fault of issue 10),
    written beside it so that its CodeUri folders resolve."""
    template = _without_action(
        load_template(ROOT / "template.yaml"), "VerifierFunction", "dynamodb:ConditionCheckItem"
    )
    path = ROOT / f".e2e-{uuid.uuid4().hex[:8]}.template.json"
    path.write_text(json.dumps(template))
    yield path
    path.unlink()


def test_a_verified_subscription_needs_the_verifiers_condition_check_grant(
    start_local_stack, peer, verifier_without_condition_check
):
    # GIVEN a stack whose verifier role lacks the action AWS checks for the ConditionCheck item
    stack = start_local_stack(template=verifier_without_condition_check)
    callback = peer.url("/cb")
    assert stack.hub(**{"hub.mode": "register", "hub.topic": TOPIC})[0] == 200
    # WHEN a subscriber asks and answers its challenge
    status, _ = stack.hub(**{"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": callback})
    assert status == 202
    peer.wait_for(lambda: bool(peer.gets("/cb")), timeout=30)
    # THEN the transaction that would activate it is refused as AWS refuses it, and it stays inactive
    wait_for(
        lambda: "refused dynamodb:ConditionCheckItem" in stack.output,
        timeout=30,
        message="the verifier's ConditionCheckItem refused",
    )
    assert callback not in stack.active_callbacks(TOPIC)


def test_with_the_templates_own_roles_the_same_subscription_becomes_active(local_stack, peer):
    callback = peer.url("/ok")
    local_stack.subscribe(f"{TOPIC}.ok", callback)
    assert callback in local_stack.active_callbacks(f"{TOPIC}.ok")
    assert "devstack IAM" not in local_stack.output
