"""One total deadline per outbound request: DNS, connect, send and the whole response share it.

The servers and resolvers here are real (sockets on 127.0.0.1, a resolver the client
calls on its lookup pool); their slowness is what is under test. No assertion is about
wall time: each case is built so that every step alone fits in the budget but the steps
together cannot, so only a total deadline gives the outcome asserted
(``OutboundTimeoutError``), and the servers report that the client closed the connection.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from sethub import outbound
from sethub.errors import OutboundTimeoutError
from sethub.netguard import AddrInfo
from sethub.outbound import GuardedHttp

pytestmark = pytest.mark.usefixtures("fresh_watchdog")

SocketPair = Callable[[], tuple[socket.socket, socket.socket]]
"""Makes a connected pair of sockets (ours, the peer's): the ``socket_pair`` fixture."""
WAIT_SECONDS = 10.0
"""How long a test waits for a server to report what it saw (a deadline, not a duration)."""


@dataclass
class TrickleServer:
    """Accepts connections, reads the request, waits ``delay`` seconds, then sends a valid
    response one byte every ``interval`` seconds (it never ends), until the client closes."""

    delay: float = 0.0
    interval: float = 0.05
    close_delimited: bool = False
    """A body without a length, ended by closing the connection (HTTP/1.1 allows it)."""
    port: int = 0
    connections: int = 0
    closed_by_client: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)

    def serve(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue  # the listener's timeout lets the loop notice a stop request
            except OSError:
                return
            conn.settimeout(None)
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            self._stop.wait(self.delay)
            length = b"Connection: close" if self.close_delimited else b"Content-Length: 1000000"
            head = b"HTTP/1.1 200 OK\r\n" + length + b"\r\n\r\n"
            payload = head + b"x" * 1_000_000
            try:
                for index in range(len(payload)):
                    if self._stop.is_set():
                        return
                    conn.sendall(payload[index : index + 1])
                    self._stop.wait(self.interval)
            except OSError:
                # EPIPE / ECONNRESET: the client gave up and closed its end.
                self.closed_by_client.set()


@pytest.fixture
def trickle() -> Iterator[TrickleServer]:
    server = TrickleServer()
    listener = socket.create_server(("127.0.0.1", 0))
    server.port = listener.getsockname()[1]
    listener.settimeout(0.1)
    thread = threading.Thread(target=server.serve, args=(listener,), daemon=True)
    thread.start()
    yield server
    server._stop.set()
    listener.close()
    thread.join(WAIT_SECONDS)


class SlowResolver:
    """Answers every name with 127.0.0.1 after ``delay`` seconds, or never while ``stalled``."""

    def __init__(self, delay: float = 0.0, *, stalled: bool = False) -> None:
        self.delay = delay
        self.calls = 0
        self._release = threading.Event()
        if not stalled:
            self._release.set()
        self._lock = threading.Lock()

    def __call__(self, host: str, port: int) -> Sequence[AddrInfo]:
        with self._lock:
            self.calls += 1
        # A stalled name server: nothing comes back until the test releases it.
        self._release.wait(WAIT_SECONDS)
        time.sleep(self.delay)  # the name server's own slowness, not synchronisation
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    def release(self) -> None:
        self._release.set()


def client(timeout: float, resolver: Any = None) -> GuardedHttp:
    return GuardedHttp(allow_private=True, allow_http=True, timeout=timeout, resolver=resolver)


def test_a_resolver_that_never_answers_times_out_the_request(trickle: TrickleServer) -> None:
    resolver = SlowResolver(stalled=True)
    try:
        with pytest.raises(OutboundTimeoutError, match=r"^resolving the host timed out$"):
            client(0.5, resolver).request("GET", f"http://stalled.example:{trickle.port}/cb")
    finally:
        resolver.release()
    # Nothing was sent: the request never got past DNS.
    assert trickle.connections == 0


def test_callers_of_one_stalled_name_share_one_lookup(trickle: TrickleServer) -> None:
    resolver = SlowResolver(stalled=True)
    http = client(0.5, resolver)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            http.request("GET", f"http://shared-stall.example:{trickle.port}/cb")
        except OutboundTimeoutError as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_SECONDS)
    finally:
        resolver.release()
    assert len(errors) == 8
    # One hostile name holds one lookup thread, however many deliveries wait on it.
    assert resolver.calls == 1


