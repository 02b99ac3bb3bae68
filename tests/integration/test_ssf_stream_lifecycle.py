"""SSF streams' lifecycle on moto, with the functions' roles: sethub disabling a push stream
whose endpoint keeps failing (and telling it with a stream-updated SET), the flush of a
paused push stream's held SETs surviving a crash and never running twice at once, and a
disabled poll stream dropping what it had queued.

The SSF function's code (``SsfService``) manages streams as SsfFunction's role; dispatch
runs as DispatchFunction's role, pushing to a real HTTP endpoint on 127.0.0.1. Every SET
the endpoint gets is verified with jwcrypto against the SSF JWKS.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from jwcrypto import jwk, jws

from sethub.dispatch import Dispatcher
from sethub.messages import SetEvent, StreamTask, parse_message
from sethub.outbound import GuardedHttp
from sethub.queues import Outgoing, QueueSender
from sethub.retry import DEFAULT_JITTER
from sethub.ssf import routing
from sethub.ssf.auth import SCOPES, Receiver
from sethub.ssf.keys import SsfKeys
from sethub.ssf.service import SsfService
from sethub.ssf.store import SsfStore

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
STREAM_UPDATED = "https://schemas.openid.net/secevent/ssf/event-type/stream-updated"
FLUSH_PAGE = 4
"""Held SETs a flush pushes per task, made small here so that two pages take few events."""
PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
DISABLE_AFTER = 100
RECEIVER = Receiver(client_id="acme-siem", scopes=SCOPES)


@dataclass
class Endpoint:
    """A receiver's push endpoint: answers ``status`` and keeps every SET it was sent."""

    url: str = ""
    status: int = 202
    bodies: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    answer_after: float = 0.0
    """A slow receiver: seconds before it answers (a push's subject is in flight meanwhile)."""
    in_flight: list[str] = field(default_factory=list)
    overlapping: list[str] = field(default_factory=list)
    """Subjects pushed while a push about the same subject was still unanswered."""

    def received(self) -> list[str]:
        with self.lock:
            return list(self.bodies)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    state = Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            payload = body.split(b".")[1]
            subject = json.dumps(
                json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))["sub_id"]
            )
            with state.lock:
                state.bodies.append(body.decode())
                if subject in state.in_flight:
                    state.overlapping.append(subject)
                state.in_flight.append(subject)
            if state.answer_after:
                time.sleep(state.answer_after)  # a slow receiver, not a wait for anything
            with state.lock:
                state.in_flight.remove(subject)
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # a page of pushes arrives at once

    server = Server(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/ssf-push"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


class Clock:
    def __init__(self) -> None:
        self.at = time.time()

    def __call__(self) -> float:
        return self.at


@dataclass
class Transmitter:
    """The SSF function's service and dispatchers (one per simulated container), on one hub."""

    hub: Any
    service: SsfService
    keys: SsfKeys
    clock: Clock

    shared: Dispatcher | None = None

    def dispatcher(self, **overrides: Any) -> Dispatcher:
        """A dispatch container: one kept for the test unless ``overrides`` make another."""
        if not overrides and self.shared is not None:
            return self.shared
        settings = replace(self.hub.settings, retry_schedule=(60,), disable_after_seconds=DISABLE_AFTER)
        made = Dispatcher(
            self.hub.clients_for("DispatchFunction"),
            settings,
            **{"http": GuardedHttp.from_settings(settings), "now": self.clock, **overrides},
        )
        if not overrides:
            self.shared = made
        return made

    def create(self, delivery: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"events_requested": [SESSION_REVOKED], "delivery": delivery}).encode()
        reply = self.service.create(
            RECEIVER, body, iss="http://127.0.0.1:3000", base_url="http://127.0.0.1:3000"
        )
        assert reply.status == 201
        return dict(reply.body)

    def set_status(self, stream_id: str, status: str) -> None:
        body = json.dumps({"stream_id": stream_id, "status": status}).encode()
        assert self.service.set_status(RECEIVER, body, None).status == 200

    def status(self, stream_id: str) -> dict[str, Any]:
        return dict(self.service.get_status(RECEIVER, stream_id).body)

    def tasks(self) -> list[tuple[str, str]]:
        """The stream tasks waiting in the events queue (taken off it, as dispatch would)."""
        sqs = self.hub.clients.sqs
        found: list[tuple[str, str]] = []
        while True:
            answer = sqs.receive_message(QueueUrl=self.hub.settings.events_queue_url, MaxNumberOfMessages=10)
            messages = answer.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                sqs.delete_message(
                    QueueUrl=self.hub.settings.events_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
                if isinstance(parse_message(message["Body"]), StreamTask):
                    found.append((message["MessageId"], message["Body"]))


@pytest.fixture
def transmitter(hub, monkeypatch) -> Transmitter:
    monkeypatch.setattr(routing, "FLUSH_PAGE", FLUSH_PAGE)
    clients = hub.clients_for("SsfFunction")
    store = SsfStore(clients.dynamodb, hub.settings.table_name)
    keys = SsfKeys(
        clients.kms,
        clients.dynamodb,
        table_name=hub.settings.table_name,
        data_key_id=hub.settings.data_key_id,
    )
    clock = Clock()
    service = SsfService(
        store,
        QueueSender(clients.sqs),
        events_queue_url=hub.settings.events_queue_url,
        allow_http=True,
        now=clock,
        ensure_key=lambda: keys.key(create=True),
    )
    return Transmitter(hub, service, keys, clock)


def event(n: int, email: str = "ada@example.com") -> tuple[str, str]:
    """A session-revoked for ``email``, its ``iat`` n seconds in: SETs sort in publication order."""
    claims = {
        "iss": "https://idp.example",
        "jti": str(uuid.uuid4()),
        "iat": 1_760_000_000 + n,
        "sub_id": {"format": "email", "email": email},
        "events": {SESSION_REVOKED: {"initiating_entity": "policy", "event_timestamp": 1_760_000_000 + n}},
    }
    return str(uuid.uuid4()), SetEvent(topic="acme.sessions", claims=claims, hub_url="").to_json()


def verified(compact: str, keys: SsfKeys) -> dict[str, Any]:
    token = jws.JWS()
    token.deserialize(compact)
    token.verify(jwk.JWKSet.from_json(json.dumps(keys.jwks())).get_key(token.jose_header["kid"]), alg="RS256")
    return dict(json.loads(token.payload))


def jtis(bodies: list[str], keys: SsfKeys) -> list[str]:
    return [verified(body, keys)["jti"] for body in bodies]


# ---------------------------------------------------------------------------- sethub disables


def test_a_push_stream_failing_for_disable_after_seconds_is_disabled_and_told_so(transmitter, endpoint):
    stream = transmitter.create({"method": PUSH, "endpoint_url": endpoint.url})
    stream_id = stream["stream_id"]
    endpoint.status = 503
    dispatcher = transmitter.dispatcher()
    start = transmitter.clock.at

    # WHEN its endpoint fails, then fails again within SETHUB_DISABLE_AFTER_SECONDS
    dispatcher.dispatch([event(1)])
    transmitter.clock.at = start + DISABLE_AFTER - 10
    dispatcher.dispatch([event(2)])
    # THEN it is still enabled (failures are retried as for subscribers)
    assert transmitter.status(stream_id)["status"] == "enabled"
    assert transmitter.tasks() == []

    # WHEN it still fails past SETHUB_DISABLE_AFTER_SECONDS with no success meanwhile
    transmitter.clock.at = start + DISABLE_AFTER + 1
    result = dispatcher.dispatch([event(3)])
    assert result.counts["skipped"] == 1  # the failed SET is dropped, not retried

    # THEN sethub disabled it, with a reason the receiver reads from the status endpoint
    status = transmitter.status(stream_id)
    assert status["status"] == "disabled"
    assert "no successful push for 101 seconds" in status["reason"]
    # AND a stream-updated SET goes to the endpoint, retried while it still fails
    tasks = transmitter.tasks()
    assert len(tasks) == 1
    sender = RecordingSender(transmitter.hub.clients_for("DispatchFunction").sqs)
    assert transmitter.dispatcher(sender=sender).dispatch(tasks).counts == {"retrying": 1}
    [retry] = [o.body for url, o in sender.sent if url == transmitter.hub.settings.retry_queue_url]
    endpoint.status = 202
    transmitter.clock.at += 60 * (1 + DEFAULT_JITTER) + 1  # the retry is due, whatever its jitter
    before = len(endpoint.received())
    assert dispatcher.dispatch([("retry", retry)]).counts == {"ok": 1}
    [notice] = [verified(body, transmitter.keys) for body in endpoint.received()[before:]]
    assert notice["events"] == {STREAM_UPDATED: {"status": "disabled", "reason": status["reason"]}}
    assert notice["sub_id"] == {"format": "opaque", "id": stream_id}
    assert notice["aud"] == stream["aud"]

    # AND a disabled stream gets nothing more
    before = len(endpoint.received())
    assert dispatcher.dispatch([event(4)]).counts == {}
    assert len(endpoint.received()) == before


def test_a_success_between_failures_keeps_the_stream_enabled(transmitter, endpoint):
    stream_id = transmitter.create({"method": PUSH, "endpoint_url": endpoint.url})["stream_id"]
    dispatcher = transmitter.dispatcher()
    start = transmitter.clock.at
    endpoint.status = 503
    dispatcher.dispatch([event(1)])
    transmitter.clock.at = start + DISABLE_AFTER / 2
    endpoint.status = 202
    dispatcher.dispatch([event(2)])  # the endpoint is back: its failures are forgotten
    transmitter.clock.at = start + DISABLE_AFTER + 1
    endpoint.status = 503
    dispatcher.dispatch([event(3)])
    assert transmitter.status(stream_id)["status"] == "enabled"
    assert transmitter.tasks() == []


# ---------------------------------------------------------------------------- the flush


def held_stream(transmitter: Transmitter, endpoint: Endpoint, count: int) -> tuple[str, list[str]]:
    """A push stream paused while ``count`` events came, then enabled: its id and held jtis."""
    stream_id = transmitter.create({"method": PUSH, "endpoint_url": endpoint.url})["stream_id"]
    transmitter.set_status(stream_id, "paused")
    # One subject each: a page holds one SET per subject, so these fill whole pages.
    published = [event(n, f"user{n}@example.com") for n in range(count)]
    assert transmitter.dispatcher().dispatch(published).failed == set()
    assert endpoint.received() == []
    store = SsfStore(transmitter.hub.clients.dynamodb, transmitter.hub.settings.table_name)
    held = [queued.jti for queued in store.queued(stream_id, limit=count)[0]]
    assert len(held) == count
    transmitter.set_status(stream_id, "enabled")
    return stream_id, held


# A dispatch container that dies (os._exit, nothing after it runs) when it has sent
# ``survive`` pushes: run as a child process, with the dispatch role's environment.
CRASHING_DISPATCH = """
import json, os, sys, threading
from sethub.clients import AwsClients
from sethub.dispatch import Dispatcher
from sethub.outbound import GuardedHttp
from sethub.settings import Settings
from sethub.ssf import routing

routing.FLUSH_PAGE = int(sys.argv[1])
survive = int(sys.argv[2])
settings = Settings.from_env()
real = GuardedHttp.from_settings(settings)
lock = threading.Lock()
sent = [0]

class CrashingHttp:
    def request(self, method, url, *, headers=None, body=None):
        with lock:
            sent[0] += 1
            if sent[0] > survive:
                os._exit(17)
        return real.request(method, url, headers=headers, body=body)

message_id, body = json.loads(sys.stdin.read())
Dispatcher(AwsClients(), settings, http=CrashingHttp()).dispatch([(message_id, body)])
"""


def crash_dispatching(transmitter: Transmitter, task: tuple[str, str], *, survive: int) -> None:
    env = {**os.environ, **transmitter.hub.env_for("DispatchFunction")}
    child = subprocess.run(
        [sys.executable, "-c", CRASHING_DISPATCH, str(FLUSH_PAGE), str(survive)],
        input=json.dumps(task),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 17, child.stderr


def drain(transmitter: Transmitter, dispatcher: Dispatcher) -> None:
    """Dispatch stream tasks until the events queue has none (each page queues the next)."""
    for _ in range(10):
        tasks = transmitter.tasks()
        if not tasks:
            return
        assert dispatcher.dispatch(tasks).failed == set()
    raise AssertionError("the flush never ended")


def test_a_flush_that_crashes_mid_page_resumes_and_loses_nothing(transmitter, endpoint):
    count = FLUSH_PAGE + 2
    stream_id, held = held_stream(transmitter, endpoint, count)
    [task] = transmitter.tasks()

    # WHEN the container dies after 2 pushes of the first page (the others never go)
    crash_dispatching(transmitter, task, survive=2)
    assert len(endpoint.received()) <= 2

    # AND SQS delivers the task again to a new container
    restarted = transmitter.dispatcher()
    assert restarted.dispatch([task]).failed == set()
    drain(transmitter, restarted)

    # THEN every held SET arrived (some twice: at least once), pages in order
    received = jtis(endpoint.received(), transmitter.keys)
    assert set(received) == set(held)
    first_seen = list(dict.fromkeys(received))
    assert set(first_seen[:FLUSH_PAGE]) == set(held[:FLUSH_PAGE])
    assert set(first_seen[FLUSH_PAGE:]) == set(held[FLUSH_PAGE:])
    # AND nothing is left held, and the flush let go of the stream
    store = SsfStore(transmitter.hub.clients.dynamodb, transmitter.hub.settings.table_name)
    assert store.queued(stream_id, limit=10) == ([], False)
    assert store.flush_lease_until(stream_id) == 0


class RecordingSender(QueueSender):
    """The real sender, keeping what it was asked to send."""

    def __init__(self, sqs: Any) -> None:
        super().__init__(sqs)
        self.sent: list[tuple[str, Outgoing]] = []

    def send_all(self, queue_url: str, messages: Any) -> list[int]:
        self.sent += [(queue_url, message) for message in messages]
        return super().send_all(queue_url, messages)


def test_two_flushes_at_once_push_each_held_set_once(transmitter, endpoint):
    count = FLUSH_PAGE + 2
    stream_id, held = held_stream(transmitter, endpoint, count)
    transmitter.tasks()  # the enable's own flush task: two others race instead
    # GIVEN two flushes of the stream (say, enabled twice in a row), one container each
    first, second = (
        StreamTask(
            client_id=RECEIVER.client_id, stream_id=stream_id, action="flush", payload={"lease": n, "page": 0}
        )
        for n in ("first-flush", "second-flush")
    )
    senders = [RecordingSender(transmitter.hub.clients_for("DispatchFunction").sqs) for _ in range(2)]
    dispatchers = [transmitter.dispatcher(sender=sender) for sender in senders]
    barrier = threading.Barrier(2)

    def run(dispatcher: Dispatcher, task: StreamTask) -> None:
        barrier.wait()
        assert dispatcher.dispatch([(str(uuid.uuid4()), task.to_json())]).failed == set()

    threads = [
        threading.Thread(target=run, args=(dispatcher, task))
        for dispatcher, task in zip(dispatchers, (first, second), strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # THEN one of them pushed a page; the other pushed nothing and put itself back, delayed
    assert len(endpoint.received()) == FLUSH_PAGE
    waited = [
        (outgoing.delay_seconds, json.loads(outgoing.body)["payload"]["lease"])
        for sender in senders
        for _, outgoing in sender.sent
        if json.loads(outgoing.body)["payload"]["page"] == 0
    ]
    assert len(waited) == 1
    delay, loser = waited[0]
    assert delay > 0
    # WHEN the winner's next page comes, and then the loser's delayed task
    drain(transmitter, transmitter.dispatcher())
    late = first if loser == "first-flush" else second
    assert transmitter.dispatcher().dispatch([(str(uuid.uuid4()), late.to_json())]).failed == set()

    # THEN each held SET was pushed exactly once, page after page (a page's pushes run side by side)
    received = jtis(endpoint.received(), transmitter.keys)
    assert sorted(received) == sorted(held)
    assert set(received[:FLUSH_PAGE]) == set(held[:FLUSH_PAGE])


# ---------------------------------------------------------------------------- disabled drops


def test_disabling_a_poll_stream_drops_what_it_had_queued(transmitter):
    stream = transmitter.create({"method": POLL})
    stream_id = stream["stream_id"]
    dispatcher = transmitter.dispatcher()
    assert dispatcher.dispatch([event(1), event(2)]).failed == set()
    poll = json.dumps({"returnImmediately": True, "maxEvents": 0}).encode()
    store = SsfStore(transmitter.hub.clients.dynamodb, transmitter.hub.settings.table_name)
    assert len(store.queued(stream_id, limit=10)[0]) == 2

    # WHEN the receiver disables the stream, then enables it again
    transmitter.set_status(stream_id, "disabled")
    transmitter.set_status(stream_id, "enabled")

    # THEN the SETs queued before are gone (SSF 8.1.2.1: a disabled stream holds nothing)
    poll = json.dumps({"returnImmediately": True}).encode()
    assert transmitter.service.poll(RECEIVER, poll, stream_id).body == {"sets": {}, "moreAvailable": False}
    # AND an event after the enable is delivered as usual
    assert dispatcher.dispatch([event(3)]).failed == set()
    sets = transmitter.service.poll(RECEIVER, poll, stream_id).body["sets"]
    assert [verified(compact, transmitter.keys)["iat"] for compact in sets.values()] != []
    assert len(sets) == 1


def test_dispatch_never_overwrites_a_receivers_concurrent_change(transmitter, endpoint):
    stream_id = transmitter.create({"method": PUSH, "endpoint_url": endpoint.url})["stream_id"]
    dispatch = SsfStore(
        transmitter.hub.clients_for("DispatchFunction").dynamodb, transmitter.hub.settings.table_name
    )
    rounds: list[str | None] = []

    def stamp(stream: Any) -> Any:
        rounds.append(stream.description)
        if len(rounds) == 1:
            # The receiver updates its stream between dispatch's read and its write.
            body = json.dumps({"stream_id": stream_id, "description": "renamed"}).encode()
            assert (
                transmitter.service.update(
                    RECEIVER, body, base_url="http://127.0.0.1:3000", replace_all=False
                ).status
                == 200
            )
        return replace(stream, failing_since=1234)

    dispatch.change_stream(RECEIVER.client_id, stream_id, stamp)

    # THEN dispatch's write was refused, the stream read again and changed as it now is
    assert rounds == [None, "renamed"]
    stored = dispatch.get_stream(RECEIVER.client_id, stream_id)
    assert stored is not None
    assert (stored.description, stored.failing_since) == ("renamed", 1234)
    # AND the copy dispatch routes by says the same
    [indexed] = [s for s in dispatch.streams_for_type(SESSION_REVOKED) if s.stream_id == stream_id]
    assert (indexed.description, indexed.failing_since) == ("renamed", 1234)


def test_a_subjects_held_sets_are_flushed_in_the_order_they_came(transmitter, endpoint):
    stream_id = transmitter.create({"method": PUSH, "endpoint_url": endpoint.url})["stream_id"]
    transmitter.set_status(stream_id, "paused")
    # GIVEN two subjects' events held, interleaved, more than a page of them
    people = ["ada@example.com", "bob@example.com"]
    published = [event(n, people[n % 2]) for n in range(2 * FLUSH_PAGE)]
    assert transmitter.dispatcher().dispatch(published).failed == set()
    store = SsfStore(transmitter.hub.clients.dynamodb, transmitter.hub.settings.table_name)
    held = [verified(queued.jws, transmitter.keys) for queued in store.queued(stream_id, limit=100)[0]]

    # WHEN the stream is enabled and its receiver answers slowly (pushes overlap if sent together)
    endpoint.answer_after = 0.1
    transmitter.set_status(stream_id, "enabled")
    drain(transmitter, transmitter.dispatcher())

    # THEN every held SET arrived, never two about one subject at once, each subject's in order
    received = [verified(body, transmitter.keys) for body in endpoint.received()]
    assert sorted(c["jti"] for c in received) == sorted(c["jti"] for c in held)
    assert endpoint.overlapping == []
    for person in people:
        order = [c["jti"] for c in received if c["sub_id"]["email"] == person]
        assert order == [c["jti"] for c in held if c["sub_id"]["email"] == person]
