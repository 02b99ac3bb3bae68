"""GuardedHttp against real HTTP servers on 127.0.0.1: guard, timeouts, caps, no redirects, pooling."""

from __future__ import annotations

import contextlib
import datetime
import gzip
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sethub import outbound
from sethub.errors import BlockedAddressError, OutboundError, OutboundTimeoutError
from sethub.outbound import GuardedHttp, OutboundResponse
from sethub.settings import Settings

pytestmark = pytest.mark.usefixtures("fresh_watchdog")

BIG_BODY_BYTES = 10 * 1024 * 1024
WAIT_SECONDS = 10.0
"""How long a test waits for the server to report what it saw (a deadline, not a duration)."""
GZIPPED = gzip.compress(b'{"err": "invalid_request"}')


@dataclass
class Recorder:
    """What the test server saw."""

    connections: list[tuple[str, int]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    # Set by /hang when the client closed its end of the connection.
    hung_up: threading.Event = field(default_factory=threading.Event)
    # Requests to /together wait here until three are in, so that three connections are open at once.
    together: threading.Barrier = field(default_factory=lambda: threading.Barrier(3))
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real subscribers
    server: RecordingServer

    def setup(self) -> None:
        super().setup()
        with self.server.recorder.lock:
            self.server.recorder.connections.append(self.client_address[:2])

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> None:
        recorder = self.server.recorder
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        with recorder.lock:
            recorder.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        try:
            if path == "/stall":
                recorder.release.wait(WAIT_SECONDS)
                self.close_connection = True
            elif path == "/hang":
                # No answer; the request is read, so the next thing the connection can carry is
                # the client's hang-up (b""), or nothing until this server gives up.
                self.connection.settimeout(WAIT_SECONDS)
                with contextlib.suppress(OSError):
                    if self.connection.recv(1) == b"":
                        recorder.hung_up.set()
                self.close_connection = True
            elif path == "/pieces":
                # 1000 bytes in pieces of 100, paced: the client finds part of the body each time.
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(10):
                    self.wfile.write(b"x" * 100)
                    self.wfile.flush()
                    if recorder.release.wait(0.02):  # pacing of the pieces, until the test ends
                        break
            elif path == "/short":
                # A body shorter than its length, then the connection closed.
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"x" * 10)
                self.close_connection = True
            elif path == "/big":
                self.send_response(200)
                self.send_header("Content-Length", str(BIG_BODY_BYTES))
                self.end_headers()
                block = b"x" * 65536
                for _ in range(BIG_BODY_BYTES // len(block)):
                    self.wfile.write(block)
            elif path == "/drip":
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.flush()
                for _ in range(100000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    if recorder.release.wait(0.02):  # pacing of the drip, until the test ends
                        break
                self.close_connection = True
            elif path == "/drip-headers":
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for _ in range(100000):
                    self.wfile.write(b"X-Slow: 1\r\n")
                    self.wfile.flush()
                    if recorder.release.wait(0.02):  # pacing of the drip, until the test ends
                        break
                self.close_connection = True
            elif path == "/slow":
                # A subscriber that takes this long to answer (its behaviour, not synchronisation).
                time.sleep(float(parse_qs(urlsplit(self.path).query)["s"][0]))
                self._send(200, b"slow")
            elif path == "/redirect":
                self._send(302, b"moved", {"Location": "/target"})
            elif path == "/big-then-stall":
                # More than the client's cap, then nothing more until the test ends.
                self.send_response(200)
                self.send_header("Content-Length", str(BIG_BODY_BYTES))
                self.end_headers()
                self.wfile.write(b"x" * 65536)
                self.wfile.flush()
                recorder.release.wait(WAIT_SECONDS)
                self.close_connection = True
            elif path == "/gzip":
                self._send(200, GZIPPED, {"Content-Encoding": "gzip"})
            elif path == "/together":
                recorder.together.wait(5)
                self._send(200, b"together")
            elif path == "/hang-up":
                # A subscriber that reads the request and closes the connection without a word.
                self.close_connection = True
            elif path == "/created":
                self._send(201, b'{"ok":true}', {"Content-Type": "application/json", "X-Thing": "1"})
            else:
                self._send(200, b"ok:" + body)
        except OSError:
            # The client hung up mid-body (the cap at work).
            self.close_connection = True


class RecordingServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's backlog of 5 drops the SYNs of a burst of connections, which the client
    # sends again only a second later: a subscriber's server keeps a longer queue.
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], recorder: Recorder) -> None:
        super().__init__(address, Handler)
        self.recorder = recorder

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@dataclass
class Server:
    url: str
    port: int
    recorder: Recorder