def test_a_lookup_that_spends_the_whole_timeout_leaves_no_time_to_connect(
    trickle: TrickleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # outbound's clock moves only when the resolver says so: no waiting, no timing.
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(outbound, "time", SimpleNamespace(monotonic=lambda: clock.now))

    def late_resolver(host: str, port: int) -> Sequence[AddrInfo]:
        clock.now += 1.5  # the answer comes after the whole request's 1 s
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    with pytest.raises(OutboundTimeoutError, match=r"^connect timed out after 1 s$"):
        client(1.0, late_resolver).request("GET", f"http://late-dns.example:{trickle.port}/cb")
    # No time was left to connect: the server never saw the hub.
    assert trickle.connections == 0


def test_slow_dns_and_a_slow_answer_share_one_deadline(trickle: TrickleServer) -> None:
    # GIVEN DNS taking 0.6 s and a server answering 0.6 s after the request, each well
    # inside a 1 s timeout, and 1.2 s together
    trickle.delay, trickle.interval = 0.6, 0.0
    resolver = SlowResolver(0.6)

    # WHEN one request goes through both
    with pytest.raises(OutboundTimeoutError):
        client(1.0, resolver).request("GET", f"http://slow-dns.example:{trickle.port}/cb")

    # THEN it ran out of time, and the server saw the connection closed
    assert trickle.closed_by_client.wait(WAIT_SECONDS)


def test_a_server_trickling_its_answer_is_cut_off_and_disconnected(trickle: TrickleServer) -> None:
    # Each byte arrives well within the timeout; the whole answer never does.
    trickle.interval = 0.05
    with pytest.raises(OutboundTimeoutError):
        client(0.5).request("GET", f"http://127.0.0.1:{trickle.port}/cb")
    assert trickle.closed_by_client.wait(WAIT_SECONDS)


@dataclass
class SilentListener:
    """Accepts one connection and never reads from it nor writes to it."""

    port: int
    accepted: list[socket.socket]
    thread: threading.Thread

    def connection(self) -> socket.socket:
        """The accepted connection, once the listener has it."""
        self.thread.join(WAIT_SECONDS)
        (conn,) = self.accepted
        return conn


@pytest.fixture
def silent() -> Iterator[SilentListener]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        accepted: list[socket.socket] = []
        thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
        thread.start()
        try:
            yield SilentListener(listener.getsockname()[1], accepted, thread)
        finally:
            thread.join(WAIT_SECONDS)
            for conn in accepted:
                conn.close()


def test_a_server_that_never_reads_the_body_cannot_hold_the_send(silent: SilentListener) -> None:
    # The body (far over the socket buffers) can only be sent as fast as the server reads
    # it, which is never.
    with pytest.raises(OutboundTimeoutError):
        client(0.5).request("POST", f"http://127.0.0.1:{silent.port}/cb", body=b"x" * (64 * 1024 * 1024))


def test_a_body_ended_by_the_connection_cut_off_at_the_deadline_is_a_timeout_not_a_short_body(
    trickle: TrickleServer,
) -> None:
    # The watchdog ends the read by shutting the socket: to the response that looks like the
    # end of a body that has no length, so the cut-off must still be reported as one.
    trickle.close_delimited, trickle.interval = True, 0.05
    with pytest.raises(OutboundTimeoutError, match=r"^read timed out after 0\.5 s$"):
        client(0.5).request("GET", f"http://127.0.0.1:{trickle.port}/cb")
    assert trickle.closed_by_client.wait(WAIT_SECONDS)


def test_a_tls_handshake_never_answered_is_cut_off_at_the_deadline(silent: SilentListener) -> None:
    # The client's hello goes unanswered.
    with pytest.raises(OutboundTimeoutError, match=r"^timed out after 0\.5 s$"):
        client(0.5, SlowResolver()).request("GET", f"https://tls-stall.example:{silent.port}/cb")
    # The hub hung up: the server reads the end of the connection after the hello.
    conn = silent.connection()
    conn.settimeout(WAIT_SECONDS)
    while conn.recv(65536):
        pass


@pytest.fixture
def socket_pair() -> Iterator[SocketPair]:
    """Connected pairs of sockets (ours, the peer's), every one closed after the test."""
    made: list[socket.socket] = []

    def make() -> tuple[socket.socket, socket.socket]:
        pair = socket.socketpair()
        made.extend(pair)
        return pair

    yield make
    for sock in made:
        sock.close()


def _peer_sees_the_end(peer: socket.socket) -> bool:
    peer.settimeout(WAIT_SECONDS)
    return peer.recv(1) == b""


def test_the_watchdog_shuts_the_socket_of_a_request_past_its_deadline_and_only_that_one(
    socket_pair: SocketPair,
) -> None:
    watchdog = outbound._Watchdog()
    late, on_time = outbound._InFlight(time.monotonic() - 1), outbound._InFlight(time.monotonic() + 60)
    late_ends, on_time_ends = socket_pair(), socket_pair()
    late.use(late_ends[0])
    on_time.use(on_time_ends[0])
    watchdog.watch(on_time)
    watchdog.watch(late)

    # The late one's peer sees its connection end; the other's is untouched.
    assert _peer_sees_the_end(late_ends[1])
    assert watchdog.release(late) is True
    on_time_ends[1].sendall(b"still open")
    assert on_time_ends[0].recv(64) == b"still open"
    assert watchdog.release(on_time) is False


def test_a_request_whose_socket_is_already_closed_does_not_stop_the_watchdog(socket_pair: SocketPair) -> None:
    watchdog = outbound._Watchdog()
    gone, late = outbound._InFlight(time.monotonic() - 2), outbound._InFlight(time.monotonic() - 1)
    closed, _ = socket_pair()
    closed.close()
    late_ends = socket_pair()
    gone.use(closed)
    late.use(late_ends[0])
    watchdog.watch(gone)
    watchdog.watch(late)

    # Shutting the closed socket fails; the next request past its deadline is cut anyway.
    assert _peer_sees_the_end(late_ends[1])
    assert (watchdog.release(gone), watchdog.release(late)) == (True, True)


def test_a_socket_taken_up_after_the_deadline_is_shut_at_once(socket_pair: SocketPair) -> None:
    # The watchdog cut the request off while it was still connecting: the socket it then
    # connected must not outlive the deadline.
    request = outbound._InFlight(time.monotonic() - 1)
    request.cut_off = True
    ours, peer = socket_pair()
    request.use(ours)
    assert _peer_sees_the_end(peer)


def test_requests_that_end_in_time_are_forgotten_whatever_order_they_end_in() -> None:
    watchdog = outbound._Watchdog()
    requests = [outbound._InFlight(time.monotonic() + 60 + n) for n in range(20)]
    for request in requests:
        watchdog.watch(request)
    # The second half ends first, then the first half: none of them was cut off.
    assert [watchdog.release(request) for request in requests[10:] + requests[:10]] == [False] * 20
    assert watchdog._heap == []


def _cut_off_in_time(request: outbound._InFlight) -> bool:
    """Whether the watchdog marks ``request`` cut off within WAIT_SECONDS (a deadline, polled)."""
    give_up = time.monotonic() + WAIT_SECONDS
    while not request.cut_off and time.monotonic() < give_up:
        time.sleep(0.01)
    return request.cut_off


def test_a_request_cut_off_before_it_had_a_socket_leaves_the_watchdog_watching(
    socket_pair: SocketPair,
) -> None:
    # The deadline passed while the first request was still resolving or connecting (no
    # socket yet); the watchdog then waits on an empty heap, and must wake for the next one.
    watchdog = outbound._Watchdog()
    connecting = outbound._InFlight(time.monotonic() - 1)
    watchdog.watch(connecting)
    assert _cut_off_in_time(connecting)

    later = outbound._InFlight(time.monotonic() + 0.05)
    later_ends = socket_pair()
    later.use(later_ends[0])
    watchdog.watch(later)
    assert _peer_sees_the_end(later_ends[1])
    assert (watchdog.release(connecting), watchdog.release(later)) == (True, True)


def test_a_request_with_an_earlier_deadline_than_those_running_is_cut_off_at_its_own() -> None:
    # A client with a short timeout starts while another client's long request runs: the
    # watchdog, asleep until the long deadline, must wake for the short one.
    watchdog = outbound._Watchdog()
    long = outbound._InFlight(time.monotonic() + 3600)
    watchdog.watch(long)
    passed = outbound._InFlight(time.monotonic() - 1)  # proves the thread is up and waiting on `long`
    watchdog.watch(passed)
    assert _cut_off_in_time(passed)

    short = outbound._InFlight(time.monotonic() + 0.05)
    watchdog.watch(short)
    assert _cut_off_in_time(short)
    assert (watchdog.release(short), watchdog.release(long)) == (True, False)
