"""`make local` end to end: the stack as a user runs it, exercised over real HTTP."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pytest
from e2e_harness import callback_host, wait_for  # type: ignore[import-not-found]
from listeners import SubscriberServer

from sethub.receiver import Receiver

pytestmark = pytest.mark.e2e

LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"


def _event(topic: str, user: str = "42") -> dict[str, object]:
    return {"topic": topic, "events": {LOGIN: {"user": {"id": user}}}}


@pytest.mark.sam
def test_health_answers_and_the_urls_and_key_are_printed(local_stack):
    status, _, body = local_stack.request("GET", "/health")

    assert status == 200
    assert json.loads(body) == {"status": "ok"}
    output = local_stack.output
    assert local_stack.base_url in output
    assert f"{local_stack.base_url}/hub" in output
    assert f"{local_stack.base_url}/.well-known/jwks.json" in output
    assert "local-dev-key" in output
    # Where subscribers must listen for the functions to reach them (Docker's bridge in sam mode).
    assert f"callback host {callback_host()} " in output


def test_api_key_rules_match_the_deployed_api(start_local_stack):
    stack = start_local_stack(SETHUB_LOCAL_API_KEY="k-e2e-secret")
    event = json.dumps(_event("acme.login")).encode()
    register = b"hub.mode=register&hub.topic=acme.login"
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    # POST /events: API Gateway refuses a missing or wrong key with the template's body.
    missing = stack.request("POST", "/events", body=event)
    wrong = stack.request("POST", "/events", body=event, headers={"x-api-key": "local-dev-key"})
    # POST /hub (not a public hub): the same, at the gateway, so every key is throttled on its own.
    hub_missing = stack.request("POST", "/hub", body=register, headers=form)
    hub_wrong = stack.request("POST", "/hub", body=register, headers={**form, "x-api-key": "nope"})
    # The right key works, on both routes.
    hub_right = stack.request("POST", "/hub", body=register, headers={**form, "x-api-key": "k-e2e-secret"})

    assert missing[0] == 403
    assert wrong[0] == 403
    assert "error" in json.loads(missing[2])
    assert b"k-e2e-secret" not in missing[2] + wrong[2] + hub_wrong[2]
    assert hub_missing[:1] == hub_wrong[:1] == (403,)
    assert json.loads(hub_missing[2]) == json.loads(missing[2])
    assert hub_right[0] == 200
    assert stack.publish(_event("acme.login"))


@pytest.mark.sam
def test_a_published_event_reaches_a_subscriber_signed_and_verified(local_stack):
    receiver = Receiver(
        hub=local_stack.base_url, secret=b"s3cret-of-the-receiver", host=callback_host()
    ).start()
    try:
        callback = f"{receiver.url}/hook?tenant=acme"
        receiver.expect("subscribe", "receiver.login")  # it confirms only the intents it expects
        local_stack.subscribe("receiver.login", callback, **{"hub.secret": "s3cret-of-the-receiver"})

        (jti,) = local_stack.publish(_event("receiver.login", user="ada"))

        (event,) = wait_for(
            lambda: [e for e in receiver.events if e.jti == jti], timeout=15, message=f"delivery of {jti}"
        )
    finally:
        receiver.stop()
    assert event.verified
    assert event.content_type == "application/secevent+jwt"
    assert event.event_types == (LOGIN,)
    assert event.claims["events"][LOGIN] == {"user": {"id": "ada"}}
    assert event.topic == "receiver.login"
    assert receiver.rejected == []


def test_ctrl_c_stops_everything_and_frees_the_port(start_local_stack):
    local_stack = start_local_stack()
    exit_status = local_stack.stop()

    assert exit_status == 0
    with socket.socket() as sock:
        # As any server would: SO_REUSEADDR ignores TIME_WAIT, but not another listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", local_stack.port))
        sock.listen()
    assert "stopping" in local_stack.output


class _StallingSubscriber:
    """A callback that answers verification, and can be made to hang on deliveries."""

    def __init__(self) -> None:
        self.received: set[str] = set()
        self.stalled: list[str] = []
        self.stall = threading.Event()
        self.release = threading.Event()
        subscriber = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                self._reply(200, query.get("hub.challenge", [""])[0].encode())

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                jti = self.headers.get("x-hub-messageId", "")
                if subscriber.stall.is_set():
                    subscriber.stalled.append(jti)
                    subscriber.release.wait(30)
                    return  # the hub that sent this is gone: nobody reads an answer
                subscriber.received.add(jti)
                self._reply(202, b"")

            def log_message(self, format, *args):
                pass

        self.server = SubscriberServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stall"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_events_in_flight_when_the_dispatcher_dies_are_delivered_after_restart(
    start_local_stack, moto_endpoint
):
    # GIVEN a stack on an external moto (it outlives the stack), with in-flight messages
    # becoming visible again 2 s after they were received
    subscriber = _StallingSubscriber()
    try:
        first = start_local_stack(
            moto_endpoint=moto_endpoint, SETHUB_LOCAL_VISIBILITY_TIMEOUT="2", SETHUB_LOCAL_POLLERS="1"
        )
        first.subscribe("acme.crash", subscriber.url)
        subscriber.stall.set()

        # WHEN a batch is being delivered and the whole stack is killed mid-batch
        jtis = first.publish(*(_event("acme.crash", user=str(n)) for n in range(3)))
        wait_for(lambda: subscriber.stalled, timeout=15, message="a delivery in flight")
        first.kill()
        subscriber.stall.clear()
        subscriber.release.set()
        second = start_local_stack(moto_endpoint=moto_endpoint, prefix=first.prefix)

        # THEN every event is delivered by the restarted stack: nothing was lost
        wait_for(
            lambda: set(jtis) <= subscriber.received,
            timeout=30,
            message=f"all of {jtis} delivered after restart, got {subscriber.received}",
        )
        assert second.stop() == 0
    finally:
        subscriber.close()
