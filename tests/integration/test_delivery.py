"""Delivery under moto: ingest → SQS → dispatch → real HTTP subscribers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
from counting import Counting
from jwcrypto import jwk, jws
from listeners import SubscriberServer
from operator_cli import run_cli
from seeding import seed_subscription

from devstack.functions import load_function
from devstack.gateway import proxy_event
from sethub.catalog import WSO2_EVENT_TYPES
from sethub.clients import AwsClients
from sethub.dispatch import Dispatcher
from sethub.ingest import Ingestor
from sethub.keyring import signer_for
from sethub.outbound import GuardedHttp
from sethub.records import DeliveryRecords
from sethub.store import SubscriptionStore
from sethub.subscriptions import subscription_id

ROOT = Path(__file__).resolve().parents[2]
LOGIN = WSO2_EVENT_TYPES["loginSuccess"]
DEADLINE_SECONDS = 60


# Subscribers: one real HTTP server, one path per subscriber.


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


Behaviour = Callable[[Received], tuple[int, bytes]]


@dataclass
class Subscribers:
    base_url: str
    received: list[Received] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}?token=abc"

    def of(self, name: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == f"/{name}"]

    def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        with self.lock:
            while not predicate():
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"timed out waiting for {what}"
                self.lock.wait(remaining)


@pytest.fixture
def subscribers() -> Iterator[Subscribers]:
    state: dict[str, Subscribers] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            subs = state["subs"]
            length = int(self.headers.get("Content-Length") or 0)
            path = self.path.split("?")[0]
            received = Received(
                path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
            )
            with subs.lock:
                subs.received.append(received)
                subs.log.append(("received", path))
                subs.lock.notify_all()
            behaviour = subs.behaviours.get(path.lstrip("/"))
            status, body = behaviour(received) if behaviour else (202, b"")
            with subs.lock:
                subs.log.append(("answered", path))
                subs.lock.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = SubscriberServer(("127.0.0.1", 0), Handler)
    subs = Subscribers(base_url=f"http://127.0.0.1:{server.server_address[1]}")
    state["subs"] = subs
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield subs
    server.shutdown()
    server.server_close()


# Helpers


def subscribe(hub: Any, topic: str, callback: str, fmt: str = "jwt", secret: bytes | None = None) -> None:
    seed_subscription(SubscriptionStore(hub.clients, hub.settings), topic, callback, fmt=fmt, secret=secret)


def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message now on the queue, deleted, as Lambda SQS records."""
    records: list[dict[str, Any]] = []
    while True:
        response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = response.get("Messages", [])
        if not messages:
            return records
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            records.append(
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "md5OfBody": message["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:queue",
                    "awsRegion": "us-east-1",
                }
            )


def bodies(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(record["messageId"], record["body"]) for record in records]


def api_event(
    method: str, path: str, *, body: str | None = None, api_key: str | None = None
) -> dict[str, Any]:
    headers = [("Host", "127.0.0.1:3000"), ("Content-Type", "application/json")]
    if api_key:
        headers.append(("x-api-key", api_key))
    return proxy_event(resource=path, method=method, headers=headers, body=(body or "").encode())


def dispatcher_for(hub: Any, clients: AwsClients | None = None, **settings: Any) -> Dispatcher:
    configured = replace(hub.settings, **settings)
    return Dispatcher(clients or hub.clients, configured, http=GuardedHttp.from_settings(configured))


def ingest(hub: Any, events: list[dict[str, Any]]) -> list[dict[str, str]]:
    return Ingestor(hub.clients, hub.settings).ingest(events, base_url="http://127.0.0.1:3000")


def event(topic: str, **claims: Any) -> dict[str, Any]:
    return {"topic": topic, "events": {LOGIN: {"user": {"id": "42"}}}, **claims}


# The walking skeleton (issue 2, item 5)


