"""Verifier starvation (issue 11, finding 3) through the local stack: 50 subscribe requests
naming callbacks on a host that never answers do not hold up a normal subscriber."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
from e2e_harness import StartLocalStack, wait_for  # type: ignore[import-not-found]
from websub_peer import CallbackServer, websub_peer

from sethub.hostlimits import SLOTS_PER_HOST

STALLED_REQUESTS = 50


class StallServer:
    """Accepts connections and never answers; knows how many are open right now, and at most."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.open_now = 0
        self.most_open = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with self._lock:
                self.open_now += 1
                self.most_open = max(self.most_open, self.open_now)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        conn.settimeout(None)
        with conn:
            try:
                while conn.recv(65536):  # until the hub gives up and closes
                    pass
            except OSError:
                pass
        with self._lock:
            self.open_now -= 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._listener.close()


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
