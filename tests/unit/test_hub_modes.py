"""The hub's request handling (``websub.Hub``) against a hub table and queues in moto.

What a caller sees (status and one-line reason), what the table holds afterwards (the
pending request, topics) and what is queued (verifications, denials, events). One table and
one set of queues for the module in in-process moto (tests/lean_aws.py); every test
uses topics of its own.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import pytest
from lean_aws import LeanHub, build_lean_hub, in_process_aws

from sethub.credentials.checker import MISSING_KEY, UNKNOWN_KEY
from sethub.errors import BadRequestError, ConfigurationError, PayloadTooLargeError, UpstreamError
from sethub.events import NON_FINITE_REASON
from sethub.ingest import Ingestor
from sethub.limits import MAX_CALLBACK_CHARS, MAX_CONTENT_BYTES, MAX_TOPIC_CHARS
from sethub.messages import ContentEvent, DenySubscription, Message, SetEvent, VerifyIntent
from sethub.outbound import GuardedHttp
from sethub.secretbox import encryption_context
from sethub.store import SubscriptionStore
from sethub.subscriptions import PendingRequest, request_key, topic_key
from sethub.verification import UNKNOWN_TOPIC
from sethub.websub import (
    ACCEPTED,
    FETCH_FAILED,
    MAX_FORM_FIELDS,
    MAX_HUB_BODY_BYTES,
    Hub,
    HubReply,
    parse_hub_request,
)

FORM = "application/x-www-form-urlencoded"
BASE = "https://hub.example"
CALLBACK = "https://93.184.215.14/hooks/set?token=abc"
"""A public address literal: vetted without a DNS lookup, never contacted (verification is queued)."""
LOGIN = "https://schemas.openid.net/secevent/caep/event-type/session-established"


@pytest.fixture(scope="module")
def lean() -> Iterator[LeanHub]:
    with in_process_aws():
        yield build_lean_hub()


@pytest.fixture(scope="module")
def keys(lean: LeanHub) -> dict[str, str]:
    return {
        "admin": lean.add_key("admin"),
        "publisher": lean.add_key("publisher"),
        "acme-publisher": lean.add_key("publisher", topics=("acme.*",)),
        "subscriber": lean.add_key("subscriber"),
        "other-subscriber": lean.add_key("subscriber"),
    }


@pytest.fixture
def topic(lean: LeanHub) -> str:
    """A registered topic of this test's own."""
    name = f"acme.{uuid.uuid4().hex[:12]}"
    SubscriptionStore(lean.clients, lean.settings).register_topic(name)
    return name


def hub_of(lean: LeanHub, **settings: Any) -> Hub:
    return Hub(lean.clients, lean.with_settings(**settings))


def send(
    hub: Hub,
    *,
    form: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: bytes = b"",
    content_type: str | None = None,
    key: str | None = None,
    now: float | None = None,
) -> HubReply:
    """``POST /hub`` as the handler passes it on: parsed, then handled."""
    if form is not None:
        body, content_type = urlencode(form).encode(), FORM
    request = parse_hub_request(query=query, body=body, content_type=content_type)
    headers = {"X-Api-Key": key} if key is not None else None
    return hub.handle(request, headers=headers, base_url=BASE, now=now)


def queued(lean: LeanHub, queue_url: str, topic: str) -> list[Message]:
    return [m for m in lean.messages(queue_url) if getattr(m, "topic", None) == topic]


def pending(
    lean: LeanHub, topic: str, callback: str = CALLBACK, *, now: float | None = None
) -> PendingRequest:
    (message,) = queued(lean, lean.settings.verify_queue_url, topic)
    assert isinstance(message, VerifyIntent)
    assert message.callback == callback
    found = SubscriptionStore(lean.clients, lean.settings).get_pending(
        topic, callback, message.request_id, now=now
    )
    assert found is not None
    return found


def subscribe(topic: str, callback: str = CALLBACK, **extra: str) -> dict[str, str]:
    return {"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": callback, **extra}


# Subscribers


def test_a_subscription_request_is_stored_and_its_verification_queued(lean, keys, topic):
    reply = send(hub_of(lean), form=subscribe(topic, **{"hub.secret": "s3cret"}), key=keys["subscriber"])

    assert (reply.status, reply.body) == (202, ACCEPTED)
    request = pending(lean, topic)
    assert (request.mode, request.topic, request.callback) == ("subscribe", topic, CALLBACK)
    assert (request.format, request.signing, request.events) == ("jwt", "websub", frozenset())
    assert request.lease_seconds == lean.settings.default_lease_seconds
    assert request.requester is not None
    assert request.owner == request.requester
    assert not request.override
    assert request.secret_ciphertext is not None
    box = SubscriptionStore(lean.clients, lean.settings).secretbox
    assert box.decrypt(request.secret_ciphertext, encryption_context(topic, CALLBACK)) == b"s3cret"
    # As an operator reading the table sees it: the defaults spelt out, nothing extra.
    item = lean.item(topic_key(topic), request_key(CALLBACK))
    assert item is not None
    assert (item["mode"], item["format"]) == ({"S": "subscribe"}, {"S": "jwt"})
    assert not {"signing", "events", "override"} & set(item)