def test_walking_skeleton_event_goes_from_api_to_a_verified_set(hub, subscribers, monkeypatch):
    for name, value in hub.env.items():
        monkeypatch.setenv(name, value)
    subscribe(hub, "acme.login", subscribers.url("crm"))
    functions = hub.provisioned.functions
    ingest_fn = load_function(functions["IngestFunction"], ROOT, "us-east-1")
    dispatch_fn = load_function(functions["DispatchFunction"], ROOT, "us-east-1")
    websub_fn = load_function(functions["WebSubFunction"], ROOT, "us-east-1")

    body = json.dumps(event("acme.login", jti="skeleton-1", txn="8675309"))
    answer = ingest_fn.invoke(api_event("POST", "/events", body=body, api_key=hub.api_key))
    assert answer["statusCode"] == 202, answer["body"]
    assert json.loads(answer["body"]) == {"accepted": [{"jti": "skeleton-1", "topic": "acme.login"}]}

    records = drain(hub.clients.sqs, hub.settings.events_queue_url)
    assert len(records) == 1
    result = dispatch_fn.invoke({"Records": records})
    assert result == {"batchItemFailures": []}

    (delivered,) = subscribers.of("crm")
    assert delivered.headers["content-type"] == "application/secevent+jwt"
    jwks = json.loads(websub_fn.invoke(api_event("GET", "/.well-known/jwks.json"))["body"])
    token = delivered.body.decode()
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "secevent+jwt"
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    # Bound to its topic: a verifier names its own topic as the audience.
    claims = jwt.decode(token, key=key.key, algorithms=[header["alg"]], audience="acme.login")
    assert claims["aud"] == "acme.login"
    assert claims["jti"] == "skeleton-1"
    assert claims["txn"] == "8675309"
    assert claims["events"] == {LOGIN: {"user": {"id": "42"}}}
    assert claims["iss"] == "http://127.0.0.1:3000"


def test_ingest_refuses_a_request_with_one_invalid_event_and_enqueues_nothing(hub, monkeypatch):
    for name, value in hub.env.items():
        monkeypatch.setenv(name, value)
    SubscriptionStore(hub.clients, hub.settings).register_topic("acme.login")
    ingest_fn = load_function(hub.provisioned.functions["IngestFunction"], ROOT, "us-east-1")
    body = json.dumps({"events": [event("acme.login"), {"topic": "acme.login", "events": {"not a uri": {}}}]})

    answer = ingest_fn.invoke(api_event("POST", "/events", body=body, api_key=hub.api_key))

    assert answer["statusCode"] == 400
    refusal = json.loads(answer["body"])
    assert [problem["index"] for problem in refusal["problems"]] == [1]
    assert drain(hub.clients.sqs, hub.settings.events_queue_url) == []
    wrong_key = ingest_fn.invoke(
        api_event("POST", "/events", body=json.dumps(event("acme.login")), api_key="nope")
    )
    assert wrong_key["statusCode"] == 403


def test_a_resent_jti_is_accepted_and_delivered_once(hub, subscribers):
    subscribe(hub, "acme.login", subscribers.url("crm"))
    first = ingest(hub, [event("acme.login", jti="once")])
    again = ingest(hub, [event("acme.login", jti="once")])
    assert first == again == [{"jti": "once", "topic": "acme.login"}]

    records = drain(hub.clients.sqs, hub.settings.events_queue_url)
    dispatcher_for(hub).dispatch(bodies(records))

    assert len(subscribers.of("crm")) == 1


# What a subscriber receives


def test_set_verifies_with_jwcrypto_against_the_jwks(hub, subscribers):
    subscribe(hub, "acme.login", subscribers.url("siem"))
    ingest(hub, [event("acme.login", sub_id={"format": "email", "email": "ada@example.com"})])
    dispatcher_for(hub).dispatch(bodies(drain(hub.clients.sqs, hub.settings.events_queue_url)))

    (delivered,) = subscribers.of("siem")
    jwks = signer_for(hub.clients, hub.settings).jwks()
    token = jws.JWS()
    token.deserialize(delivered.body.decode())
    token.verify(jwk.JWKSet.from_json(json.dumps(jwks)))
    claims = json.loads(token.payload)
    assert claims["sub_id"] == {"format": "email", "email": "ada@example.com"}
    assert "exp" not in claims
    assert delivered.headers["accept"] == "application/json"
    assert delivered.headers["x-hub-messageid"] == claims["jti"]
    assert delivered.headers["link"] == '<http://127.0.0.1:3000/hub>; rel="hub", <acme.login>; rel="self"'