def _serve(server: RecordingServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.recorder.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def server() -> Iterator[Server]:
    recorder = Recorder()
    httpd = RecordingServer(("127.0.0.1", 0), recorder)
    port = httpd.server_address[1]
    for _ in _serve(httpd):
        yield Server(url=f"http://127.0.0.1:{port}", port=port, recorder=recorder)


def local_http(**overrides: Any) -> GuardedHttp:
    options: dict[str, Any] = {"allow_private": True, "allow_http": True, "timeout": 0.5}
    options.update(overrides)
    return GuardedHttp(**options)


def test_a_response_comes_back_with_status_headers_and_body(server: Server) -> None:
    http = local_http()
    response = http.request("POST", f"{server.url}/created", headers={"X-Hub": "1"}, body=b"payload")
    assert isinstance(response, OutboundResponse)
    assert response.status == 201
    assert response.headers.get("content-type") == "application/json"
    assert response.headers.get("X-THING") == "1"
    assert response.body == b'{"ok":true}'
    seen = server.recorder.requests[0]
    assert seen["body"] == b"payload"
    assert seen["headers"]["X-Hub"] == "1"


def test_query_string_is_sent_as_is(server: Server) -> None:
    local_http().request("GET", f"{server.url}/cb?token=abc&x=1")
    assert server.recorder.requests[0]["path"] == "/cb?token=abc&x=1"


def test_a_stalled_server_times_out(server: Server) -> None:
    http = local_http(timeout=0.5)
    with pytest.raises(OutboundTimeoutError, match=r"read timed out after 0\.5 s"):
        http.request("GET", f"{server.url}/stall")


def test_a_slowly_dripping_body_is_cut_off_at_the_timeout(server: Server) -> None:
    http = local_http(timeout=0.5)
    with pytest.raises(OutboundTimeoutError, match=r"read timed out after 0\.5 s"):
        http.request("GET", f"{server.url}/drip")


def test_slowly_dripping_headers_are_cut_off_at_the_timeout(server: Server) -> None:
    http = local_http(timeout=0.5)
    with pytest.raises(OutboundTimeoutError, match=r"read timed out after 0\.5 s"):
        http.request("GET", f"{server.url}/drip-headers")


def test_elapsed_covers_the_wait_for_the_answer(server: Server) -> None:
    started = time.monotonic()
    response = local_http(timeout=5).request("GET", f"{server.url}/slow?s=0.3")
    waited = time.monotonic() - started

    # Both bounds hold by construction (the server sleeps 0.3 s; the test's clock brackets the call).
    assert 0.3 <= response.elapsed <= waited


def test_a_reused_connection_gets_the_full_timeout_again(server: Server) -> None:
    http = local_http(timeout=3.0)
    # GIVEN a first answer that used most of the 3 s budget (0.8 s left when it was read)
    assert http.request("GET", f"{server.url}/slow?s=2.2").body == b"slow"

    # WHEN the same connection carries a request answered in 1.5 s (more than what the
    # first one left over, well within a full timeout)
    second = http.request("GET", f"{server.url}/slow?s=1.5")

    # THEN it gets the full timeout again and succeeds, on the same connection
    assert second.body == b"slow"
    assert len(server.recorder.connections) == 1


def test_a_request_stalled_on_a_kept_alive_connection_is_cut_off_at_its_own_deadline(server: Server) -> None:
    http = local_http(timeout=0.5)
    assert http.request("GET", f"{server.url}/slow?s=0").body == b"slow"
    with pytest.raises(OutboundTimeoutError, match=r"read timed out after 0\.5 s"):
        http.request("GET", f"{server.url}/hang")
    # The stalled request went over the first one's connection, and the hub hung up on it
    # (the server would have given up only after WAIT_SECONDS).
    assert len(server.recorder.connections) == 1
    assert server.recorder.hung_up.wait(WAIT_SECONDS)


def test_an_answer_arriving_in_pieces_is_cut_at_the_cap_not_past_it(server: Server) -> None:
    # Each read asks for what is left below the cap, whatever the last one brought.
    response = local_http(timeout=5, max_response_bytes=150).request("GET", f"{server.url}/pieces")
    assert response.body == b"x" * 150


def test_a_body_shorter_than_its_length_is_a_broken_connection_not_a_timeout(server: Server) -> None:
    with pytest.raises(OutboundError, match=r"^connection broken: IncompleteRead$") as broken:
        local_http(timeout=5).request("GET", f"{server.url}/short")
    assert not isinstance(broken.value, OutboundTimeoutError)


def test_a_script_that_made_requests_exits_when_it_is_done(server: Server) -> None:
    # The deadline watchdog's thread must not keep a finished program (the operator CLI, a
    # script) alive.
    script = (
        "from sethub.outbound import GuardedHttp\n"
        "http = GuardedHttp(allow_private=True, allow_http=True, timeout=5)\n"
        f"print(http.request('GET', '{server.url}/slow?s=0').status)\n"
    )
    # The request in this process too: mutation testing maps tests to the code they reach
    # by what runs in the test's own process, and the child's mutant is the one under test.
    assert local_http(timeout=5).request("GET", f"{server.url}/slow?s=0").status == 200
    # The package these tests import, not whichever one the interpreter would find.
    env = {**os.environ, "PYTHONPATH": str(Path(outbound.__file__).parent.parent)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS * 3,
        check=False,
        env=env,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "200"), done.stderr


def test_among_requests_running_side_by_side_only_the_stalled_ones_are_cut_off(server: Server) -> None:
    # Sixteen requests at once on one client, every other one to a server that never
    # answers: each stalled one ends at its own deadline, the others get their answers.
    http = local_http(timeout=1.0)

    def call(n: int) -> str:
        try:
            return http.request("GET", f"{server.url}/{'stall' if n % 2 else 'slow?s=0'}").body.decode()
        except OutboundTimeoutError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, range(16)))

    assert results == ["slow", "read timed out after 1 s"] * 8


