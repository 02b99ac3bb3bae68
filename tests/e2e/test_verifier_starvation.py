"""Verifier starvation (issue 11, finding 3) through the local stack: 50 subscribe requests
naming callbacks on a host that never answers do not hold up a normal subscriber."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from e2e_harness import StartLocalStack, wait_for  # type: ignore[import-not-found]
from websub_peer import CallbackServer, StallServer, websub_peer

from sethub.hostlimits import SLOTS_PER_HOST

STALLED_REQUESTS = 50


@pytest.fixture
def stall() -> Iterator[StallServer]:
    server = StallServer()
    yield server
    server.close()


@pytest.fixture
def callbacks() -> Iterator[CallbackServer]:
    with websub_peer() as server:
        yield server


def test_a_normal_subscriber_is_verified_while_fifty_callbacks_stall(
    start_local_stack: StartLocalStack, stall: StallServer, callbacks: CallbackServer
) -> None:
    # The longest timeout the template allows: the stalled GETs stay in flight throughout.
    # A public hub with open topics: what costs the verifier is anyone's to ask for there.
    # Lambda runs up to the verifier mapping's MaximumConcurrency (10) pollers; the local default
    # of 2 would leave every poller waiting on a stalled GET, which AWS does not.
    stack = start_local_stack(
        SETHUB_DELIVERY_TIMEOUT_SECONDS="15",
        SETHUB_PUBLIC_HUB="true",
        SETHUB_OPEN_TOPICS="true",
        SETHUB_LOCAL_POLLERS="8",
    )
    topic = f"starve.{uuid.uuid4().hex[:8]}"

    # GIVEN 50 subscribe requests naming callbacks on a host that never answers
    for n in range(STALLED_REQUESTS):
        status, _ = stack.hub(
            **{"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": stall.url(f"/s{n}")}
        )
        assert status == 202
    wait_for(lambda: stall.open_now > 0, timeout=20, message="the stalling host is being verified")

    # WHEN a normal subscriber subscribes after them
    normal = callbacks.url("/normal")
    status, _ = stack.hub(**{"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": normal})
    assert status == 202

    # THEN it is verified while the stalled GETs are still hanging
    wait_for(
        lambda: normal in stack.active_callbacks(topic), timeout=30, message="normal subscriber verified"
    )
    assert stall.open_now > 0
    # ... and the stalling host never had more than its slots' worth of GETs at once
    assert stall.most_open <= SLOTS_PER_HOST
    assert not any(callback.startswith(stall.url("")) for callback in stack.active_callbacks(topic))