def test_json_format_carries_the_claims_with_a_valid_hmac(hub, subscribers):
    secret = b"s3cret-of-the-crm"
    subscribe(hub, "acme.login", subscribers.url("crm"), fmt="json", secret=secret)
    subscribe(hub, "acme.login", subscribers.url("plain"), fmt="json")
    (accepted,) = ingest(hub, [event("acme.login")])
    dispatcher_for(hub).dispatch(bodies(drain(hub.clients.sqs, hub.settings.events_queue_url)))

    (delivered,) = subscribers.of("crm")
    assert delivered.headers["content-type"] == "application/json"
    expected = hmac.new(secret, delivered.body, hashlib.sha256).hexdigest()
    assert delivered.headers["x-hub-signature"] == f"sha256={expected}"
    assert json.loads(delivered.body)["jti"] == accepted["jti"]
    (unsigned,) = subscribers.of("plain")
    assert "x-hub-signature" not in unsigned.headers


def test_every_format_and_every_retry_carries_a_valid_hmac(hub, subscribers):
    # GIVEN subscriptions with secrets in each format, one of them failing once
    secrets = {"signed-jwt": b"secret-of-jwt", "signed-json": b"secret-of-json", "flaky": b"secret-of-flaky"}
    subscribe(hub, "acme.login", subscribers.url("signed-jwt"), fmt="jwt", secret=secrets["signed-jwt"])
    subscribe(hub, "acme.login", subscribers.url("signed-json"), fmt="json", secret=secrets["signed-json"])
    subscribe(hub, "acme.login", subscribers.url("flaky"), fmt="jwt", secret=secrets["flaky"])
    first_answers: dict[str, int] = {}

    def fail_each_body_once(received: Received) -> tuple[int, bytes]:
        seen = first_answers.setdefault(received.headers["x-hub-messageid"], 0)
        first_answers[received.headers["x-hub-messageid"]] = seen + 1
        return (503, b"") if seen == 0 else (202, b"")

    subscribers.behaviours["flaky"] = fail_each_body_once

    # WHEN a SET event and published non-SET content are delivered, with one retry round
    ingest(hub, [event("acme.login")])
    Ingestor(hub.clients, hub.settings).enqueue_content(
        "acme.login", b"<feed/>", "application/xml", base_url="http://127.0.0.1:3000"
    )
    dispatcher = dispatcher_for(hub, retry_schedule=(0,))
    dispatcher.dispatch(bodies(drain(hub.clients.sqs, hub.settings.events_queue_url)))
    dispatcher.dispatch(bodies(drain(hub.clients.sqs, hub.settings.retry_queue_url)))

    # THEN every request, first attempt or retry, carries the HMAC of its exact body
    content_types = {
        name: sorted(r.headers["content-type"] for r in subscribers.of(name)) for name in secrets
    }
    assert content_types == {
        "signed-jwt": ["application/secevent+jwt", "application/xml"],
        "signed-json": ["application/json", "application/xml"],
        "flaky": ["application/secevent+jwt"] * 2 + ["application/xml"] * 2,
    }
    for name, secret in secrets.items():
        for received in subscribers.of(name):
            expected = hmac.new(secret, received.body, hashlib.sha256).hexdigest()
            assert received.headers["x-hub-signature"] == f"sha256={expected}", (name, received.headers)


def test_a_jti_is_accepted_again_once_its_marker_has_expired(hub, subscribers):
    subscribe(hub, "acme.login", subscribers.url("crm"))
    clock = {"now": 1_764_190_000.0}

    def ingest_at(hours: float) -> None:
        at = clock["now"] + hours * 3600
        Ingestor(hub.clients, hub.settings, now=lambda: at).ingest(
            [event("acme.login", jti="resent")], base_url="http://127.0.0.1:3000"
        )

    # GIVEN an event accepted with a jti, and re-sent within the 48 hours the README promises
    ingest_at(0)
    ingest_at(47.9)
    assert len(drain(hub.clients.sqs, hub.settings.events_queue_url)) == 1

    # WHEN it is re-sent after its marker expired (DynamoDB TTL has not deleted it yet)
    ingest_at(48 + 1 / 3600)

    # THEN it is a new event again and is delivered
    records = drain(hub.clients.sqs, hub.settings.events_queue_url)
    assert len(records) == 1
    dispatcher_for(hub).dispatch(bodies(records))
    assert [r.headers["x-hub-messageid"] for r in subscribers.of("crm")] == ["resent"]