def test_a_huge_response_is_capped_and_the_connection_is_not_reused_dirty(server: Server) -> None:
    http = local_http(timeout=5, max_response_bytes=65536)
    response = http.request("GET", f"{server.url}/big")
    assert response.status == 200
    assert response.body == b"x" * 65536
    # The next request on the same client gets its own, correct response.
    follow_up = http.request("POST", f"{server.url}/echo", body=b"next")
    assert follow_up.body == b"ok:next"


def test_a_compressed_answer_is_kept_as_sent_never_inflated(server: Server) -> None:
    # Inflating would let a small answer expand past the response cap (a decompression bomb).
    response = local_http().request("POST", f"{server.url}/gzip", body=b"event")
    assert response.body == GZIPPED


def test_a_request_writes_nothing_to_the_functions_log(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    # http.client's debug output would print the subscriber's headers into the Lambda log.
    local_http().request("POST", f"{server.url}/created", body=b"event")
    assert capsys.readouterr() == ("", "")


def test_an_answer_over_the_cap_is_kept_at_the_cap_without_waiting_for_the_rest(server: Server) -> None:
    # The rest of the body never comes: reading it all first would run into the timeout.
    response = local_http(timeout=5, max_response_bytes=1024).request("POST", f"{server.url}/big-then-stall")
    assert (response.status, response.body) == (200, b"x" * 1024)
    server.recorder.release.set()


@pytest.mark.parametrize("url", ["http://exa mple.com/cb", "http://[::1/cb", "http://127.0.0.1:99999/cb"])
def test_a_url_urllib3_cannot_parse_is_refused_as_malformed(url: str) -> None:
    with pytest.raises(BlockedAddressError) as refused:
        local_http().request("POST", url, body=b"event")
    assert str(refused.value) == "malformed URL"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ftp://rp.example/hook", "'ftp'"),
        ("rp.example/hook", "'missing'"),
        ("a-very-long-scheme-name://rp.example/", "'a-very-long-sche'"),
    ],
)
def test_a_url_of_another_scheme_is_refused_naming_it(url: str, shown: str) -> None:
    with pytest.raises(BlockedAddressError) as refused:
        local_http(allow_http=False).request("POST", url, body=b"event")
    assert str(refused.value) == f"URL scheme must be https, not {shown}"


