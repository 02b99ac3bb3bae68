"""Webhook subscribers for the end-to-end tests: real HTTP servers where the functions reach them.

A ``Subscriber`` confirms every intent (answering ``hub.challenge``), records each GET (intent
checks, denials) and each delivery attempt, and answers the first ``failures`` deliveries
``503`` (down), the rest ``ok_status``. ``failures`` may be changed while it runs (an endpoint
that comes back).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from e2e_harness import callback_host  # type: ignore[import-not-found]
from listeners import SubscriberServer

Headers = dict[str, str]


@dataclass
class Subscriber:
    url: str
    failures: int = 0
    ok_status: int = 204
    attempts: list[tuple[int, Headers, bytes]] = field(default_factory=list)
    gets: list[dict[str, str]] = field(default_factory=list)
    # Re-entrant: a test may hold it while it reads ``posts``.
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def posts(self) -> list[tuple[Headers, bytes]]:
        """Every delivery attempt (headers with lower-case names, body), in arrival order."""
        with self.lock:
            return [(headers, body) for _, headers, body in self.attempts]

    def received(self) -> list[tuple[Headers, bytes]]:
        """The deliveries it took in (answered ``ok_status``), in arrival order."""
        with self.lock:
            return [(headers, body) for status, headers, body in self.attempts if status == self.ok_status]

    def bodies_with(self, header: str, value: str) -> list[tuple[Headers, bytes]]:
        """The attempts whose ``header`` (lower-case name) has ``value``."""
        return [(headers, body) for headers, body in self.posts if headers.get(header) == value]

    def count(self) -> int:
        with self.lock:
            return len(self.attempts)

    def _get(self, query: dict[str, str]) -> None:
        with self.lock:
            self.gets.append(query)

    def _post(self, headers: Headers, body: bytes) -> int:
        with self.lock:
            status = 503 if len(self.attempts) < self.failures else self.ok_status
            self.attempts.append((status, headers, body))
        return status


class SubscriberFarm:
    """Starts subscribers, each on a port of its own; ``close`` stops them all."""

    def __init__(self) -> None:
        self._servers: list[SubscriberServer] = []

    def start(self, *, failures: int = 0, ok_status: int = 204, path: str = "/hook") -> Subscriber:
        handler = _handler_for(lambda: subscriber)
        server = SubscriberServer((callback_host(), 0), handler)
        subscriber = Subscriber(
            url=f"http://{callback_host()}:{server.server_address[1]}{path}",
            failures=failures,
            ok_status=ok_status,
        )
        self._servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return subscriber

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()


def _handler_for(subscriber: Callable[[], Subscriber]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = {name: values[0] for name, values in parse_qs(urlsplit(self.path).query).items()}
            subscriber()._get(query)
            challenge = query.get("hub.challenge", "").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(challenge)))
            self.end_headers()
            self.wfile.write(challenge)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = subscriber()._post({name.lower(): value for name, value in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
