"""``python -m sethub.receiver``: a verifying subscriber, for trying sethub out.

    python -m sethub.receiver --port 4000 --hub http://127.0.0.1:3000 [--secret S] \
        --subscribe acme.login --api-key local-subscriber-key

With ``--subscribe`` it sends the subscription request itself and confirms only the
verifications of intents it started (each once): a challenge for anything else (someone
re-subscribing this callback with their own secret, or unsubscribing it) gets ``404``
(W3C WebSub 5.3), so nobody can take over its subscriptions. For every
delivery checks the SET's signature against the hub's JWKS (``typ`` must be
``secevent+jwt``), its audience (``aud`` must name a topic this receiver subscribed to:
the hub binds each SET to its topic, so one recorded for another topic is refused) and,
with ``--secret``, the ``X-Hub-Signature`` HMAC (constant time).
It prints one line per event and answers ``202``, or ``400`` with an RFC 8935 error body
when a check fails (which the hub does not retry).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import signal
import sys
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, TextIO
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt

SET_TYPE = "secevent+jwt"
SET_CONTENT_TYPE = "application/secevent+jwt"
MAX_BODY_BYTES = 1024 * 1024
_HMAC_METHODS = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
_LINK_SELF = re.compile(r'<([^>]*)>\s*;\s*rel="?self"?')


class DeliveryRejectedError(Exception):
    """A delivery failed a check; ``code`` is the RFC 8935 error code."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass(frozen=True)
class ReceivedEvent:
    """One delivery as the receiver saw it."""

    jti: str
    topic: str
    event_types: tuple[str, ...]
    verified: bool
    content_type: str
    body: bytes
    claims: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = name.lower()
    return next((value for key, value in headers.items() if key.lower() == lowered), "")


def check_signature(secret: bytes, body: bytes, header_value: str) -> None:
    """Check ``X-Hub-Signature: <method>=<hex>`` in constant time."""
    method, _, digest = header_value.partition("=")
    algorithm = _HMAC_METHODS.get(method.strip().lower())
    if algorithm is None or not digest:
        raise DeliveryRejectedError("authentication_failed", "X-Hub-Signature is missing or malformed")
    expected = hmac.new(secret, body, algorithm).hexdigest()
    if not hmac.compare_digest(expected, digest.strip().lower()):
        raise DeliveryRejectedError("authentication_failed", "X-Hub-Signature does not match the body")


def check_audience(claims: Mapping[str, Any], audiences: Collection[str]) -> None:
    """The SET's ``aud`` (string or list) must name one of ``audiences``, else ``invalid_audience``."""
    aud = claims.get("aud")
    named = (
        [aud]
        if isinstance(aud, str)
        else [a for a in aud if isinstance(a, str)]
        if isinstance(aud, list)
        else []
    )
    if not any(name in audiences for name in named):
        raise DeliveryRejectedError(
            "invalid_audience", "the SET's aud names no topic this receiver subscribed to"
        )