def test_wso2_payload_passes_through_unchanged(hub, subscribers):
    subscribe(hub, "myorg.schema.wso2.v1.event.login", subscribers.url("crm"), fmt="json")
    payload = {
        "iss": "https://api.asgardeo.io/t/myorg",
        "jti": "051f0c37-b689-44d4-b7d2-29b980ece273",
        "iat": 1751705149662,
        "rci": "05268edb-9a87-4656-87c0-0fb674dd03b1",
        "events": {
            LOGIN: {
                "user": {
                    "id": "d4002616",
                    "claims": [{"uri": "http://wso2.org/claims/username", "value": "p"}],
                },
                "tenant": {"id": "12402", "name": "myorg"},
                "authenticationMethods": ["BasicAuthenticator"],
            }
        },
    }
    ingest(hub, [{"topic": "myorg.schema.wso2.v1.event.login", **payload}])
    dispatcher_for(hub).dispatch(bodies(drain(hub.clients.sqs, hub.settings.events_queue_url)))

    (delivered,) = subscribers.of("crm")
    assert json.loads(delivered.body) == payload


# Outcomes, retries, scale


def test_fast_subscribers_are_served_before_a_slow_one_answers(hub, subscribers):
    fast = [f"fast{i}" for i in range(30)]
    for name in fast:
        subscribe(hub, "acme.login", subscribers.url(name))
    subscribe(hub, "acme.login", subscribers.url("slow"))

    def fast_received() -> int:
        return sum(1 for what, path in subscribers.log if what == "received" and path != "/slow")

    def slow(_: Received) -> tuple[int, bytes]:
        # The slow subscriber answers once every fast one has been served; a dispatcher that
        # waited for it first would leave it waiting until the bound (below the delivery
        # timeout), and then the fast ones would arrive after its answer.
        deadline = time.monotonic() + hub.settings.delivery_timeout_seconds / 2
        with subscribers.lock:
            while fast_received() < len(fast) and (remaining := deadline - time.monotonic()) > 0:
                subscribers.lock.wait(remaining)
        return 202, b""

    subscribers.behaviours["slow"] = slow
    ingest(hub, [event("acme.login")])
    dispatcher_for(hub).dispatch(bodies(drain(hub.clients.sqs, hub.settings.events_queue_url)))

    answered_slow = subscribers.log.index(("answered", "/slow"))
    received_fast = [
        i for i, (what, path) in enumerate(subscribers.log) if what == "received" and path != "/slow"
    ]
    assert len(received_fast) == 30
    assert max(received_fast) < answered_slow


def test_a_failing_subscriber_gets_the_same_body_again_and_its_neighbour_once(hub, subscribers):
    subscribe(hub, "acme.login", subscribers.url("flaky"))
    subscribe(hub, "acme.login", subscribers.url("steady"))
    failures = iter([503, 500])
    subscribers.behaviours["flaky"] = lambda _: (next(failures, 202), b"")
    ingest(hub, [event("acme.login")])
    dispatcher = dispatcher_for(hub, retry_schedule=(0, 0, 0))

    dispatcher.dispatch(bodies(drain(hub.clients.sqs, hub.settings.events_queue_url)))
    for _ in range(2):
        dispatcher.dispatch(bodies(drain(hub.clients.sqs, hub.settings.retry_queue_url)))

    flaky = subscribers.of("flaky")
    assert len(flaky) == 3
    assert len({r.body for r in flaky}) == 1
    assert len({r.headers["x-hub-messageid"] for r in flaky}) == 1
    assert len(subscribers.of("steady")) == 1
    assert drain(hub.clients.sqs, hub.settings.retry_queue_url) == []
    jti = flaky[0].headers["x-hub-messageid"]
    # Records name a subscription by its id (the callback URL carries a token).
    names = {subscription_id("acme.login", subscribers.url(name)): name for name in ("flaky", "steady")}
    statuses = sorted(
        (names[a.subscription_id], a.attempt, a.status)
        for a in DeliveryRecords(hub.clients, hub.settings).for_event(jti)
    )
    assert statuses == [
        ("flaky", 1, "retrying"),
        ("flaky", 2, "retrying"),
        ("flaky", 3, "ok"),
        ("steady", 1, "ok"),
    ]


