"""How GuardedHttp connects, and the one-line reasons its failures are recorded with.

Real sockets on 127.0.0.1. A connect that stalls (a SYN never answered) is a listener whose
accept queue is full: Linux then drops new SYNs, as a firewall dropping packets does. Where
only the clock tells two outcomes apart, outbound's clock is a fake the test moves.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Iterator, Sequence
from types import SimpleNamespace

import pytest
from urllib3.connection import HTTPConnection
from urllib3.exceptions import ConnectTimeoutError, ProtocolError, ReadTimeoutError, SSLError

from sethub import outbound
from sethub.errors import OutboundError, OutboundTimeoutError
from sethub.netguard import AddrInfo
from sethub.outbound import GuardedHttp

pytestmark = pytest.mark.usefixtures("fresh_watchdog")


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose SYNs go unanswered: its listener's accept queue is full and never drained."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        # Connect until one stalls: then the queue is full (one or two, depending on the kernel).
        for _ in range(8):
            filler = socket.socket()
            fillers.append(filler)
            filler.settimeout(0.2)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        else:
            pytest.fail("the listener kept accepting connections: no way to stall a connect here")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_a_connect_that_is_never_answered_times_out_as_a_connect_timeout(unanswered_port: int) -> None:
    http = GuardedHttp(allow_private=True, allow_http=True, timeout=0.3)
    with pytest.raises(OutboundTimeoutError, match=r"^connect timed out after 0\.3 s$"):
        http.request("POST", f"http://127.0.0.1:{unanswered_port}/cb", body=b"event")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


def test_the_connection_goes_to_the_vetted_address_with_what_is_left_of_the_deadline(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    # outbound's clock moves only when the resolver says so: the timeout left is exact.
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(outbound, "time", SimpleNamespace(monotonic=lambda: clock.now))
    port = listener.getsockname()[1]
    asked: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> Sequence[AddrInfo]:
        asked.append((host, port))
        clock.now += 0.75  # the name server took three quarters of the request's 1 s
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 9))]

    conn = HTTPConnection("vetted.example", port)
    with outbound._deadline(101.0):
        sock = outbound._connect_vetted(conn, True, resolver)
    with sock:
        # The resolver is asked for the URL's host and port; the connection uses the port.
        assert asked == [("vetted.example", port)]
        assert sock.getpeername() == ("127.0.0.1", port)
        # The TLS handshake and the first send get only what the lookup left.
        assert sock.gettimeout() == pytest.approx(0.25)
        # urllib3's socket options: requests are not held back by Nagle's algorithm.
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_a_host_whose_every_address_refuses_says_why() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    def nothing_listens(host: str, port: int) -> Sequence[AddrInfo]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    http = GuardedHttp(allow_private=True, allow_http=True, timeout=5, resolver=nothing_listens)
    with pytest.raises(OutboundError) as refused:
        http.request("POST", f"http://two.example:{closed_port}/cb", body=b"event")
    assert str(refused.value) == "connection failed: connection refused"
    assert not isinstance(refused.value, OutboundTimeoutError)


def test_a_head_answer_is_read_without_waiting_for_a_body() -> None:
    # A HEAD answer carries the length of a body it does not send; reading that body would
    # wait for the whole timeout.
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            conn.recv(65536)  # until the client hangs up

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        http = GuardedHttp(allow_private=True, allow_http=True, timeout=5)
        response = http.request("HEAD", f"http://127.0.0.1:{port}/cb")
        http.clear()
    finally:
        server.close()
    thread.join(5)
    assert (response.status, response.body) == (200, b"")


def _reason(exc: BaseException) -> tuple[str, bool]:
    failure = outbound._failure(exc, 2.5, cut_off=False, reading=False)
    return str(failure), isinstance(failure, OutboundTimeoutError)


@pytest.mark.parametrize(
    ("failure", "reason", "timed_out"),
    [
        (ConnectTimeoutError(), "connect timed out after 2.5 s", True),
        (ReadTimeoutError(None, "/cb", "read timed out"), "read timed out after 2.5 s", True),  # type: ignore[arg-type]
        (TimeoutError(), "read timed out after 2.5 s", True),
        (SSLError("certificate verify failed"), "TLS failure: certificate verify failed", False),
        (SSLError(), "TLS failure: handshake failed", False),
        (ProtocolError("Connection aborted.", TimeoutError()), "timed out after 2.5 s", True),
        (
            ProtocolError("Connection aborted.", ConnectionResetError()),
            "connection broken: ConnectionResetError",
            False,
        ),
        (ProtocolError("Connection aborted."), "connection broken: protocol error", False),
        (
            OSError(errno.ENETUNREACH, "Network is unreachable"),
            "network error: network is unreachable",
            False,
        ),
        (OSError("no errno"), "network error: OSError", False),
        (ValueError("unexpected"), "request failed: ValueError", False),
    ],
)
def test_each_kind_of_failure_is_recorded_with_its_one_line_reason(
    failure: BaseException, reason: str, timed_out: bool
) -> None:
    # Failures urllib3 or the socket layer can raise, some never provoked by a local server.
    assert _reason(failure) == (reason, timed_out)


def test_a_long_or_multi_line_reason_is_cut_to_one_line_of_300_characters() -> None:
    assert _reason(SSLError("bad\n   certificate"))[0] == "TLS failure: bad certificate"
    reason, _ = _reason(SSLError("x" * 1000))
    assert reason == "TLS failure: " + "x" * (300 - len("TLS failure: "))