def test_subscribe_keeps_format_lease_signing_and_event_filter(lean, keys, topic):
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"  # base64 of 24 bytes
    form = subscribe(
        topic,
        format=" JSON ",
        signing="standard-webhooks",
        events=f"{LOGIN} https://example.com/other",
        **{"hub.secret": secret, "hub.lease_seconds": " 3600 "},
    )

    assert send(hub_of(lean), form=form, key=keys["subscriber"]).status == 202

    request = pending(lean, topic)
    assert (request.format, request.lease_seconds, request.signing) == ("json", 3600, "standard-webhooks")
    assert request.events == frozenset({LOGIN, "https://example.com/other"})
    assert request.secret_fingerprint is not None


@pytest.mark.parametrize(
    ("asked", "granted"), [("1", 300), ("999999999999", 30 * 24 * 3600), ("86400", 86400)]
)
def test_the_hub_grants_a_lease_within_its_bounds(lean, keys, topic, asked, granted):
    send(hub_of(lean), form=subscribe(topic, **{"hub.lease_seconds": asked}), key=keys["subscriber"])

    assert pending(lean, topic).lease_seconds == granted


def test_an_admin_request_may_override_and_names_the_admin(lean, keys, topic):
    send(hub_of(lean), form=subscribe(topic), key=keys["admin"])

    request = pending(lean, topic)
    assert request.override
    assert request.requester is not None


def test_unsubscribe_stores_an_unsubscribe_request_without_a_secret(lean, keys, topic):
    form = {"hub.mode": "unsubscribe", "hub.topic": topic, "hub.callback": CALLBACK, "hub.secret": "x"}

    reply = send(hub_of(lean), form=form, key=keys["subscriber"])

    assert (reply.status, reply.body) == (202, ACCEPTED)
    request = pending(lean, topic)
    assert request.mode == "unsubscribe"
    assert request.secret_ciphertext is None
    assert request.format == "jwt"
    item = lean.item(topic_key(topic), request_key(CALLBACK))
    assert item is not None
    assert item["format"] == {"S": "jwt"}
    assert not {"secret", "signing", "events"} & set(item)


def test_hub_parameters_may_come_from_the_query_string(lean, keys, topic):
    reply = send(hub_of(lean), query=subscribe(topic), key=keys["subscriber"])

    assert reply.status == 202
    assert pending(lean, topic).mode == "subscribe"


def test_the_mode_is_read_without_surrounding_spaces(lean, keys, topic):
    form = {**subscribe(topic), "hub.mode": " subscribe "}

    assert send(hub_of(lean), form=form, key=keys["subscriber"]).status == 202
    assert pending(lean, topic).mode == "subscribe"


def test_a_subscription_to_an_unknown_topic_is_denied_at_the_callback(lean, keys):
    topic = f"acme.unknown-{uuid.uuid4().hex[:8]}"

    reply = send(hub_of(lean), form=subscribe(topic), key=keys["subscriber"])

    # W3C WebSub 5.2: the caller learns nothing; the callback gets the denial.
    assert (reply.status, reply.body) == (202, ACCEPTED)
    assert queued(lean, lean.settings.verify_queue_url, topic) == [
        DenySubscription(topic=topic, callback=CALLBACK, reason=UNKNOWN_TOPIC)
    ]
    assert lean.items(topic_key(topic)) == []


def test_an_unsubscribe_from_an_unknown_topic_is_accepted_and_does_nothing(lean, keys):
    topic = f"acme.unknown-{uuid.uuid4().hex[:8]}"
    form = {"hub.mode": "unsubscribe", "hub.topic": topic, "hub.callback": CALLBACK}

    assert send(hub_of(lean), form=form, key=keys["subscriber"]).status == 202
    assert queued(lean, lean.settings.verify_queue_url, topic) == []


def test_with_open_topics_any_topic_may_be_subscribed(lean, keys):
    topic = f"acme.open-{uuid.uuid4().hex[:8]}"

    assert send(hub_of(lean, open_topics=True), form=subscribe(topic), key=keys["subscriber"]).status == 202
    assert pending(lean, topic).mode == "subscribe"


def test_subscribing_needs_a_key_unless_the_hub_is_public(lean, keys, topic):
    reply = send(hub_of(lean), form=subscribe(topic))

    assert (reply.status, reply.body) == (401, MISSING_KEY)
    assert queued(lean, lean.settings.verify_queue_url, topic) == []

    reply = send(hub_of(lean, public_hub=True), form=subscribe(topic))

    assert reply.status == 202
    request = pending(lean, topic)
    assert (request.requester, request.owner, request.override) == (None, None, False)


def test_a_public_hub_still_refuses_an_unknown_key(lean, topic):
    reply = send(hub_of(lean, public_hub=True), form=subscribe(topic), key="not-a-key")

    assert (reply.status, reply.body) == (403, UNKNOWN_KEY)
    assert queued(lean, lean.settings.verify_queue_url, topic) == []


