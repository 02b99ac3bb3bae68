"""What webhook users expect (issue 14), through the local stack over HTTP: Standard Webhooks
signatures checked with the ``standardwebhooks`` package a receiver would use, secret
rotation with a day of overlap, and event-type filters."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from e2e_harness import wait_for  # type: ignore[import-not-found]
from standardwebhooks import Webhook, WebhookVerificationError
from subscribers import Subscriber  # type: ignore[import-not-found]

from sethub.records import DeliveryRecords
from sethub.settings import Settings
from sethub.store import SubscriptionStore
from sethub.subscriptions import subscription_id

pytestmark = pytest.mark.e2e

LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"
LOGOUT = "https://schemas.identity.wso2.org/events/session/event-type/sessionRevoked"
RESET = "https://schemas.identity.wso2.org/events/credential/event-type/credentialUpdated"


def new_secret(size: int = 32) -> str:
    return "whsec_" + base64.b64encode(os.urandom(size)).decode()


@pytest.fixture
def callbacks(subscribers: Callable[..., Subscriber]) -> Callable[[], Subscriber]:
    return lambda: subscribers(path="/hook?t=1")


def _delivery(callback: Subscriber, jti: str) -> tuple[dict[str, str], bytes]:
    found = wait_for(
        lambda: callback.bodies_with("webhook-id", jti), timeout=20, message=f"delivery of {jti}"
    )
    return found[0]  # type: ignore[no-any-return]


def _verify(secret: str, headers: dict[str, str], body: bytes) -> None:
    """What a receiver does: the package checks id, timestamp (within 5 minutes) and signature."""
    Webhook(secret).verify(body, headers, json_parse=False)


# Standard Webhooks signing


@pytest.mark.parametrize("fmt", ["jwt", "json"])
def test_a_set_delivery_verifies_with_the_standardwebhooks_package(local_stack, callbacks, fmt):
    # GIVEN a subscription with signing=standard-webhooks and a whsec_ secret
    callback, secret = callbacks(), new_secret()
    topic = f"sw.{fmt}"
    local_stack.subscribe(
        topic, callback.url, format=fmt, signing="standard-webhooks", **{"hub.secret": secret}
    )

    # WHEN an event is published
    (jti,) = local_stack.publish({"topic": topic, "events": {LOGIN: {"user": {"id": "ada"}}}})

    # THEN it arrives with webhook-id = jti, a current timestamp and a signature that verifies
    headers, body = _delivery(callback, jti)
    _verify(secret, headers, body)
    assert headers["webhook-id"] == headers["x-hub-messageid"] == jti
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 300
    assert headers["webhook-signature"].startswith("v1,")
    assert "x-hub-signature" not in headers  # one scheme per subscription
    with pytest.raises(WebhookVerificationError):
        _verify(new_secret(), headers, body)
    with pytest.raises(WebhookVerificationError):
        _verify(secret, headers, body + b" ")
    if fmt == "json":
        assert json.loads(body)["jti"] == jti


def test_published_content_is_signed_the_same_way(local_stack, callbacks):
    callback, secret = callbacks(), new_secret(64)
    local_stack.subscribe("sw.raw", callback.url, signing="standard-webhooks", **{"hub.secret": secret})

    status, _, _ = local_stack.request(
        "POST",
        "/hub?hub.mode=publish&hub.topic=sw.raw",
        body=b"<feed>raw content</feed>",
        headers={"x-api-key": local_stack.api_key, "Content-Type": "application/atom+xml"},
    )

    assert status == 202
    headers, body = wait_for(lambda: callback.posts, timeout=20, message="content delivery")[0]
    assert body == b"<feed>raw content</feed>"
    assert headers["content-type"] == "application/atom+xml"
    _verify(secret, headers, body)


def test_every_retry_carries_the_same_id_and_a_signature_of_its_own_attempt(start_local_stack, callbacks):
    stack = start_local_stack(SETHUB_RETRY_SCHEDULE="0,0,0")
    callback, secret = callbacks(), new_secret()
    callback.failures = 2
    stack.subscribe("sw.retry", callback.url, signing="standard-webhooks", **{"hub.secret": secret})

    (jti,) = stack.publish({"topic": "sw.retry", "events": {LOGIN: {}}})

    attempts = wait_for(
        lambda: len(callback.posts) >= 3 and callback.bodies_with("webhook-id", jti),
        timeout=40,
        message="three attempts",
    )
    assert len(attempts) == 3
    assert len({body for _, body in attempts}) == 1
    for headers, body in attempts:
        _verify(secret, headers, body)


def test_after_a_new_secret_both_sign_and_a_renewal_keeps_the_overlap(local_stack, callbacks):
    # GIVEN a subscription whose secret is then replaced by a re-subscription
    callback, old, new = callbacks(), new_secret(), new_secret(24)
    topic = "sw.rotate"
    local_stack.subscribe(topic, callback.url, signing="standard-webhooks", **{"hub.secret": old})
    (first,) = local_stack.publish({"topic": topic, "events": {LOGIN: {}}})
    one_headers, one_body = _delivery(callback, first)
    _resubscribe(local_stack, topic, callback, signing="standard-webhooks", **{"hub.secret": new})
    (second_jti,) = local_stack.publish({"topic": topic, "events": {LOGIN: {}}})
    second = _delivery(callback, second_jti)

    # THEN before the rotation one signature; after it, one per secret, and each verifies alone
    assert len(one_headers["webhook-signature"].split(" ")) == 1
    _verify(old, one_headers, one_body)
    headers, body = second
    assert len(headers["webhook-signature"].split(" ")) == 2
    _verify(new, headers, body)
    _verify(old, headers, body)

    # WHEN the subscriber renews with the new secret (a lease renewal), the old one still signs
    _resubscribe(local_stack, topic, callback, signing="standard-webhooks", **{"hub.secret": new})
    (third,) = local_stack.publish({"topic": topic, "events": {LOGIN: {}}})
    headers, body = _delivery(callback, third)
    _verify(old, headers, body)
    _verify(new, headers, body)


def _resubscribe(stack: Any, topic: str, callback: Subscriber, **params: str) -> None:
    """Subscribe again and wait until the hub applied it (the subscription's request time changes)."""
    store = SubscriptionStore(stack.clients, Settings.from_env(stack.provisioned.env_for("DispatchFunction")))

    def requested_at() -> int:
        return next(
            s.requested_at for s in store.list_active(topic, now=time.time())[0] if s.callback == callback.url
        )

    before = requested_at()
    status, body = stack.hub(
        **{"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": callback.url}, **params
    )
    assert (status, body) == (202, b"hub.mode=accepted")
    wait_for(lambda: requested_at() != before, timeout=20, message="the re-subscription verified")


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({}, b"needs a hub.secret"),
        ({"hub.secret": "not-a-whsec-secret"}, b"whsec_"),
        ({"hub.secret": "whsec_" + base64.b64encode(os.urandom(23)).decode()}, b"24 to 64"),
        ({"hub.secret": "whsec_" + base64.b64encode(os.urandom(65)).decode()}, b"24 to 64"),
        ({"hub.secret": "whsec_not*base64*at*all*not*base64*at*all*"}, b"whsec_"),
    ],
)
def test_a_standard_webhooks_subscription_without_a_proper_secret_is_refused(
    local_stack, callbacks, extra, reason
):
    callback = callbacks()
    assert local_stack.hub(**{"hub.mode": "register", "hub.topic": "sw.refused"})[0] == 200

    status, body = local_stack.hub(
        **{"hub.mode": "subscribe", "hub.topic": "sw.refused", "hub.callback": callback.url},
        signing="standard-webhooks",
        **extra,
    )

    assert 400 <= status < 500
    assert reason in body
    if "hub.secret" in extra:
        assert extra["hub.secret"].encode() not in body
    assert callback.posts == []


