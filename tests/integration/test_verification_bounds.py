"""What one callback can cost the verifier (issue 11, finding 3), on moto's DynamoDB and
real callback servers on 127.0.0.1: one pending request per (topic, callback), final
attempts, GETs of a batch side by side, per-host slots, and denials limited per host."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websub_peer import CallbackServer, StallServer, websub_peer

from sethub.hostlimits import HostLimits
from sethub.messages import DenySubscription, VerifyIntent
from sethub.outbound import GuardedHttp
from sethub.settings import Settings
from sethub.store import SubscriptionStore
from sethub.subscriptions import REQUEST_PREFIX, topic_key
from sethub.verification import MAX_DEFERRALS, MAX_RESPONSE_BYTES, Verifier

TOPIC = "acme.login"
WAIT_SECONDS = 15.0


@pytest.fixture
def stall() -> Iterator[StallServer]:
    server = StallServer()
    yield server
    server.close()


@pytest.fixture
def callbacks() -> Iterator[CallbackServer]:
    with websub_peer() as server:
        yield server


@dataclasses.dataclass
class Rig:
    settings: Settings
    store: SubscriptionStore
    limits: HostLimits
    verifier: Verifier
    requeued: list[tuple[VerifyIntent, int]]

    def request(self, callback: str, topic: str = TOPIC) -> VerifyIntent:
        request_id = self.store.put_pending(
            mode="subscribe",
            topic=topic,
            callback=callback,
            format="jwt",
            secret=None,
            lease_seconds=3600,
            requested_at=time.time_ns(),
        )
        return VerifyIntent(topic=topic, callback=callback, request_id=request_id)

    def pending_items(self, topic: str = TOPIC) -> list[dict[str, Any]]:
        result = self.store._db.query(
            TableName=self.settings.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :req)",
            ExpressionAttributeValues={":pk": {"S": topic_key(topic)}, ":req": {"S": REQUEST_PREFIX}},
        )
        return list(result.get("Items", []))


@pytest.fixture
def rig(hub: Any) -> Rig:
    settings = dataclasses.replace(hub.settings, delivery_timeout_seconds=1.0, open_topics=True)
    store = SubscriptionStore(hub.clients, settings)
    limits = HostLimits(hub.clients, settings, denials=3)
    requeued: list[tuple[VerifyIntent, int]] = []
    http = GuardedHttp.from_settings(settings, max_response_bytes=MAX_RESPONSE_BYTES)
    verifier = Verifier(
        store, http, limits=limits, requeue=lambda message, delay: requeued.append((message, delay))
    )
    return Rig(settings, store, limits, verifier, requeued)


def test_a_flood_of_requests_for_one_callback_leaves_one_pending_request_and_one_get(
    rig: Rig, callbacks: CallbackServer
) -> None:
    messages = [rig.request(callbacks.url()) for _ in range(50)]

    assert len(rig.pending_items()) == 1
    outcomes = [outcome.kind for outcome in rig.verifier.process_all(messages)]  # type: ignore[union-attr]

    assert outcomes.count("verified") == 1
    assert outcomes.count("expired") == 49  # replaced before they were verified: no GET
    assert len(callbacks.gets()) == 1
    assert rig.pending_items() == []


def test_a_callback_that_never_answers_is_final_and_delays_no_one_in_its_batch(
    rig: Rig, stall: StallServer, callbacks: CallbackServer
) -> None:
    stalled = rig.request(stall.url())
    normal = rig.request(callbacks.url())

    # WHEN both are verified in one batch
    results = rig.verifier.process_all([stalled, normal])

    # THEN the stalled one failed for good (the batch raised nothing for SQS to redeliver),
    # its request is spent, and the normal subscriber is verified
    assert [getattr(result, "kind", result) for result in results] == ["failed", "verified"]
    assert rig.store.get_pending(TOPIC, stall.url(), stalled.request_id) is None
    assert rig.store.get_active(TOPIC, callbacks.url(), now=time.time()) is not None
    assert stall.accepted == 1


def test_a_busy_host_gets_no_more_gets_and_its_verifications_wait_then_give_up(
    rig: Rig, callbacks: CallbackServer
) -> None:
    # GIVEN every slot of the callback's host held (GETs in flight elsewhere)
    host = callbacks.base_url.removeprefix("http://")
    held = [rig.limits.acquire(host) for _ in range(rig.limits.slots)]
    assert all(held)
    message = rig.request(callbacks.url())

    # WHEN its verification comes up, it is put back on the queue with a delay, unsent
    outcome = rig.verifier.verify(message)
    assert outcome.kind == "deferred"
    [(again, delay)] = rig.requeued
    assert (again.request_id, again.deferrals) == (message.request_id, 1)
    assert delay > 0
    assert callbacks.gets() == []

    # ... until it has waited MAX_DEFERRALS times: then it is given up, and its request spent
    assert rig.verifier.verify(dataclasses.replace(message, deferrals=MAX_DEFERRALS)).kind == "throttled"
    assert rig.store.get_pending(TOPIC, callbacks.url(), message.request_id) is None

    # AND once a slot is free again, the host's callbacks are verified
    for slot in held:
        rig.limits.release(slot)  # type: ignore[arg-type]
    assert rig.verifier.verify(rig.request(callbacks.url())).kind == "verified"


def test_denials_to_one_host_are_limited_per_window(rig: Rig, callbacks: CallbackServer) -> None:
    denials = [
        DenySubscription(topic=f"unknown.{n}", callback=callbacks.url(f"/cb{n}"), reason="unknown topic")
        for n in range(5)
    ]

    # One after the other: side by side, a denial finding the host's GET slots all taken is
    # dropped too (also "throttled"), which would blur the count per window tested here.
    outcomes = [rig.verifier.process(denial).kind for denial in denials]

    assert sorted(outcomes) == ["denied"] * 3 + ["throttled"] * 2
    assert len(callbacks.gets()) == 3
    assert {get.params["hub.mode"] for get in callbacks.gets()} == {"denied"}


def test_a_denial_to_a_callback_that_never_answers_is_not_retried(rig: Rig, stall: StallServer) -> None:
    outcome = rig.verifier.deny(
        DenySubscription(topic="unknown", callback=stall.url(), reason="unknown topic")
    )

    assert outcome.kind == "denied"
    assert "did not answer" in outcome.detail
    assert stall.accepted == 1