def test_a_publisher_key_cannot_subscribe(lean, keys, topic):
    for hub in (hub_of(lean), hub_of(lean, public_hub=True)):
        reply = send(hub, form=subscribe(topic), key=keys["publisher"])

        assert (reply.status, reply.body) == (403, "a publisher key cannot subscribe or unsubscribe")
    assert queued(lean, lean.settings.verify_queue_url, topic) == []


def test_a_live_subscription_can_be_changed_only_by_its_owner_or_an_admin(lean, keys, topic):
    store = SubscriptionStore(lean.clients, lean.settings)
    send(hub_of(lean), form=subscribe(topic), key=keys["subscriber"])
    assert store.apply_verified(pending(lean, topic))

    reply = send(hub_of(lean), form=subscribe(topic), key=keys["other-subscriber"])

    assert reply.status == 403
    assert reply.body.startswith("this subscription belongs to another key")
    assert queued(lean, lean.settings.verify_queue_url, topic) == []

    owner_request = pending_after(
        lean, topic, send(hub_of(lean), form=subscribe(topic), key=keys["subscriber"])
    )
    assert owner_request.owner == owner_request.requester

    admin_request = pending_after(lean, topic, send(hub_of(lean), form=subscribe(topic), key=keys["admin"]))
    # The subscription stays its owner's, whoever changed it.
    assert admin_request.owner == owner_request.owner
    assert admin_request.requester != owner_request.owner


def test_an_expired_subscription_no_longer_has_an_owner(lean, keys, topic):
    store = SubscriptionStore(lean.clients, lean.settings)
    send(hub_of(lean), form=subscribe(topic, **{"hub.lease_seconds": "300"}), key=keys["subscriber"])
    assert store.apply_verified(pending(lean, topic), now=1_000_000)

    reply = send(hub_of(lean), form=subscribe(topic), key=keys["other-subscriber"], now=1_000_300)

    assert reply.status == 202
    request = pending(lean, topic, now=1_000_300)
    assert request.owner == request.requester


def test_a_key_resubscribing_a_subscription_made_without_a_key_becomes_its_owner(lean, keys, topic):
    public = hub_of(lean, public_hub=True)
    send(public, form=subscribe(topic))
    assert SubscriptionStore(lean.clients, lean.settings).apply_verified(pending(lean, topic))

    assert send(public, form=subscribe(topic), key=keys["subscriber"]).status == 202

    request = pending(lean, topic)
    assert request.requester is not None
    assert request.owner == request.requester


def test_a_pending_request_is_kept_a_day_from_when_the_hub_received_it(lean, keys, topic):
    send(hub_of(lean), form=subscribe(topic), key=keys["subscriber"], now=1_764_190_000.5)

    request = pending(lean, topic, now=1_764_190_000)
    item = lean.item(topic_key(topic), request_key(CALLBACK))
    assert item is not None
    assert item["request_id"] == {"S": request.request_id}
    assert item["ttl"] == {"N": str(1_764_190_000 + 24 * 3600)}


def test_a_verification_sqs_did_not_take_is_an_upstream_error_and_the_caller_gets_no_202(lean, keys, topic):
    gone = lean.settings.verify_queue_url + "-gone"

    with pytest.raises(UpstreamError) as raised:
        send(hub_of(lean, verify_queue_url=gone), form=subscribe(topic), key=keys["subscriber"])

    assert str(raised.value) == "SQS could not queue a verification: QueueDoesNotExist"


def test_a_refused_callback_is_logged_by_host_with_the_reason(lean, keys, topic, caplog):
    with caplog.at_level(logging.INFO, logger="sethub.websub"):
        send(
            hub_of(lean),
            form=subscribe(topic, "https://10.1.2.3:8443/cb?token=s3cr3t"),
            key=keys["subscriber"],
        )

    (record,) = [r for r in caplog.records if r.name == "sethub.websub"]
    assert record.getMessage() == "callback refused"
    assert record.callback_host == "10.1.2.3:8443"  # type: ignore[attr-defined]
    assert "10.1.2.3" in record.reason  # type: ignore[attr-defined]
    assert "s3cr3t" not in str(record.__dict__)