# Event-type filters


def test_only_the_listed_event_types_are_delivered(local_stack, callbacks):
    # GIVEN a subscriber filtering on two types (comma and space separated) and one taking all
    filtered, everything = callbacks(), callbacks()
    topic = "filters.login"
    local_stack.subscribe(topic, filtered.url, events=f"{LOGIN}, {LOGOUT}")
    local_stack.subscribe(topic, everything.url, register=False)

    # WHEN events of a listed type, of another type, and raw content are published
    (reset, login, logout) = local_stack.publish(
        {"topic": topic, "events": {RESET: {}}},
        {"topic": topic, "events": {LOGIN: {}}},
        {"topic": topic, "events": {LOGOUT: {}}},
    )
    status, _, _ = local_stack.request(
        "POST",
        f"/hub?hub.mode=publish&hub.topic={topic}",
        body=b"untyped",
        headers={"x-api-key": local_stack.api_key, "Content-Type": "text/plain"},
    )
    assert status == 202

    # THEN the unfiltered subscriber gets all four, the filtered one only the listed types
    wait_for(lambda: len(everything.posts) >= 4, timeout=20, message="four deliveries")
    wait_for(
        lambda: {filtered_jti(h) for h, _ in filtered.posts} >= {login, logout},
        timeout=20,
        message="the listed types",
    )
    records = DeliveryRecords(
        local_stack.clients, Settings.from_env(local_stack.provisioned.env_for("DispatchFunction"))
    )
    # The credential event's deliveries are settled (recorded) and none went to the filter.
    attempts = wait_for(lambda: records.for_event(reset), timeout=20, message="records of the reset")
    assert [a.subscription_id for a in attempts] == [subscription_id(topic, everything.url)]
    assert {filtered_jti(h) for h, _ in filtered.posts} == {login, logout}
    assert all(body != b"untyped" for _, body in filtered.posts)