def test_exhausted_retries_become_a_dead_letter_without_the_secret(hub, subscribers):
    subscribe(hub, "acme.login", subscribers.url("down"), secret=b"never-in-a-dead-letter")
    subscribers.behaviours["down"] = lambda _: (500, b"")
    ingest(hub, [event("acme.login")])
    dispatcher = dispatcher_for(hub, retry_schedule=(0,))

    dispatcher.dispatch(bodies(drain(hub.clients.sqs, hub.settings.events_queue_url)))
    dispatcher.dispatch(bodies(drain(hub.clients.sqs, hub.settings.retry_queue_url)))

    (dead,) = drain(hub.clients.sqs, hub.settings.dead_letter_queue_url)
    record = json.loads(dead["body"])
    assert record["attempts"] == 2
    assert record["last_error"] == "HTTP 500"
    assert record["callback"] == subscribers.url("down")
    assert "never-in-a-dead-letter" not in dead["body"]
    assert len(subscribers.of("down")) == 2


def test_replay_moves_dead_letters_back_with_attempts_reset(hub, subscribers):
    subscribe(hub, "acme.login", subscribers.url("back"))
    outcomes = iter([500, 500])
    subscribers.behaviours["back"] = lambda _: (next(outcomes, 202), b"")
    ingest(hub, [event("acme.login")])
    dispatcher = dispatcher_for(hub, retry_schedule=(0,))
    dispatcher.dispatch(bodies(drain(hub.clients.sqs, hub.settings.events_queue_url)))
    dispatcher.dispatch(bodies(drain(hub.clients.sqs, hub.settings.retry_queue_url)))
    queues = {
        "SETHUB_DEAD_LETTER_QUEUE_URL": hub.settings.dead_letter_queue_url,
        "SETHUB_RETRY_QUEUE_URL": hub.settings.retry_queue_url,
    }
    replay = ["dead-letters", "replay", "--json"]

    assert run_cli([*replay, "--dry-run"], clients=hub.clients, env=queues)[0] == 0
    assert drain(hub.clients.sqs, hub.settings.retry_queue_url) == []
    code, out, _ = run_cli(replay, clients=hub.clients, env=queues)

    assert code == 0
    assert json.loads(out)["moved"] == 1
    assert drain(hub.clients.sqs, hub.settings.dead_letter_queue_url) == []
    (moved,) = drain(hub.clients.sqs, hub.settings.retry_queue_url)
    assert json.loads(moved["body"])["attempts"] == 0
    dispatcher.dispatch(bodies([moved]))
    assert len(subscribers.of("back")) == 3


def test_gone_removes_the_subscription_and_rfc8935_errors_are_final(hub, subscribers):
    subscribe(hub, "acme.login", subscribers.url("gone"))
    subscribe(hub, "acme.login", subscribers.url("picky"))
    subscribers.behaviours["gone"] = lambda _: (410, b"")
    subscribers.behaviours["picky"] = lambda _: (400, b'{"err":"invalid_issuer","description":"who?"}')
    ingest(hub, [event("acme.login")])

    dispatcher_for(hub).dispatch(bodies(drain(hub.clients.sqs, hub.settings.events_queue_url)))

    assert drain(hub.clients.sqs, hub.settings.retry_queue_url) == []
    store = SubscriptionStore(hub.clients, hub.settings)
    assert store.get_active("acme.login", subscribers.url("gone"), now=time.time()) is None
    assert store.get_active("acme.login", subscribers.url("picky"), now=time.time()) is not None