def pending_after(lean: LeanHub, topic: str, reply: HubReply) -> PendingRequest:
    assert reply.status == 202
    return pending(lean, topic)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"hub.callback": ""}, "hub.callback is required"),
        ({"hub.callback": "   "}, "hub.callback is required"),
        (
            {"hub.callback": "https://93.184.215.14/" + "a" * MAX_CALLBACK_CHARS},
            f"hub.callback is too long (at most {MAX_CALLBACK_CHARS} characters)",
        ),
        ({"hub.callback": "https://93.184.215.14/a\tb"}, "hub.callback must not contain control characters"),
        ({"hub.callback": "ftp://93.184.215.14/cb"}, "hub.callback must be an absolute http(s) URL"),
        ({"hub.callback": "/relative/cb"}, "hub.callback must be an absolute http(s) URL"),
        ({"hub.callback": "https://[::1/cb"}, "hub.callback must be an absolute http(s) URL"),
        ({"hub.callback": "http://93.184.215.14/cb"}, "hub.callback must be an https URL"),
        (
            {"hub.callback": "https://10.1.2.3/cb"},
            "hub.callback refused: the hub only contacts hosts with public addresses",
        ),
        (
            {"hub.callback": "https://user:pw@93.184.215.14/cb"},
            "hub.callback refused: the hub only contacts hosts with public addresses",
        ),
        ({"hub.topic": ""}, "hub.topic is required"),
        ({"hub.topic": " "}, "hub.topic is required"),
        (
            {"hub.topic": "t" * (MAX_TOPIC_CHARS + 1)},
            f"hub.topic is too long (at most {MAX_TOPIC_CHARS} characters)",
        ),
        ({"hub.topic": "acme\nlogin"}, "hub.topic must not contain control characters"),
        ({"hub.secret": "s" * 200}, "hub.secret must be under 200 bytes"),
        ({"hub.secret": "\u00e9" * 100}, "hub.secret must be under 200 bytes"),
        ({"format": "xml"}, "format must be jwt or json"),
        ({"hub.lease_seconds": "0"}, "hub.lease_seconds must be a positive whole number"),
        ({"hub.lease_seconds": "-5"}, "hub.lease_seconds must be a positive whole number"),
        ({"hub.lease_seconds": "1e3"}, "hub.lease_seconds must be a positive whole number"),
        ({"hub.lease_seconds": "1" * 13}, "hub.lease_seconds must be a positive whole number"),
        ({"hub.lease_seconds": "60 s"}, "hub.lease_seconds must be a positive whole number"),
        ({"signing": "hmac"}, "signing must be websub or standard-webhooks"),
        ({"signing": "standard-webhooks"}, "signing=standard-webhooks needs a hub.secret (whsec_...)"),
    ],
)
def test_a_bad_subscription_request_is_refused_with_its_reason_and_nothing_is_stored(
    lean, keys, topic, change, reason
):
    form = {**subscribe(topic), **change}

    reply = send(hub_of(lean), form=form, key=keys["subscriber"])

    assert (reply.status, reply.body) == (400, reason)
    assert queued(lean, lean.settings.verify_queue_url, form["hub.topic"] or topic) == []
    assert [i for i in lean.items(topic_key(topic)) if i["sk"]["S"] != "TOPIC"] == []


def test_a_subscription_request_without_a_callback_parameter_is_refused(lean, keys, topic):
    form = {"hub.mode": "subscribe", "hub.topic": topic}

    assert send(hub_of(lean), form=form, key=keys["subscriber"]) == HubReply(
        status=400, body="hub.callback is required"
    )


def test_a_secret_of_199_bytes_is_accepted(lean, keys, topic):
    reply = send(hub_of(lean), form=subscribe(topic, **{"hub.secret": "s" * 199}), key=keys["subscriber"])

    assert reply.status == 202
    assert pending(lean, topic).secret_ciphertext is not None


def test_callbacks_and_topics_at_their_length_limits_are_accepted(lean, keys):
    topic = "t" * MAX_TOPIC_CHARS
    SubscriptionStore(lean.clients, lean.settings).register_topic(topic)
    callback = "https://93.184.215.14/" + "a" * (MAX_CALLBACK_CHARS - len("https://93.184.215.14/"))

    assert send(hub_of(lean), form=subscribe(topic, callback), key=keys["subscriber"]).status == 202
    assert pending(lean, topic, callback).callback == callback


def test_http_and_private_callbacks_are_taken_where_the_hub_allows_them(lean, keys, topic):
    hub = hub_of(lean, allow_http_callbacks=True, allow_private_callbacks=True)
    callback = "HTTP://127.0.0.1:8080/cb"

    assert send(hub, form=subscribe(topic, callback), key=keys["subscriber"]).status == 202
    assert pending(lean, topic, callback).callback == callback


def test_with_http_allowed_a_private_callback_is_still_refused(lean, keys, topic):
    hub = hub_of(lean, allow_http_callbacks=True)

    reply = send(hub, form=subscribe(topic, "http://127.0.0.1:8080/cb"), key=keys["subscriber"])

    assert (reply.status, reply.body) == (
        400,
        "hub.callback refused: the hub only contacts hosts with public addresses",
    )


# Modes


def test_a_request_without_a_mode_names_the_modes(lean, keys):
    reply = send(hub_of(lean), form={"hub.topic": "acme.x"}, key=keys["admin"])

    assert (reply.status, reply.body) == (
        400,
        "hub.mode is required: subscribe, unsubscribe, register, deregister or publish",
    )


def test_an_unknown_mode_is_named_cut_to_40_characters(lean, keys):
    reply = send(hub_of(lean), form={"hub.mode": "x" * 50}, key=keys["admin"])

    assert (reply.status, reply.body) == (400, f"unsupported hub.mode {'x' * 40!r}")


# Publishers: topics