def filtered_jti(headers: dict[str, str]) -> str:
    return headers["x-hub-messageid"]


def test_a_filter_with_a_control_character_is_refused(local_stack, callbacks):
    callback = callbacks()
    assert local_stack.hub(**{"hub.mode": "register", "hub.topic": "filters.bad"})[0] == 200

    status, _ = local_stack.hub(
        **{"hub.mode": "subscribe", "hub.topic": "filters.bad", "hub.callback": callback.url},
        events=f"{LOGIN}\x07",
    )

    assert status == 400
    assert callback.posts == []


# Disabling dead endpoints


def test_a_dead_endpoint_is_disabled_told_and_enabled_again_by_subscribing(start_local_stack, callbacks):
    # GIVEN a hub that disables after 1 s of failures, and a subscriber that always fails
    stack = start_local_stack(SETHUB_DISABLE_AFTER_SECONDS="1", SETHUB_RETRY_SCHEDULE="1,1,1,1,1,1,1,1")
    dead, healthy = callbacks(), callbacks()
    dead.failures = 10**6
    topic = "disable.login"
    stack.subscribe(topic, dead.url)
    stack.subscribe(topic, healthy.url, register=False)

    # WHEN events are published and its deliveries keep failing
    jtis = stack.publish({"topic": topic, "events": {LOGIN: {}}}, {"topic": topic, "events": {LOGIN: {}}})

    # THEN it gets a denial GET with a reason, and is no longer subscribed
    denial = wait_for(
        lambda: [g for g in dead.gets if g.get("hub.mode") == "denied"], timeout=30, message="the denial"
    )[0]
    assert denial["hub.topic"] == topic
    assert "no successful delivery" in denial["hub.reason"]
    assert dead.url not in stack.active_callbacks(topic)
    # its pending retries become dead letters, with the reason: every event it was sent (an
    # event dispatched after the disabling is not sent to it at all)
    env = stack.provisioned.env_for("DispatchFunction")
    letters: dict[str, dict[str, Any]] = {}

    def failed() -> set[str]:
        with dead.lock:
            return {headers["x-hub-messageid"] for headers, _ in dead.posts}

    assert failed()

    def dead_letters() -> bool:
        answer = stack.clients.sqs.receive_message(
            QueueUrl=env["SETHUB_DEAD_LETTER_QUEUE_URL"], MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in answer.get("Messages", []):
            body = json.loads(message["Body"])
            letters[body["jti"]] = body
        return set(letters) >= failed()

    wait_for(dead_letters, timeout=30, message="the failed events dead-lettered")
    assert set(letters) == failed()
    assert all("disabled" in letter["last_error"] for letter in letters.values())
    # the healthy subscriber was never held up: it got both
    wait_for(
        lambda: {h["x-hub-messageid"] for h, _ in healthy.posts} >= set(jtis), timeout=20, message="both"
    )
    # and nothing more is sent to the disabled endpoint
    posts_before = len(dead.posts)
    (later,) = stack.publish({"topic": topic, "events": {LOGIN: {}}})
    wait_for(lambda: healthy.bodies_with("x-hub-messageid", later), timeout=20, message="the later event")
    records = DeliveryRecords(stack.clients, Settings.from_env(env))
    attempts = wait_for(lambda: records.for_event(later), timeout=20, message="records of the later event")
    assert [a.subscription_id for a in attempts] == [subscription_id(topic, healthy.url)]
    assert len(dead.posts) == posts_before

    # WHEN it recovers and subscribes again, THEN it receives events again
    dead.failures = 0
    stack.subscribe(topic, dead.url, register=False)
    (again,) = stack.publish({"topic": topic, "events": {LOGIN: {}}})
    wait_for(
        lambda: dead.bodies_with("x-hub-messageid", again),
        timeout=20,
        message="delivery after re-subscribing",
    )
