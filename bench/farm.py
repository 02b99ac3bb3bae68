"""The receiver farm: subscriber endpoints on 127.0.0.1, in processes of their own.

Each farm process serves one port with a ``ThreadingHTTPServer`` speaking HTTP/1.1
keep-alive (Content-Length always set, a thread per connection), so a client pool keeps
its connections and the farm's CPU is not charged to the process being measured.

- ``POST`` anything: ``202``, empty body; counted. Under ``/rec/`` the arrival time
  (``time.time()``) is also kept per ``x-hub-messageId``, for latency measurements.
- ``GET`` with ``hub.challenge``: the challenge echoed (WebSub verification of intent).
- ``GET /_stats``: ``{"posts", "first", "last"}``; ``GET /_arrivals``: ``[[jti, t], ...]``;
  ``POST /_reset``: forget everything.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.process import BaseProcess
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.posts = 0
        self.first = 0.0
        self.last = 0.0
        self.arrivals: list[tuple[str, float]] = []

    def reset(self) -> None:
        with self.lock:
            self.posts, self.first, self.last = 0, 0.0, 0.0
            self.arrivals = []


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # 32+ connections open at once: the default backlog of 5 drops SYNs (1 s retransmits).
    request_queue_size = 1024


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            now = time.time()
            if self.path == "/_reset":
                state.reset()
                self._reply(204)
                return
            with state.lock:
                state.posts += 1
                state.first = state.first or now
                state.last = now
                if self.path.startswith("/rec/"):
                    state.arrivals.append((self.headers.get("x-hub-messageId") or "", now))
            self._reply(202)

        def do_GET(self) -> None:
            if self.path == "/_stats":
                with state.lock:
                    stats = {"posts": state.posts, "first": state.first, "last": state.last}
                self._reply(200, json.dumps(stats).encode(), "application/json")
                return
            if self.path == "/_arrivals":
                with state.lock:
                    body = json.dumps(state.arrivals).encode()
                self._reply(200, body, "application/json")
                return
            challenge = parse_qs(urlsplit(self.path).query).get("hub.challenge", [""])[0]
            self._reply(200, challenge.encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass  # an access log would cost more than the request

    return Handler


def _serve(ready: Any) -> None:
    server = _Server(("127.0.0.1", 0), _handler(_State()))
    ready.put(server.server_address[1])
    server.serve_forever(poll_interval=0.5)


@dataclass
class Farm:
    """Running farm processes and their ports."""

    ports: list[int]
    processes: Sequence[BaseProcess] = field(default_factory=list)

    def url(self, port: int, path: str) -> str:
        return f"http://127.0.0.1:{port}{path}"

    def stats(self) -> dict[str, float]:
        """Posts summed over the farm, first and last arrival over all ports."""
        total, first, last = 0, 0.0, 0.0
        for port in self.ports:
            with urllib.request.urlopen(self.url(port, "/_stats"), timeout=10) as response:
                stats = json.loads(response.read())
            total += stats["posts"]
            if stats["first"]:
                first = min(first, stats["first"]) if first else stats["first"]
            last = max(last, stats["last"])
        return {"posts": total, "first": first, "last": last}

    def arrivals(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for port in self.ports:
            with urllib.request.urlopen(self.url(port, "/_arrivals"), timeout=10) as response:
                for jti, at in json.loads(response.read()):
                    found.setdefault(jti, at)  # at least once: the first arrival counts
        return found

    def reset(self) -> None:
        for port in self.ports:
            request = urllib.request.Request(self.url(port, "/_reset"), data=b"", method="POST")
            with urllib.request.urlopen(request, timeout=10):
                pass

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.join(timeout=5)


def start_farm(processes: int) -> Farm:
    """Start ``processes`` farm processes (one port each) and wait until they listen."""
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    started = []
    for _ in range(processes):
        process = context.Process(target=_serve, args=(ready,), daemon=True)
        process.start()
        started.append(process)
    ports = [int(ready.get(timeout=30)) for _ in started]
    return Farm(ports=sorted(ports), processes=started)