def test_register_and_deregister_a_topic(lean, keys):
    topic = f"acme.reg-{uuid.uuid4().hex[:8]}"
    store = SubscriptionStore(lean.clients, lean.settings)
    register = {"hub.mode": "register", "hub.topic": f" {topic} "}

    assert send(hub_of(lean), form=register, key=keys["publisher"]) == HubReply(status=200, body=ACCEPTED)
    assert store.topic_exists(topic)
    # Registering again is also 200.
    assert send(hub_of(lean), form=register, key=keys["publisher"]).status == 200

    deregister = {"hub.mode": "deregister", "hub.topic": topic}
    assert send(hub_of(lean), form=deregister, key=keys["publisher"]) == HubReply(status=200, body=ACCEPTED)
    assert not store.topic_exists(topic)
    assert send(hub_of(lean), form=deregister, key=keys["publisher"]).status == 404


def test_register_records_when_the_topic_was_registered(lean, keys):
    topic = f"acme.reg-{uuid.uuid4().hex[:8]}"

    send(
        hub_of(lean),
        form={"hub.mode": "register", "hub.topic": topic},
        key=keys["publisher"],
        now=1_764_190_000.7,
    )

    assert lean.item(topic_key(topic), "TOPIC")["created_at"] == {"N": "1764190000"}


@pytest.mark.parametrize("mode", ["register", "deregister", "publish"])
def test_managing_and_publishing_need_a_publisher_key(lean, keys, topic, mode):
    form = {"hub.mode": mode, "hub.topic": topic}
    hub = hub_of(lean, public_hub=True)

    assert send(hub, form=form) == HubReply(status=401, body=MISSING_KEY)
    assert send(hub, form=form, key="nope") == HubReply(status=403, body=UNKNOWN_KEY)
    assert send(hub, form=form, key=keys["subscriber"]) == HubReply(
        status=403, body="a subscriber key cannot publish or manage topics"
    )
    assert SubscriptionStore(lean.clients, lean.settings).topic_exists(topic)
    assert queued(lean, lean.settings.events_queue_url, topic) == []


def test_a_scoped_publisher_manages_only_its_topics(lean, keys):
    outside = f"other.{uuid.uuid4().hex[:8]}"

    reply = send(
        hub_of(lean), form={"hub.mode": "register", "hub.topic": outside}, key=keys["acme-publisher"]
    )

    assert (reply.status, reply.body) == (403, "this publisher key is not allowed on this topic")
    assert not SubscriptionStore(lean.clients, lean.settings).topic_exists(outside)

    inside = f"acme.{uuid.uuid4().hex[:8]}"
    assert (
        send(
            hub_of(lean), form={"hub.mode": "register", "hub.topic": inside}, key=keys["acme-publisher"]
        ).status
        == 200
    )


def test_a_scoped_publisher_publishes_by_hub_url_only_within_its_scope(lean, keys):
    outside = f"other.{uuid.uuid4().hex[:8]}"
    query = {"hub.mode": "publish", "hub.url": outside}

    reply = send(hub_of(lean), query=query, body=b"x", content_type="text/plain", key=keys["acme-publisher"])

    assert reply.status == 403


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"hub.mode": "register"}, "hub.topic is required"),
        ({"hub.mode": "deregister", "hub.topic": "  "}, "hub.topic is required"),
        ({"hub.mode": "publish"}, "hub.topic (or hub.url) is required"),
        ({"hub.mode": "publish", "hub.url": " "}, "hub.topic (or hub.url) is required"),
        ({"hub.mode": "register", "hub.topic": "a\x00b"}, "hub.topic must not contain control characters"),
        (
            {"hub.mode": "publish", "hub.url": "a" * (MAX_TOPIC_CHARS + 1)},
            f"hub.topic is too long (at most {MAX_TOPIC_CHARS} characters)",
        ),
    ],
)
def test_a_publisher_request_without_a_proper_topic_is_refused(lean, keys, form, reason):
    # A key scoped to topics: a missing topic is a 400, never taken for a topic outside the scope.
    assert send(hub_of(lean), form=form, key=keys["acme-publisher"]) == HubReply(status=400, body=reason)


# Publishers: content


def test_a_set_published_as_the_body_is_queued_as_an_event(lean, keys, topic):
    body = (
        b'{"jti": "evt-1", "events": {"%s": {"subject": {"format": "opaque", "id": "u1"}}}}' % LOGIN.encode()
    )

    reply = send(
        hub_of(lean),
        query={"hub.mode": "publish", "hub.topic": topic},
        body=b"  " + body,
        content_type="application/json",
        key=keys["publisher"],
    )

    assert (reply.status, reply.body) == (202, ACCEPTED)
    (message,) = queued(lean, lean.settings.events_queue_url, topic)
    assert isinstance(message, SetEvent)
    assert message.jti == "evt-1"
    assert LOGIN in message.claims["events"]
    assert message.hub_url == f"{BASE}/hub"


