"""The WebSub hub against moto with real callbacks on 127.0.0.1: every hub requirement of
the W3C Recommendation that sethub implements (subscriptions, verification, leases,
denial, topics, publishing), driven through ``sethub.websub`` and ``sethub.verification``."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from websub_peer import CallbackServer, websub_peer

from sethub.messages import ContentEvent, SetEvent, parse_message
from sethub.outbound import GuardedHttp
from sethub.settings import Settings
from sethub.store import SubscriptionStore
from sethub.verification import MAX_RESPONSE_BYTES, Outcome, Verifier
from sethub.websub import ACCEPTED, FETCH_FAILED, Hub, HubReply, parse_hub_request

BASE_URL = "http://127.0.0.1:3000"
TOPIC = "acme.login"
FORM = "application/x-www-form-urlencoded"
LOGIN_SUCCESS = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"


class Driver:
    """One hub (websub + verifier) over the moto resources of the ``hub`` fixture.

    Its clock stands still (``now``, set when it is built) unless a test moves it: the hub
    and the verifier both read it, so leases and expiries are exact numbers.
    """

    def __init__(self, fixture: Any, **changes: Any) -> None:
        self.fixture = fixture
        self.now = time.time()
        self.settings: Settings = dataclasses.replace(fixture.settings, **changes)
        self.clients = fixture.clients
        self.hub = Hub(self.clients, self.settings)
        self.store = SubscriptionStore(self.clients, self.settings)
        http = GuardedHttp.from_settings(self.settings, max_response_bytes=MAX_RESPONSE_BYTES)
        self.verifier = Verifier(self.store, http, clock=lambda: self.now)

    def post(
        self,
        params: dict[str, str] | None = None,
        *,
        query: dict[str, str] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        api_key: str | None = "default",
    ) -> HubReply:
        if params is not None:
            body, content_type = urlencode(params).encode(), FORM
        headers = (
            {}
            if api_key is None
            else {"X-Api-Key": self.fixture.api_key if api_key == "default" else api_key}
        )
        request = parse_hub_request(query=query, body=body or b"", content_type=content_type)
        return self.hub.handle(request, headers=headers, base_url=BASE_URL, now=self.now)

    def subscribe(self, callback: str, topic: str = TOPIC, **extra: str) -> HubReply:
        return self.post({"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": callback, **extra})

    def unsubscribe(self, callback: str, topic: str = TOPIC) -> HubReply:
        return self.post({"hub.mode": "unsubscribe", "hub.topic": topic, "hub.callback": callback})

    def register(self, topic: str = TOPIC) -> HubReply:
        return self.post({"hub.mode": "register", "hub.topic": topic})

    def take(self, queue_url: str) -> list[tuple[str, str]]:
        """Every message now on a queue (body, receipt handle), removed from it."""
        taken: list[tuple[str, str]] = []
        while True:
            result = self.clients.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
            messages = result.get("Messages", [])
            if not messages:
                return taken
            for message in messages:
                self.clients.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                taken.append((message["Body"], message["ReceiptHandle"]))

    def verify_queue(self) -> list[str]:
        return [body for body, _ in self.take(self.settings.verify_queue_url)]

    def run_verifications(self) -> list[Outcome]:
        outcomes = []
        for body in self.verify_queue():
            message = parse_message(body)
            assert not isinstance(message, SetEvent | ContentEvent)
            outcomes.append(self.verifier.process(message))  # type: ignore[arg-type]
        return outcomes

    def events(self) -> list[Any]:
        return [parse_message(body) for body, _ in self.take(self.settings.events_queue_url)]

    def active(self, topic: str = TOPIC) -> dict[str, Any]:
        subscriptions, _ = self.store.list_active(topic, now=self.now)
        return {subscription.callback: subscription for subscription in subscriptions}


@pytest.fixture
def callbacks() -> Iterator[CallbackServer]:
    with websub_peer() as server:
        yield server


@pytest.fixture
def driver(hub: Any) -> Driver:
    driver = Driver(hub)
    assert driver.register().status == 200
    return driver


# Subscribing and verification of intent (W3C WebSub 5.1, 5.3)


def test_subscribe_answers_202_before_any_verification(driver: Driver, callbacks: CallbackServer) -> None:
    reply = driver.subscribe(callbacks.url())

    assert (reply.status, reply.body) == (202, ACCEPTED)
    assert callbacks.received == []
    assert driver.active() == {}


def test_verified_subscription_becomes_active_with_the_granted_lease(
    driver: Driver, callbacks: CallbackServer
) -> None:
    driver.subscribe(callbacks.url(), **{"hub.lease_seconds": "3600"})
    driver.now += 90  # the callback confirms a minute and a half later: the lease runs from then

    [outcome] = driver.run_verifications()

    assert outcome.kind == "verified"
    [get] = callbacks.gets()
    assert get.params["hub.mode"] == "subscribe"
    assert get.params["hub.topic"] == TOPIC
    assert get.params["hub.lease_seconds"] == "3600"
    subscription = driver.active()[callbacks.url()]
    assert subscription.lease_seconds == 3600
    assert subscription.format == "jwt"
    assert subscription.secret is None
    assert subscription.expires_at == int(driver.now) + 3600


def test_challenge_has_at_least_128_bits_and_is_never_reused(
    driver: Driver, callbacks: CallbackServer
) -> None:
    driver.subscribe(callbacks.url("/a"))
    driver.subscribe(callbacks.url("/b"))
    driver.run_verifications()

    challenges = [get.params["hub.challenge"] for get in callbacks.gets()]
    assert len(challenges) == 2
    assert challenges[0] != challenges[1]
    for challenge in challenges:
        assert len(base64.urlsafe_b64decode(challenge + "=" * (-len(challenge) % 4))) >= 16


def test_a_verification_message_delivered_twice_contacts_the_callback_once(
    driver: Driver, callbacks: CallbackServer
) -> None:
    driver.subscribe(callbacks.url())
    [body] = driver.verify_queue()
    message = parse_message(body)

    first = driver.verifier.process(message)  # type: ignore[arg-type]
    second = driver.verifier.process(message)  # type: ignore[arg-type]

    assert (first.kind, second.kind) == ("verified", "expired")
    assert len(callbacks.gets()) == 1


def test_the_callbacks_own_query_string_is_kept(driver: Driver, callbacks: CallbackServer) -> None:
    callback = callbacks.url("/cb", "user=ada&x=1%202")
    driver.subscribe(callback)
    driver.run_verifications()

    [get] = callbacks.gets()
    assert get.query.startswith("user=ada&x=1%202&hub.")
    assert get.params["hub.mode"] == "subscribe"
    assert callback in driver.active()


@pytest.mark.parametrize("behaviour", ["wrong", 404, 500, 302])
def test_failed_verification_creates_nothing(
    driver: Driver, callbacks: CallbackServer, behaviour: Any
) -> None:
    callbacks.behaviour["/cb"] = behaviour
    reply = driver.subscribe(callbacks.url())
    [outcome] = driver.run_verifications()

    assert reply.status == 202
    assert outcome.kind == "rejected"
    assert driver.active() == {}


def test_failed_reverification_leaves_the_subscription_as_it_was(
    driver: Driver, callbacks: CallbackServer
) -> None:
    driver.subscribe(callbacks.url(), format="json", **{"hub.secret": "s3cret", "hub.lease_seconds": "3600"})
    driver.run_verifications()

    callbacks.behaviour["/cb"] = "wrong"
    driver.subscribe(callbacks.url(), format="jwt", **{"hub.lease_seconds": "7200"})
    [outcome] = driver.run_verifications()

    assert outcome.kind == "rejected"
    subscription = driver.active()[callbacks.url()]
    assert (subscription.format, subscription.secret, subscription.lease_seconds) == ("json", b"s3cret", 3600)


def test_verified_resubscription_replaces_secret_format_and_lease(
    driver: Driver, callbacks: CallbackServer
) -> None:
    driver.subscribe(callbacks.url(), format="json", **{"hub.secret": "first", "hub.lease_seconds": "3600"})
    driver.run_verifications()
    driver.subscribe(callbacks.url(), **{"hub.lease_seconds": "7200"})
    driver.run_verifications()

    subscription = driver.active()[callbacks.url()]
    assert (subscription.format, subscription.secret, subscription.lease_seconds) == ("jwt", None, 7200)
    assert len(driver.active()) == 1


def test_a_newer_request_replaces_the_pending_one_which_is_never_verified(
    driver: Driver, callbacks: CallbackServer
) -> None:
    driver.subscribe(callbacks.url(), **{"hub.secret": "older"})
    driver.subscribe(callbacks.url(), **{"hub.secret": "newer"})
    older, newer = (parse_message(body) for body in driver.verify_queue())

    assert driver.verifier.process(newer).kind == "verified"  # type: ignore[arg-type]
    # One pending request per (topic, callback): the older one is gone, and costs no GET.
    assert driver.verifier.process(older).kind == "expired"  # type: ignore[arg-type]

    assert driver.active()[callbacks.url()].secret == b"newer"
    assert len(callbacks.gets()) == 1


def test_a_late_subscribe_does_not_undo_a_newer_unsubscribe(
    driver: Driver, callbacks: CallbackServer
) -> None:
    driver.subscribe(callbacks.url())
    driver.unsubscribe(callbacks.url())
    subscribe, unsubscribe = (parse_message(body) for body in driver.verify_queue())

    driver.verifier.process(unsubscribe)  # type: ignore[arg-type]
    driver.verifier.process(subscribe)  # type: ignore[arg-type]

    assert driver.active() == {}


def test_unsubscribe_takes_effect_only_once_verified(driver: Driver, callbacks: CallbackServer) -> None:
    driver.subscribe(callbacks.url())
    driver.run_verifications()

    callbacks.behaviour["/cb"] = 404
    assert driver.unsubscribe(callbacks.url()).status == 202
    assert callbacks.url() in driver.active()
    driver.run_verifications()
    assert callbacks.url() in driver.active()

    callbacks.behaviour["/cb"] = "echo"
    driver.unsubscribe(callbacks.url())
    [outcome] = driver.run_verifications()

    assert outcome.kind == "verified"
    assert driver.active() == {}
    last = callbacks.gets()[-1].params
    assert last["hub.mode"] == "unsubscribe"
    assert "hub.lease_seconds" not in last


# Request validation


def test_a_secret_of_200_bytes_is_refused(driver: Driver, callbacks: CallbackServer) -> None:
    too_long = driver.subscribe(callbacks.url(), **{"hub.secret": "é" * 100})  # 200 bytes, 100 characters
    just_right = driver.subscribe(callbacks.url(), **{"hub.secret": "s" * 199})

    assert too_long.status == 400
    assert "200 bytes" in too_long.body
    assert "é" not in too_long.body
    assert just_right.status == 202


@pytest.mark.parametrize(
    ("requested", "granted"), [("1", 300), ("86400", 86400), ("999999999", 30 * 24 * 3600), (None, 864000)]
)
def test_leases_are_clamped(
    driver: Driver, callbacks: CallbackServer, requested: str | None, granted: int
) -> None:
    extra = {} if requested is None else {"hub.lease_seconds": requested}
    driver.subscribe(callbacks.url(), **extra)
    driver.run_verifications()

    assert callbacks.gets()[0].params["hub.lease_seconds"] == str(granted)
    assert driver.active()[callbacks.url()].lease_seconds == granted


@pytest.mark.parametrize("lease", ["0", "-5", "ten", "1.5"])
def test_a_lease_that_is_not_a_positive_integer_is_refused(
    driver: Driver, callbacks: CallbackServer, lease: str
) -> None:
    reply = driver.subscribe(callbacks.url(), **{"hub.lease_seconds": lease})

    assert reply.status == 400
    assert "hub.lease_seconds" in reply.body
    assert driver.verify_queue() == []


@pytest.mark.parametrize(
    "callback", ["", "/relative", "ftp://127.0.0.1/cb", "http://", "http://127.0.0.1/" + "a" * 2100]
)
def test_bad_callbacks_are_refused(driver: Driver, callback: str) -> None:
    reply = driver.subscribe(callback)

    assert reply.status == 400
    assert reply.body
    assert "\n" not in reply.body
    assert driver.verify_queue() == []


def test_a_callback_the_network_guard_refuses_gets_a_4xx_and_is_never_contacted(
    hub: Any, callbacks: CallbackServer
) -> None:
    strict = Driver(hub, allow_private_callbacks=False)
    strict.register()

    reply = strict.subscribe(callbacks.url())

    assert reply.status == 400
    assert reply.body.startswith("hub.callback refused")
    assert strict.verify_queue() == []
    assert callbacks.received == []


def test_unknown_parameters_are_ignored(driver: Driver, callbacks: CallbackServer) -> None:
    reply = driver.subscribe(callbacks.url(), **{"foo": "bar", "hub.whatever": "1"})
    driver.run_verifications()

    assert reply.status == 202
    assert callbacks.url() in driver.active()


def test_an_unknown_format_is_refused(driver: Driver, callbacks: CallbackServer) -> None:
    reply = driver.subscribe(callbacks.url(), format="xml")

    assert (reply.status, reply.body) == (400, "format must be jwt or json")


def test_a_json_subscription_is_stored_as_json(driver: Driver, callbacks: CallbackServer) -> None:
    driver.subscribe(callbacks.url(), format="json")
    driver.run_verifications()

    assert driver.active()[callbacks.url()].format == "json"


def test_subscribing_needs_the_api_key_unless_the_hub_is_public(hub: Any, callbacks: CallbackServer) -> None:
    private = Driver(hub)
    private.register()
    missing = private.post(
        {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": callbacks.url()}, api_key=None
    )
    wrong = private.post(
        {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": callbacks.url()}, api_key="no"
    )
    public = Driver(hub, public_hub=True)
    allowed = public.post(
        {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": callbacks.url()}, api_key=None
    )

    assert (missing.status, wrong.status, allowed.status) == (401, 403, 202)
    assert len(public.verify_queue()) == 1


def test_a_missing_or_unknown_mode_is_refused(driver: Driver) -> None:
    assert driver.post({"hub.topic": TOPIC}).status == 400
    assert driver.post({"hub.mode": "explode", "hub.topic": TOPIC}).status == 400


# Denial (W3C WebSub 5.2)


def test_a_subscription_to_an_unknown_topic_is_denied_at_the_callback(
    driver: Driver, callbacks: CallbackServer
) -> None:
    reply = driver.subscribe(callbacks.url("/cb", "k=v"), topic="nobody.registered.this")
    [outcome] = driver.run_verifications()

    assert (reply.status, reply.body) == (202, ACCEPTED)
    assert outcome.kind == "denied"
    [get] = callbacks.gets()
    assert get.query.startswith("k=v&")
    assert get.params["hub.mode"] == "denied"
    assert get.params["hub.topic"] == "nobody.registered.this"
    assert get.params["hub.reason"]
    assert "hub.challenge" not in get.params
    assert driver.active("nobody.registered.this") == {}


def test_deregistering_a_topic_drops_its_pending_requests(driver: Driver, callbacks: CallbackServer) -> None:
    driver.subscribe(callbacks.url())
    driver.post({"hub.mode": "deregister", "hub.topic": TOPIC})

    [outcome] = driver.run_verifications()
    driver.register()

    assert outcome.kind == "expired"
    assert callbacks.received == []
    assert driver.active() == {}


def test_with_open_topics_any_topic_can_be_subscribed(hub: Any, callbacks: CallbackServer) -> None:
    open_hub = Driver(hub, open_topics=True)
    open_hub.subscribe(callbacks.url(), topic="anything.goes")
    [outcome] = open_hub.run_verifications()

    assert outcome.kind == "verified"
    assert callbacks.url() in open_hub.active("anything.goes")


# Topics


def test_register_and_deregister_answer_as_documented(hub: Any) -> None:
    driver = Driver(hub)

    assert (driver.register("t1").status, driver.register("t1").status) == (200, 200)
    assert driver.post({"hub.mode": "deregister", "hub.topic": "t1"}).status == 200
    gone = driver.post({"hub.mode": "deregister", "hub.topic": "t1"})
    assert gone.status == 404
    assert driver.store.topic_exists("t1") is False


def test_deregistering_a_topic_ends_its_subscriptions(driver: Driver, callbacks: CallbackServer) -> None:
    driver.subscribe(callbacks.url())
    driver.run_verifications()

    driver.post({"hub.mode": "deregister", "hub.topic": TOPIC})
    driver.register()

    assert driver.active() == {}


@pytest.mark.parametrize("mode", ["register", "deregister", "publish"])
def test_publisher_operations_need_the_api_key_and_change_nothing_without_it(hub: Any, mode: str) -> None:
    driver = Driver(hub, public_hub=True)

    missing = driver.post({"hub.mode": mode, "hub.topic": "t2"}, api_key=None)
    wrong = driver.post({"hub.mode": mode, "hub.topic": "t2"}, api_key="wrong")

    assert (missing.status, wrong.status) == (401, 403)
    assert driver.store.topic_exists("t2") is False
    assert driver.events() == []


# Publishing (W3C WebSub 6 and WSO2 WebSubHub)


def test_wso2_publish_of_a_set_payload_enqueues_a_set_event(driver: Driver) -> None:
    body = json.dumps({"events": {LOGIN_SUCCESS: {"user": {"id": "42"}}}}).encode()
    reply = driver.post(
        query={"hub.mode": "publish", "hub.topic": TOPIC}, body=body, content_type="application/json"
    )

    assert (reply.status, reply.body) == (202, ACCEPTED)
    [event] = driver.events()
    assert isinstance(event, SetEvent)
    assert event.topic == TOPIC
    assert LOGIN_SUCCESS in event.claims["events"]
    assert event.hub_url == f"{BASE_URL}/hub"


def test_wso2_publish_of_other_content_enqueues_it_byte_for_byte(driver: Driver) -> None:
    body = b'{"hello": "world"}  '
    reply = driver.post(
        query={"hub.mode": "publish", "hub.topic": TOPIC},
        body=body,
        content_type="application/json; charset=utf-8",
    )

    assert reply.status == 202
    [event] = driver.events()
    assert isinstance(event, ContentEvent)
    assert (event.body, event.content_type) == (body, "application/json; charset=utf-8")


def test_wso2_publish_with_invalid_set_payload_is_refused(driver: Driver) -> None:
    reply = driver.post(
        query={"hub.mode": "publish", "hub.topic": TOPIC},
        body=b'{"events": {"not a uri": 5}}',
        content_type="application/json",
    )

    assert reply.status == 400
    assert driver.events() == []


def test_w3c_publish_fetches_the_topic_and_distributes_its_bytes(hub: Any, callbacks: CallbackServer) -> None:
    driver = Driver(hub)
    topic = callbacks.url("/feed.txt")
    callbacks.behaviour["/feed.txt"] = "wrong"  # serves b"not the challenge" as text/plain
    driver.register(topic)

    reply = driver.post({"hub.mode": "publish", "hub.url": topic})

    assert reply.status == 202
    [event] = driver.events()
    assert isinstance(event, ContentEvent)
    assert (event.topic, event.body, event.content_type) == (topic, b"not the challenge", "text/plain")


def test_w3c_publish_with_hub_topic_works_too(hub: Any, callbacks: CallbackServer) -> None:
    driver = Driver(hub)
    topic = callbacks.url("/feed")
    driver.register(topic)

    assert driver.post({"hub.mode": "publish", "hub.topic": topic}).status == 202
    assert len(driver.events()) == 1


def test_w3c_publish_of_a_failing_topic_url_is_refused(hub: Any, callbacks: CallbackServer) -> None:
    driver = Driver(hub)
    topic = callbacks.url("/missing")
    callbacks.behaviour["/missing"] = 404
    driver.register(topic)

    reply = driver.post({"hub.mode": "publish", "hub.url": topic})

    # The status stays in the hub's log: told to the caller it would be a scanning oracle.
    assert (reply.status, reply.body) == (400, FETCH_FAILED)
    assert driver.events() == []


def test_w3c_publish_of_a_topic_url_the_guard_refuses(hub: Any, callbacks: CallbackServer) -> None:
    driver = Driver(hub, allow_private_callbacks=False)
    topic = callbacks.url("/feed")
    driver.register(topic)

    reply = driver.post({"hub.mode": "publish", "hub.url": topic})

    assert (reply.status, reply.body) == (400, FETCH_FAILED)
    assert callbacks.received == []


def test_publishing_to_an_unknown_topic_is_refused_unless_topics_are_open(hub: Any) -> None:
    closed = Driver(hub)
    refused = closed.post(
        query={"hub.mode": "publish", "hub.topic": "nope"}, body=b"hi", content_type="text/plain"
    )
    assert refused.status == 404
    assert closed.events() == []

    opened = Driver(hub, open_topics=True)
    accepted = opened.post(
        query={"hub.mode": "publish", "hub.topic": "nope"}, body=b"hi", content_type="text/plain"
    )
    assert accepted.status == 202
    assert len(opened.events()) == 1


# What the dispatcher reads


def test_an_expired_subscription_is_not_listed_even_before_ttl_removes_it(
    driver: Driver, callbacks: CallbackServer
) -> None:
    driver.subscribe(callbacks.url(), **{"hub.lease_seconds": "300"})
    driver.run_verifications()
    [subscription] = driver.active().values()

    assert driver.store.list_active(TOPIC, now=subscription.expires_at - 1)[0] == [subscription]
    assert driver.store.list_active(TOPIC, now=subscription.expires_at)[0] == []
    assert driver.store.get_active(TOPIC, callbacks.url(), now=subscription.expires_at) is None


def test_list_active_pages_in_sort_key_order(driver: Driver, callbacks: CallbackServer) -> None:
    for name in "dcbae":
        driver.subscribe(callbacks.url(f"/{name}"))
    driver.run_verifications()
    now = driver.now

    first, cursor = driver.store.list_active(TOPIC, now=now, limit=2)
    second, cursor2 = driver.store.list_active(TOPIC, now=now, start_after=cursor, limit=2)
    third, cursor3 = driver.store.list_active(TOPIC, now=now, start_after=cursor2, limit=2)

    # Sort keys are hashes of the callbacks: the pages follow their order, each callback once.
    pages = first + second + third
    assert sorted(s.callback.rsplit("/", 1)[1] for s in pages) == ["a", "b", "c", "d", "e"]
    assert [s.sort_key for s in pages] == sorted(s.sort_key for s in pages)
    assert (len(first), len(second), len(third)) == (2, 2, 1)
    assert cursor3 is None


def test_remove_ends_a_subscription(driver: Driver, callbacks: CallbackServer) -> None:
    driver.subscribe(callbacks.url())
    driver.run_verifications()

    driver.store.remove(TOPIC, callbacks.url())

    assert driver.active() == {}


def test_secrets_are_encrypted_at_rest(driver: Driver, callbacks: CallbackServer) -> None:
    driver.subscribe(callbacks.url(), **{"hub.secret": "plain-secret-value"})
    driver.run_verifications()

    items = driver.clients.dynamodb.scan(TableName=driver.settings.table_name)["Items"]
    stored = [item for item in items if item["sk"]["S"].startswith("SUB#")]
    assert stored
    assert all(b"plain-secret-value" not in item["secret"]["B"] for item in stored)
    assert driver.active()[callbacks.url()].secret == b"plain-secret-value"


def test_wso2_publish_of_a_set_payload_with_nan_is_refused(driver: Driver) -> None:
    reply = driver.post(
        query={"hub.mode": "publish", "hub.topic": TOPIC},
        body=b'{"events": {"' + LOGIN_SUCCESS.encode() + b'": {"risk": NaN}}}',
        content_type="application/json",
    )

    assert reply.status == 400
    assert "finite" in reply.body
    assert driver.events() == []


def test_wso2_publish_of_non_set_content_with_nan_is_distributed_as_is(driver: Driver) -> None:
    body = b'{"reading": NaN}'
    reply = driver.post(
        query={"hub.mode": "publish", "hub.topic": TOPIC}, body=body, content_type="text/plain"
    )

    assert reply.status == 202
    [event] = driver.events()
    assert isinstance(event, ContentEvent)
    assert event.body == body