@pytest.mark.parametrize("timeout", [0, -1])
def test_a_client_needs_a_positive_timeout(timeout: float) -> None:
    with pytest.raises(ValueError, match=r"^timeout must be positive$"):
        GuardedHttp(allow_private=False, allow_http=False, timeout=timeout)


def test_a_cap_of_zero_keeps_the_status_and_no_body_and_a_negative_cap_is_refused(server: Server) -> None:
    # A cap of 0: only whether the subscriber accepted counts, never what it said.
    response = local_http(max_response_bytes=0).request("POST", f"{server.url}/cb", body=b"event")
    assert (response.status, response.body) == (200, b"")
    with pytest.raises(ValueError, match=r"^max_response_bytes must not be negative$"):
        local_http(max_response_bytes=-1)


def test_redirects_are_returned_not_followed(server: Server) -> None:
    response = local_http().request("POST", f"{server.url}/redirect", body=b"event")
    assert response.status == 302
    assert response.headers.get("location") == "/target"
    assert [request["path"] for request in server.recorder.requests] == ["/redirect"]


def test_a_subscriber_hanging_up_without_an_answer_is_a_broken_connection_not_a_timeout(
    server: Server,
) -> None:
    with pytest.raises(OutboundError) as broken:
        local_http(timeout=5).request("POST", f"{server.url}/hang-up", body=b"event")
    assert str(broken.value) == "connection broken: RemoteDisconnected"
    # Not a timeout: the next attempt need not wait for the throttle floor.
    assert not isinstance(broken.value, OutboundTimeoutError)


def test_a_host_whose_first_address_refuses_is_reached_at_the_next(server: Server) -> None:
    # Two answers for the name; nothing listens on the first (127.0.0.2 is loopback, but the
    # server is bound to 127.0.0.1 only), so that connection is refused.
    def two_addresses(host: str, port: int) -> list[tuple[Any, ...]]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    http = local_http(timeout=5, resolver=two_addresses)
    response = http.request("POST", f"http://two.example:{server.port}/cb", body=b"event")
    assert response.body == b"ok:event"


def test_a_refused_connection_is_an_outbound_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more.
    with pytest.raises(OutboundError, match="connection failed: connection refused") as refused:
        local_http().request("POST", f"http://127.0.0.1:{port}/cb", body=b"{}")
    assert not isinstance(refused.value, OutboundTimeoutError)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
def test_the_guard_blocks_loopback_before_connecting(server: Server, host: str) -> None:
    http = local_http(allow_private=False)
    with pytest.raises(BlockedAddressError, match="loopback"):
        http.request("POST", f"http://{host}:{server.port}/cb", body=b"{}")
    assert server.recorder.connections == []


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "0177.0.0.1", "127.1"])
def test_odd_ipv4_spellings_are_blocked_before_connecting(server: Server, host: str) -> None:
    with pytest.raises(BlockedAddressError, match="unusual spelling"):
        local_http().request("GET", f"http://{host}:{server.port}/cb")
    assert server.recorder.connections == []


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "127.0.0.1/cb", "gopher://x"])
def test_only_http_schemes_are_accepted(url: str) -> None:
    with pytest.raises(BlockedAddressError, match="scheme must be https or http"):
        local_http().request("GET", url)


def test_plain_http_is_refused_unless_allowed(server: Server) -> None:
    with pytest.raises(BlockedAddressError, match="scheme must be https, not 'http'"):
        local_http(allow_http=False).request("GET", f"{server.url}/cb")
    assert server.recorder.connections == []