def test_a_set_is_scoped_to_its_publisher_key(lean, keys, topic):
    body = b'{"jti": "evt-same", "events": {"%s": {}}}' % LOGIN.encode()
    query = {"hub.mode": "publish", "hub.topic": topic}

    for key in ("publisher", "publisher", "admin"):
        assert (
            send(hub_of(lean), query=query, body=body, content_type="application/json", key=keys[key]).status
            == 202
        )

    # The second is a duplicate of the first; the admin's jti is its own.
    events = queued(lean, lean.settings.events_queue_url, topic)
    assert [m.jti for m in events if isinstance(m, SetEvent)] == ["evt-same", "evt-same"]
    assert len(events) == 2


def test_a_set_with_a_non_finite_number_is_refused(lean, keys, topic):
    body = b'{"jti": "evt-nan", "events": {"%s": {"n": NaN}}}' % LOGIN.encode()

    reply = send(
        hub_of(lean),
        query={"hub.mode": "publish", "hub.topic": topic},
        body=body,
        content_type="application/json",
        key=keys["publisher"],
    )

    assert (reply.status, reply.body) == (400, NON_FINITE_REASON)
    assert queued(lean, lean.settings.events_queue_url, topic) == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"jti": "x", "events": ["not an object"]}',
        b'["a", "list"]',
        b"{not json",
        b'{"events": {"a": NaN}',
        b"plain text { with a brace",
    ],
)
def test_a_body_that_is_not_a_set_is_distributed_as_content(lean, keys, topic, body):
    reply = send(
        hub_of(lean),
        query={"hub.mode": "publish", "hub.topic": topic},
        body=body,
        content_type="text/plain; charset=utf-8",
        key=keys["publisher"],
    )

    assert reply.status == 202
    (message,) = queued(lean, lean.settings.events_queue_url, topic)
    assert isinstance(message, ContentEvent)
    assert (message.body, message.content_type) == (body, "text/plain; charset=utf-8")
    assert message.hub_url == f"{BASE}/hub"


def test_content_without_a_content_type_is_octet_stream(lean, keys, topic):
    reply = send(
        hub_of(lean), query={"hub.mode": "publish", "hub.url": topic}, body=b"\x00\x01", key=keys["publisher"]
    )

    assert reply.status == 202
    (message,) = queued(lean, lean.settings.events_queue_url, topic)
    assert isinstance(message, ContentEvent)
    assert (message.body, message.content_type) == (b"\x00\x01", "application/octet-stream")


def test_a_content_type_with_control_characters_is_refused(lean, keys, topic):
    reply = send(
        hub_of(lean),
        query={"hub.mode": "publish", "hub.topic": topic},
        body=b"x",
        content_type="text/plain\x0bevil",
        key=keys["publisher"],
    )

    assert (reply.status, reply.body) == (400, "Content-Type must not contain control characters")
    assert queued(lean, lean.settings.events_queue_url, topic) == []


def test_publishing_to_an_unknown_topic_is_404_unless_topics_are_open(lean, keys):
    topic = f"acme.unknown-{uuid.uuid4().hex[:8]}"
    query = {"hub.mode": "publish", "hub.topic": topic}

    reply = send(hub_of(lean), query=query, body=b"x", content_type="text/plain", key=keys["publisher"])

    assert (reply.status, reply.body) == (404, "unknown topic: register it first with hub.mode=register")
    assert queued(lean, lean.settings.events_queue_url, topic) == []

    reply = send(
        hub_of(lean, open_topics=True),
        query=query,
        body=b"x",
        content_type="text/plain",
        key=keys["publisher"],
    )

    assert reply.status == 202
    assert len(queued(lean, lean.settings.events_queue_url, topic)) == 1


# Publishers: W3C publish, the hub fetches the topic URL


class Feed:
    """A topic URL on 127.0.0.1 answering what the test sets."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"<feed/>"
        self.content_type: str | None = "application/atom+xml"
        self.accepts: list[str | None] = []
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                feed.accepts.append(self.headers.get("Accept"))
                self.send_response(feed.status)
                if feed.content_type is not None:
                    self.send_header("Content-Type", feed.content_type)
                self.send_header("Content-Length", str(len(feed.body)))
                self.end_headers()
                self.wfile.write(feed.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/feed"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def feed() -> Iterator[Feed]:
    served = Feed()
    yield served
    served.close()


@pytest.fixture
def feed_topic(lean: LeanHub, feed: Feed) -> Iterator[str]:
    """The feed's URL as a registered topic, its answer reset after the test."""
    topic = f"{feed.url}/{uuid.uuid4().hex[:8]}"
    SubscriptionStore(lean.clients, lean.settings).register_topic(topic)
    yield topic
    feed.status, feed.body, feed.content_type = 200, b"<feed/>", "application/atom+xml"


def local_fetching(lean: LeanHub) -> Hub:
    return hub_of(lean, allow_private_callbacks=True, allow_http_callbacks=True)