class SetVerifier:
    """Verifies deliveries: SET signatures against the hub's JWKS, HMACs against the secret."""

    def __init__(self, hub: str | None, secret: bytes | None) -> None:
        self.secret = secret
        self._jwks: jwt.PyJWKClient | None = None
        if hub:
            base = hub.rstrip("/").removesuffix("/hub")
            self._jwks = jwt.PyJWKClient(f"{base}/.well-known/jwks.json", cache_keys=True, lifespan=300)

    def verify(
        self, headers: Mapping[str, str], body: bytes, *, audiences: Collection[str] | None = None
    ) -> ReceivedEvent:
        """Check one delivery; ``audiences``: the topics a SET's ``aud`` may name (None: not checked)."""
        content_type = _header(headers, "Content-Type").split(";")[0].strip().lower()
        topic_match = _LINK_SELF.search(_header(headers, "Link"))
        topic = topic_match.group(1) if topic_match else ""
        verified = False
        if self.secret is not None:
            check_signature(self.secret, body, _header(headers, "X-Hub-Signature"))
            verified = True
        claims: dict[str, Any] = {}
        if content_type == SET_CONTENT_TYPE:
            claims = self._verify_jwt(body.decode("ascii", errors="replace").strip())
            if audiences is not None:
                check_audience(claims, audiences)
            verified = verified or self._jwks is not None
        elif content_type == "application/json":
            try:
                document = json.loads(body)
            except ValueError:
                document = None
            if isinstance(document, dict) and isinstance(document.get("events"), dict):
                claims = document
        events = claims.get("events") if isinstance(claims.get("events"), dict) else {}
        return ReceivedEvent(
            jti=str(claims.get("jti") or _header(headers, "x-hub-messageId")),
            topic=topic,
            event_types=tuple(events or ()),
            verified=verified,
            content_type=content_type,
            body=body,
            claims=claims,
        )

    def _verify_jwt(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise DeliveryRejectedError("invalid_request", "the body is not a compact JWS") from None
        if header.get("typ") != SET_TYPE:
            raise DeliveryRejectedError(
                "invalid_request", f"JOSE typ is {header.get('typ')!r}, not {SET_TYPE}"
            )
        if self._jwks is None:
            # No hub to fetch keys from: read the claims without checking the signature.
            claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
            return claims
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["ES256", "RS256"],
                # The audience is checked against this receiver's topics (check_audience).
                options={"verify_aud": False, "require": ["iss", "iat", "jti", "events"]},
            )
        except jwt.PyJWKClientError as exc:
            raise DeliveryRejectedError("invalid_key", f"no JWKS key verifies this SET: {exc}") from None
        except jwt.PyJWTError as exc:
            raise DeliveryRejectedError("invalid_key", f"SET verification failed: {exc}") from None
        return claims