def test_host_header_is_the_original_name_while_the_connection_goes_to_the_vetted_address(
    server: Server,
) -> None:
    local_http().request("GET", f"http://localhost:{server.port}/cb")
    assert server.recorder.requests[0]["headers"]["Host"] == f"localhost:{server.port}"
    assert server.recorder.connections[0][0] == "127.0.0.1"


def test_connections_are_kept_alive_and_reused(server: Server) -> None:
    http = local_http()
    for number in range(5):
        response = http.request("POST", f"{server.url}/cb", body=str(number).encode())
        assert response.body == f"ok:{number}".encode()
    assert len(server.recorder.requests) == 5
    assert len(server.recorder.connections) == 1


def test_between_bursts_a_client_keeps_as_many_connections_as_deliveries_run_at_once(server: Server) -> None:
    settings = Settings(allow_private_callbacks=True, allow_http_callbacks=True, delivery_concurrency=2)
    http = GuardedHttp.from_settings(settings, timeout=5)

    def burst() -> None:
        # Three requests at once (the server answers none until all three are in).
        with ThreadPoolExecutor(3) as pool:
            bodies = list(pool.map(lambda _: http.request("GET", f"{server.url}/together").body, range(3)))
        assert bodies == [b"together"] * 3

    burst()
    burst()

    # Two of the first burst's connections were kept (delivery_concurrency) and reused; the
    # second burst opened one more.
    assert len(server.recorder.connections) == 4


def test_connections_to_many_subscriber_hosts_stay_open_for_reuse(server: Server) -> None:
    # Twenty callback hosts (all this server): each keeps its connection, so a second
    # round of deliveries opens none (urllib3 alone keeps the pools of 10 hosts).
    def every_name_here(host: str, port: int) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    http = local_http(timeout=5, resolver=every_name_here)
    for _ in range(2):
        for number in range(20):
            http.request("POST", f"http://rp{number}.example:{server.port}/cb", body=b"event")

    assert len(server.recorder.connections) == 20


def test_from_settings_takes_the_guard_and_timeout_from_settings() -> None:
    settings = Settings(allow_private_callbacks=True, allow_http_callbacks=False, delivery_timeout_seconds=3)
    http = GuardedHttp.from_settings(settings, max_response_bytes=1024)
    assert (http.allow_private, http.allow_http, http.timeout, http.max_response_bytes) == (
        True,
        False,
        3,
        1024,
    )
    assert GuardedHttp.from_settings(settings, timeout=10).timeout == 10


# --- TLS: the certificate is checked against the URL's host name, not the vetted IP -----------


def _self_signed_for_localhost(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    cert_path, key_path = _self_signed_for_localhost(tmp_path)
    recorder = Recorder()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)

    def remember_sni(_sock: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> None:
        with recorder.lock:
            recorder.sni.append(server_name)

    context.sni_callback = remember_sni  # type: ignore[assignment]
    httpd = RecordingServer(("127.0.0.1", 0), recorder)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    port = httpd.server_address[1]
    for _ in _serve(httpd):
        yield Server(url=f"https://localhost:{port}", port=port, recorder=recorder), cert_path


def test_tls_uses_the_url_host_for_sni_and_certificate_check(tls_server: tuple[Server, Path]) -> None:
    server, cert_path = tls_server
    http = local_http(allow_http=False, timeout=5, ca_certs=str(cert_path))
    response = http.request("POST", f"{server.url}/cb", body=b"set")
    assert response.body == b"ok:set"
    assert server.recorder.sni == ["localhost"]
    assert ipaddress.ip_address(server.recorder.connections[0][0]).is_loopback


def test_tls_refuses_a_certificate_for_another_name(tls_server: tuple[Server, Path]) -> None:
    server, cert_path = tls_server
    http = local_http(allow_http=False, timeout=5, ca_certs=str(cert_path))
    # The certificate names localhost, not 127.0.0.1: connecting by IP must not weaken the check.
    with pytest.raises(OutboundError, match="TLS failure") as refused:
        http.request("GET", f"https://127.0.0.1:{server.port}/cb")
    assert server.recorder.requests == []
    # The record says what failed in the handshake, not only that it did.
    assert "certificate verify failed" in str(refused.value)