def test_a_w3c_publish_distributes_what_the_topic_url_answers(lean, keys, feed, feed_topic):
    feed.accepts.clear()

    reply = send(
        local_fetching(lean), form={"hub.mode": "publish", "hub.url": feed_topic}, key=keys["publisher"]
    )

    assert (reply.status, reply.body) == (202, ACCEPTED)
    assert feed.accepts == ["*/*"]
    (message,) = queued(lean, lean.settings.events_queue_url, feed_topic)
    assert isinstance(message, ContentEvent)
    assert (message.body, message.content_type) == (b"<feed/>", "application/atom+xml")
    assert message.hub_url == f"{BASE}/hub"


def test_the_hub_fetches_and_enqueues_with_what_it_was_given(lean, keys, feed_topic):
    # The container's settings refuse private addresses, the given fetcher allows them; the
    # given ingestor sends to a queue of its own.
    other_queue = lean.clients.sqs.create_queue(QueueName=f"other-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    hub = Hub(
        lean.clients,
        lean.settings,
        fetcher=GuardedHttp(allow_private=True, allow_http=True, timeout=5.0),
        ingestor=Ingestor(lean.clients, replace(lean.settings, events_queue_url=other_queue)),
    )

    reply = send(hub, form={"hub.mode": "publish", "hub.topic": feed_topic}, key=keys["publisher"])

    assert reply.status == 202
    assert len(queued(lean, other_queue, feed_topic)) == 1
    assert queued(lean, lean.settings.events_queue_url, feed_topic) == []


def test_a_publish_without_a_body_fetches_the_topic_url(lean, keys, feed, feed_topic):
    feed.content_type = None
    feed.body = b"x" * MAX_CONTENT_BYTES

    reply = send(
        local_fetching(lean), query={"hub.mode": "publish", "hub.topic": feed_topic}, key=keys["publisher"]
    )

    assert reply.status == 202
    (message,) = queued(lean, lean.settings.events_queue_url, feed_topic)
    assert isinstance(message, ContentEvent)
    assert (len(message.body), message.content_type) == (MAX_CONTENT_BYTES, "application/octet-stream")


def test_a_topic_url_answering_more_than_a_publish_may_carry_is_413(lean, keys, feed, feed_topic):
    feed.body = b"x" * (MAX_CONTENT_BYTES + 1)

    reply = send(
        local_fetching(lean), form={"hub.mode": "publish", "hub.topic": feed_topic}, key=keys["publisher"]
    )

    assert (reply.status, reply.body) == (413, f"the topic's content is over {MAX_CONTENT_BYTES} bytes")
    assert queued(lean, lean.settings.events_queue_url, feed_topic) == []


@pytest.mark.parametrize("status", [204, 299])
def test_any_2xx_of_the_topic_url_is_distributed(lean, keys, feed, feed_topic, status):
    feed.status = status
    feed.body = b"" if status == 204 else b"<feed/>"

    reply = send(
        local_fetching(lean), form={"hub.mode": "publish", "hub.topic": feed_topic}, key=keys["publisher"]
    )

    assert reply.status == 202
    (message,) = queued(lean, lean.settings.events_queue_url, feed_topic)
    assert isinstance(message, ContentEvent)
    assert message.body == feed.body


@pytest.mark.parametrize("status", [199, 300, 404, 500])
def test_a_topic_url_not_answering_2xx_is_a_failed_fetch(lean, keys, feed, feed_topic, status, caplog):
    feed.status = status

    with caplog.at_level(logging.INFO, logger="sethub.websub"):
        reply = send(
            local_fetching(lean), form={"hub.mode": "publish", "hub.topic": feed_topic}, key=keys["publisher"]
        )

    assert (reply.status, reply.body) == (400, FETCH_FAILED)
    assert queued(lean, lean.settings.events_queue_url, feed_topic) == []
    # Why goes to the log only, by host: told to the caller, it would make the hub a port scanner.
    assert fetch_logs(caplog) == [("topic fetch failed", feed.url.split("/")[2], {"status": status})]