def test_three_flaky_subscribers_receive_all_of_sixty_events(hub, subscribers):
    rng = random.Random(7)
    rng_lock = threading.Lock()

    def flaky(_: Received) -> tuple[int, bytes]:
        with rng_lock:
            failing = rng.random() < 0.3
        return (503, b"") if failing else (202, b"")

    names = ["a", "b", "c"]
    for name in names:
        subscribe(hub, "acme.login", subscribers.url(name), fmt="json")
        subscribers.behaviours[name] = flaky
    accepted = []
    for _ in range(3):
        accepted += ingest(hub, [event("acme.login") for _ in range(20)])
    dispatcher = dispatcher_for(hub, retry_schedule=(0,) * 12)

    dispatcher.dispatch(bodies(drain(hub.clients.sqs, hub.settings.events_queue_url)))
    for _ in range(12):
        retries = drain(hub.clients.sqs, hub.settings.retry_queue_url)
        if not retries:
            break
        dispatcher.dispatch(bodies(retries))

    expected = {item["jti"] for item in accepted}
    for name in names:
        got = {r.headers["x-hub-messageid"] for r in subscribers.of(name)}
        assert got == expected


def test_one_sign_per_event_and_one_query_per_topic_per_batch(hub, subscribers, moto_endpoint):
    kms = Counting(boto3.client("kms"))
    dynamodb = Counting(boto3.client("dynamodb"))
    counted = AwsClients(kms=kms, dynamodb=dynamodb)
    for i in range(5):
        subscribe(hub, "acme.login", subscribers.url(f"login{i}"))
        subscribe(hub, "acme.logout", subscribers.url(f"logout{i}"), fmt="json" if i % 2 else "jwt")
    ingest(hub, [event("acme.login") for _ in range(4)] + [event("acme.logout") for _ in range(3)])
    records = drain(hub.clients.sqs, hub.settings.events_queue_url)
    assert len(records) == 7

    result = dispatcher_for(hub, counted).dispatch(bodies(records))

    assert result.failed == set()
    # Wrapped signing (the default): seven SETs signed in process after one Decrypt of the
    # key and one read of the key ring; no KMS Sign (kms mode: tests/integration/test_signing_modes.py).
    assert kms.calls.get("sign") is None
    assert kms.calls.get("decrypt") == 1
    assert dynamodb.calls.get("get_item") == 1
    assert dynamodb.calls.get("query") == 2
    assert len(subscribers.received) == 7 * 5


def test_a_topic_over_the_shard_size_is_served_in_shards(hub, subscribers):
    for i in range(5):
        subscribe(hub, "acme.login", subscribers.url(f"s{i}"), fmt="json")
    ingest(hub, [event("acme.login")])
    dispatcher = dispatcher_for(hub, shard_size=2)

    dispatcher.dispatch(bodies(drain(hub.clients.sqs, hub.settings.events_queue_url)))
    assert len(subscribers.received) == 2
    for _ in range(3):
        dispatcher.dispatch(bodies(drain(hub.clients.sqs, hub.settings.events_queue_url)))

    assert sorted(r.path for r in subscribers.received) == [f"/s{i}" for i in range(5)]
    assert drain(hub.clients.sqs, hub.settings.events_queue_url) == []
    assert len({r.body for r in subscribers.received}) == 1


def test_deliveries_that_could_not_finish_in_time_are_handed_to_the_retry_queue(hub, subscribers):
    subscribe(hub, "acme.login", subscribers.url("a"))
    subscribe(hub, "acme.login", subscribers.url("b"))
    ingest(hub, [event("acme.login")])
    dispatcher = dispatcher_for(hub, delivery_timeout_seconds=1.0, retry_schedule=(0,))

    # GIVEN an invocation with no time left for a delivery (two timeouts plus the reserve)
    first = dispatcher.dispatch(bodies(drain(hub.clients.sqs, hub.settings.events_queue_url)), time_left=6.0)

    # THEN nothing is sent, the event message is settled, and both deliveries wait on the retry queue
    assert first.failed == set()
    assert subscribers.received == []
    deferred = drain(hub.clients.sqs, hub.settings.retry_queue_url)
    assert sorted(json.loads(r["body"])["attempts"] for r in deferred) == [0, 0]

    # WHEN the retry queue is consumed with time to spare, each gets its first attempt
    dispatcher.dispatch(bodies(deferred), time_left=60.0)
    assert len(subscribers.of("a")) == len(subscribers.of("b")) == 1
    jti = subscribers.of("a")[0].headers["x-hub-messageid"]
    statuses = sorted(
        (a.attempt, a.status) for a in DeliveryRecords(hub.clients, hub.settings).for_event(jti)
    )
    assert statuses == [(1, "ok"), (1, "ok")]
