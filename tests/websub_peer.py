"""A WebSub peer on 127.0.0.1 for the hub tests: a publisher's topic URLs
(``topics``: path -> (Content-Type, bytes)) and subscribers' callbacks; records every request.
``StallServer`` is a callback host that accepts connections and never answers.

Verification GETs are answered by ``behaviour`` per path: ``"echo"`` (the correct
answer), ``"wrong"`` (a 200 with another body) or an HTTP status. Content POSTs get 200.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def params(self) -> dict[str, str]:
        return {name: values[0] for name, values in parse_qs(self.query, keep_blank_values=True).items()}


@dataclass
class CallbackServer:
    base_url: str = ""
    behaviour: dict[str, str | int] = field(default_factory=dict)
    topics: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def url(self, path: str = "/cb", query: str = "") -> str:
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

    def record(self, request: Received) -> None:
        with self._changed:
            self.received.append(request)
            self._changed.notify_all()

    def gets(self, path: str | None = None) -> list[Received]:
        with self._changed:
            return [r for r in self.received if r.method == "GET" and (path is None or r.path == path)]

    def posts(self, path: str | None = None) -> list[Received]:
        with self._changed:
            return [r for r in self.received if r.method == "POST" and (path is None or r.path == path)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("the callback did not receive what was expected in time")
                self._changed.wait(remaining)


def _handler(server: CallbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _received(self) -> Received:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            return Received(self.command, parts.path, parts.query, dict(self.headers.items()), body)

        def _answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            request = self._received()
            # Recorded before answering, so the hub has never seen an answer we have not recorded.
            server.record(request)
            if request.path in server.topics:
                content_type, content = server.topics[request.path]
                self._answer(200, content, content_type)
                return
            behaviour = server.behaviour.get(request.path, "echo")
            if behaviour == "echo":
                self._answer(200, request.params.get("hub.challenge", "").encode())
            elif behaviour == "wrong":
                self._answer(200, b"not the challenge")
            else:
                self._answer(int(behaviour), b"no")

        def do_POST(self) -> None:
            request = self._received()
            server.record(request)
            self._answer(200, b"")

    return Handler


class StallServer:
    """Accepts connections and never answers; counts them, and how many are open at once."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.accepted = 0
        self.open_now = 0
        self.most_open = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._held: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, path: str = "/cb") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with self._lock:
                self.accepted += 1
                self.open_now += 1
                self.most_open = max(self.most_open, self.open_now)
                self._held.add(conn)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        conn.settimeout(None)
        with conn:
            # Read until the client gives up and closes: recv returns b"" (or fails).
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass
        with self._lock:
            self.open_now -= 1
            self._held.discard(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._listener.close()
        # End the GETs still hanging: a stack stopping after the test would otherwise wait for
        # each one's whole timeout before its workers exit.
        with self._lock:
            held = list(self._held)
        for conn in held:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


@contextmanager
def websub_peer() -> Iterator[CallbackServer]:
    server = CallbackServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    server.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