class Receiver:
    """An HTTP subscriber on ``host:port`` (0 = a free port) that records what it receives."""

    def __init__(
        self,
        *,
        hub: str | None = None,
        secret: bytes | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        out: TextIO | None = None,
        topics: Iterable[str] = (),
    ) -> None:
        self.verifier = SetVerifier(hub, secret)
        self.topics: set[str] = set(topics)
        """The audiences SETs may name: ``topics``, and every topic this receiver confirmed."""
        self.out = out
        self.events: list[ReceivedEvent] = []
        self.rejected: list[ReceivedEvent] = []
        self.verifications: list[dict[str, str]] = []
        self._intents: Counter[tuple[str, str]] = Counter()
        """(mode, topic) requests this receiver started and whose verification it awaits."""
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler_class(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Receiver:
        self._thread = threading.Thread(target=self._server.serve_forever, name="receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            # shutdown() waits for serve_forever, so only a started receiver may call it.
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def serve_forever(self) -> None:
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def shutdown(self) -> None:
        self._server.shutdown()

    def _print(self, line: str) -> None:
        if self.out is not None:
            print(line, file=self.out, flush=True)

    def expect(self, mode: str, topic: str) -> None:
        """Record a subscribe/unsubscribe request this receiver's owner sent: its verification
        will be confirmed, once. ``subscribe()`` calls it before sending the request."""
        with self._lock:
            self._intents[(mode, topic)] += 1

    def _forget(self, mode: str, topic: str) -> None:
        with self._lock:
            if self._intents[(mode, topic)] > 0:
                self._intents[(mode, topic)] -= 1

    def subscribe(
        self,
        hub: str,
        topic: str,
        *,
        mode: str = "subscribe",
        api_key: str | None = None,
        secret: str | None = None,
        fields: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        """Ask the hub at ``hub`` (its base URL or its /hub URL) to (un)subscribe this receiver
        to ``topic``; returns the hub's status and body. The intent is recorded first, so the
        hub's verification (which may come before the 202) is confirmed."""
        url = hub.rstrip("/")
        url = url if url.endswith("/hub") else f"{url}/hub"
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("the hub URL must be http(s)")
        form = {"hub.mode": mode, "hub.topic": topic, "hub.callback": self.url, **(fields or {})}
        if secret and mode == "subscribe":
            form["hub.secret"] = secret
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if api_key:
            headers["x-api-key"] = api_key
        self.expect(mode, topic)
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            url, data=urlencode(form).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) hub URL
                status, body = response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read().decode("utf-8", "replace")
        if not 200 <= status < 300:
            self._forget(mode, topic)
        return status, body

    def on_verification(self, query: dict[str, str]) -> tuple[int, bytes]:
        with self._lock:
            self.verifications.append(query)
        mode = query.get("hub.mode", "")
        topic = query.get("hub.topic", "")
        if mode == "denied":
            self._print(f"denied     topic={topic} reason={query.get('hub.reason', '')}")
            return 200, b""
        with self._lock:
            started = self._intents[(mode, topic)] > 0
            if started:
                self._intents[(mode, topic)] -= 1
        if not started:
            # Not an intent of ours: confirming it would let anyone change our subscription.
            self._print(f"refused    {mode[:20]} topic={topic} (this receiver did not ask for it)")
            return 404, b""
        self._print(f"{mode:<10} topic={topic} lease={query.get('hub.lease_seconds', '-')}")
        if mode == "subscribe" and topic:
            with self._lock:
                self.topics.add(topic)
        return 200, query.get("hub.challenge", "").encode()

    def on_delivery(self, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        with self._lock:
            audiences = frozenset(self.topics)
        try:
            event = self.verifier.verify(headers, body, audiences=audiences)
        except DeliveryRejectedError as exc:
            rejected = ReceivedEvent(
                jti=_header(headers, "x-hub-messageId"),
                topic="",
                event_types=(),
                verified=False,
                content_type=_header(headers, "Content-Type"),
                body=body,
                error=exc.description,
            )
            with self._lock:
                self.rejected.append(rejected)
            self._print(f"REJECTED   jti={rejected.jti} {exc.code}: {exc.description}")
            return 400, json.dumps({"err": exc.code, "description": exc.description}).encode()
        with self._lock:
            self.events.append(event)
        types = ",".join(event.event_types) or event.content_type
        verified = "yes" if event.verified else "no"
        self._print(f"event      jti={event.jti} topic={event.topic} types={types} verified={verified}")
        return 202, b""


def _handler_class(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Head and body leave in two writes: with Nagle on, the body of a reply on a kept-alive
        # connection waits for the hub's delayed ACK (up to 40 ms).
        disable_nagle_algorithm = True

        def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            query = {name: values[-1] for name, values in parse_qs(urlsplit(self.path).query).items()}
            status, body = receiver.on_verification(query)
            self._send(status, body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self.close_connection = True
                self._send(413, b"body too large")
                return
            body = self.rfile.read(length)
            status, reply = receiver.on_delivery(dict(self.headers.items()), body)
            self._send(status, reply, "application/json")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the receiver prints one line per event instead."""

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sethub.receiver", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=4000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--hub", help="the hub's base URL, for its JWKS (e.g. http://127.0.0.1:3000)")
    parser.add_argument("--secret", help="the hub.secret you subscribed with, to check X-Hub-Signature")
    parser.add_argument(
        "--topic",
        action="append",
        default=[],
        help="a topic subscribed to before this receiver started (repeatable): its SETs are accepted",
    )
    parser.add_argument(
        "--subscribe",
        action="append",
        default=[],
        metavar="TOPIC",
        help="subscribe to TOPIC at --hub once listening (repeatable); only these intents are confirmed",
    )
    parser.add_argument("--api-key", help="the subscriber key sent with --subscribe (x-api-key)")
    args = parser.parse_args(argv)
    if args.subscribe and not args.hub:
        parser.error("--subscribe needs --hub")
    receiver = Receiver(
        hub=args.hub,
        secret=args.secret.encode() if args.secret else None,
        host=args.host,
        port=args.port,
        out=sys.stdout,
        topics=args.topic,
    )

    stopped = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"receiver listening on {receiver.url} (callback URL)", flush=True)
    receiver.start()
    for topic in args.subscribe:
        status, body = receiver.subscribe(args.hub, topic, api_key=args.api_key, secret=args.secret)
        print(f"subscribe  topic={topic} -> {status} {body.strip()[:200]}", flush=True)
    stopped.wait()
    receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