def fetch_logs(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for record in caplog.records:
        if record.name == "sethub.websub":
            extra = {k: getattr(record, k) for k in ("status", "reason") if hasattr(record, k)}
            found.append((record.getMessage(), getattr(record, "topic_host", ""), extra))
    return found


def test_a_content_type_with_control_characters_from_the_topic_url_is_a_failed_fetch(
    lean, keys, feed, feed_topic, caplog
):
    feed.content_type = "text/plain\x01"

    with caplog.at_level(logging.INFO, logger="sethub.websub"):
        reply = send(
            local_fetching(lean), form={"hub.mode": "publish", "hub.topic": feed_topic}, key=keys["publisher"]
        )

    assert (reply.status, reply.body) == (400, FETCH_FAILED)
    assert fetch_logs(caplog) == [
        ("topic fetch refused", feed.url.split("/")[2], {"reason": "control characters in Content-Type"})
    ]


def test_a_topic_url_at_a_private_address_is_not_fetched(lean, keys, feed, feed_topic, caplog):
    # Plain http allowed, private addresses not: the guard refuses before connecting.
    with caplog.at_level(logging.INFO, logger="sethub.websub"):
        reply = send(
            hub_of(lean, allow_http_callbacks=True),
            form={"hub.mode": "publish", "hub.topic": feed_topic},
            key=keys["publisher"],
        )

    assert (reply.status, reply.body) == (400, FETCH_FAILED)
    ((message, host, extra),) = fetch_logs(caplog)
    assert (message, host) == ("topic fetch refused", feed.url.split("/")[2])
    assert "127.0.0.1" in extra["reason"]


@pytest.mark.parametrize("scheme", ["http", "https", "HTTPS"])
def test_a_topic_url_that_does_not_answer_is_a_failed_fetch(lean, keys, caplog, scheme):
    # A port with nothing listening: connection refused, whichever scheme.
    topic = f"{scheme}://127.0.0.1:9/{uuid.uuid4().hex[:8]}"
    SubscriptionStore(lean.clients, lean.settings).register_topic(topic)

    with caplog.at_level(logging.INFO, logger="sethub.websub"):
        reply = send(
            local_fetching(lean), form={"hub.mode": "publish", "hub.topic": topic}, key=keys["publisher"]
        )

    assert (reply.status, reply.body) == (400, FETCH_FAILED)
    ((message, host, extra),) = fetch_logs(caplog)
    assert (message, host) == ("topic fetch failed", "127.0.0.1:9")
    assert "refused" in extra["reason"].lower()


def test_a_topic_that_is_no_url_cannot_be_fetched(lean, keys, topic):
    reply = send(
        local_fetching(lean), form={"hub.mode": "publish", "hub.topic": topic}, key=keys["publisher"]
    )

    assert (reply.status, reply.body) == (
        400,
        "nothing to publish: send the content as the body, or use an http(s) topic URL",
    )


# Parsing


def test_a_body_of_exactly_one_mebibyte_is_parsed() -> None:
    request = parse_hub_request(query=None, body=b"x" * MAX_HUB_BODY_BYTES, content_type=" text/plain ")

    assert len(request.body) == MAX_HUB_BODY_BYTES
    assert request.content_type == "text/plain"


def test_a_body_over_one_mebibyte_says_the_limit() -> None:
    with pytest.raises(PayloadTooLargeError, match=f"^request body is over {MAX_HUB_BODY_BYTES} bytes$"):
        parse_hub_request(query=None, body=b"x" * (MAX_HUB_BODY_BYTES + 1), content_type=None)


def test_a_secret_in_the_query_string_is_refused() -> None:
    with pytest.raises(BadRequestError) as raised:
        parse_hub_request(query={"hub.secret": "s"}, body=b"", content_type=None)

    assert raised.value.reason == "hub.secret must be sent in the form body, never in the query string"


def test_the_form_media_type_is_matched_without_case_or_parameters() -> None:
    request = parse_hub_request(
        query=None,
        body=b"hub.mode=publish&hub.topic=t",
        content_type=" Application/X-WWW-Form-Urlencoded ;charset=utf-8; q=1",
    )

    assert request.params == {"hub.mode": "publish", "hub.topic": "t"}
    assert request.params_in_body


def test_blank_form_fields_are_kept() -> None:
    request = parse_hub_request(query={"hub.mode": "publish"}, body=b"hub.topic=", content_type=FORM)

    assert request.form == {"hub.topic": ""}
    assert request.params_in_body


def test_exactly_the_maximum_number_of_fields_and_parameters_is_accepted() -> None:
    body = "&".join(f"f{n}=v" for n in range(MAX_FORM_FIELDS)).encode()
    query = {f"q{n}": "v" for n in range(MAX_FORM_FIELDS)}

    request = parse_hub_request(query=query, body=body, content_type=FORM)

    assert len(request.form) == MAX_FORM_FIELDS
    assert len(request.query) == MAX_FORM_FIELDS


@pytest.mark.parametrize(
    ("query", "body", "reason"),
    [
        (
            None,
            "&".join(f"f{n}=v" for n in range(MAX_FORM_FIELDS + 1)).encode(),
            f"too many form fields (at most {MAX_FORM_FIELDS})",
        ),
        (
            {f"q{n}": "v" for n in range(MAX_FORM_FIELDS + 1)},
            b"",
            f"too many query parameters (at most {MAX_FORM_FIELDS})",
        ),
        (None, b"hub.topic=\xff", "form body is not UTF-8"),
    ],
)
def test_a_form_the_hub_cannot_take_says_why(query, body, reason):
    with pytest.raises(BadRequestError) as raised:
        parse_hub_request(query=query, body=body, content_type=FORM)

    assert (raised.value.status, raised.value.reason) == (400, reason)


def test_the_hub_exposes_its_store(lean):
    store = SubscriptionStore(lean.clients, lean.settings)

    assert Hub(lean.clients, lean.settings, store=store).store is store


def test_settings_without_a_verify_queue_cannot_take_subscriptions(lean, keys, topic):
    hub = Hub(lean.clients, replace(lean.settings, verify_queue_url=""))

    with pytest.raises(ConfigurationError) as raised:
        send(hub, form=subscribe(topic), key=keys["subscriber"])

    assert str(raised.value) == "SETHUB_VERIFY_QUEUE_URL is not set"
