"""An AWS endpoint that applies one function's role before the embedded AWS sees a call.

One ``AuthorizingEndpoint`` per function: the function's ``AWS_ENDPOINT_URL`` points at it,
so every call its SDK makes is read (``devstack.iam.parse_request``), checked against that
function's policy by AWS's per-call rules, and either forwarded to moto (headers and body as
sent, its answer returned as is) or refused with the answer AWS gives, ``AccessDenied``, plus one line
on stderr naming the function, the action and the resource.

moto's own IAM enforcement is not used: it refuses ``TransactWriteItems`` even when every
per-item action is allowed, and it knows nothing of SAM's managed policies.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import queue
import selectors
import socket
import socketserver
import sys
import threading
import uuid
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from devstack.httphead import MAX_LINE, HttpError, read_fields
from devstack.iam import (
    ACCOUNT_ID,
    AwsRequest,
    Lookups,
    Policy,
    RequestError,
    Verdict,
    authorize,
    parse_request,
)

if TYPE_CHECKING:
    from devstack.provision import Provisioned

__all__ = ["AuthorizingEndpoint", "endpoint_for"]

# Headers that belong to one connection, never forwarded (RFC 9110 7.6.1).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        # Answered here (the body is read before it is forwarded).
        "expect",
    }
)
# Long polls (ReceiveMessage WaitTimeSeconds) last up to 20 s.
_UPSTREAM_TIMEOUT_SECONDS = 60.0
_POOL_SIZE = 16
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD"})
_NO_BODY_STATUSES = frozenset({204, 304})


# HTTP/1.1 read by hand: http.client and http.server parse every header block with the
# email package, which was over half the endpoint's CPU per proxied call.
def _read_head(stream: io.BufferedIOBase) -> tuple[str, list[tuple[str, str]]] | None:
    """A message's start line and headers (``None``: the peer closed between messages)."""
    start = stream.readline(MAX_LINE + 1)
    if not start:
        return None
    if len(start) > MAX_LINE:
        raise HttpError("start line too long")
    return start.decode("latin-1").rstrip("\r\n"), read_fields(stream)


def _read_body(stream: io.BufferedIOBase, lower: dict[str, str], *, to_close: bool) -> bytes:
    """The body the headers announce; ``to_close``: without a length it runs to the close."""
    if "chunked" in lower.get("transfer-encoding", "").lower():
        chunks = []
        while size := _chunk_size(stream.readline(MAX_LINE)):
            chunks.append(_read_exactly(stream, size))
            stream.readline(MAX_LINE)
        while stream.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)
    if "content-length" in lower:
        try:
            length = int(lower["content-length"])
        except ValueError:
            raise HttpError("Content-Length is not a number") from None
        if length < 0:
            raise HttpError("Content-Length is negative")
        return _read_exactly(stream, length)
    return stream.read() if to_close else b""


def _chunk_size(line: bytes) -> int:
    if not line:
        raise HttpError("the connection closed inside the body")
    try:
        size = int(line.split(b";")[0].strip() or b"0", 16)
    except ValueError:
        raise HttpError(f"malformed chunk size {line[:20]!r}") from None
    if size < 0:
        raise HttpError("negative chunk size")
    return size


def _read_exactly(stream: io.BufferedIOBase, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise HttpError("the connection closed inside the body")
    return data


def _lowered(headers: list[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


class _Upstream:
    """One keep-alive connection to moto."""

    def __init__(self, host: str, port: int) -> None:
        self.socket = socket.create_connection((host, port), timeout=_UPSTREAM_TIMEOUT_SECONDS)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stream = self.socket.makefile("rb")
        self.open = True

    def exchange(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers)]
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        # One write: head and body in one segment.
        self.socket.sendall("\r\n".join(lines).encode("latin-1") + body)
        head = _read_head(self.stream)
        if head is None:
            raise http.client.RemoteDisconnected("the embedded AWS closed the connection")
        start, response_headers = head
        version, _, rest = start.partition(" ")
        try:
            status = int(rest[:3])
        except ValueError:
            raise HttpError(f"malformed status line {start[:40]!r}") from None
        lower = _lowered(response_headers)
        closes = version != "HTTP/1.1" or lower.get("connection", "").lower() == "close"
        if method == "HEAD" or status in _NO_BODY_STATUSES or 100 <= status < 200:
            payload = b""
        else:
            delimited = "content-length" in lower or "transfer-encoding" in lower
            payload = _read_body(self.stream, lower, to_close=not delimited)
            closes = closes or not delimited
        if closes:
            self.close()
        return status, response_headers, payload

    def close(self) -> None:
        self.open = False
        self.stream.close()
        self.socket.close()


class _UpstreamPool:
    """Keep-alive connections to moto, reused across requests (one per request at a time)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the embedded AWS must be an http:// URL, not {url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._idle: queue.LifoQueue[_Upstream] = queue.LifoQueue()

    def send(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        try:
            connection, reused = self._idle.get_nowait(), True
        except queue.Empty:
            connection, reused = _Upstream(self._host, self._port), False
        try:
            response = connection.exchange(method, target, headers, body)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            connection.close()
            if not reused:
                raise
            # moto closed an idle keep-alive connection: the request never reached it.
            connection = _Upstream(self._host, self._port)
            response = connection.exchange(method, target, headers, body)
        except BaseException:
            connection.close()
            raise
        if connection.open and self._idle.qsize() < _POOL_SIZE:
            self._idle.put(connection)
        elif connection.open:
            connection.close()
        return response

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class AuthorizingEndpoint:
    """One function's AWS endpoint: ``url`` goes in its ``AWS_ENDPOINT_URL``."""

    def __init__(
        self,
        policy: Policy,
        upstream_url: str,
        *,
        function_name: str,
        lookups: Lookups | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        log: TextIO | None = None,
    ) -> None:
        self.policy = policy
        self.function_name = function_name
        self.lookups = lookups or Lookups()
        account = self.lookups.account or ACCOUNT_ID
        self.principal = f"arn:aws:sts::{account}:assumed-role/{policy.role_name}/{function_name}"
        self.refused: list[Verdict] = []
        self._log = log
        self._pool = _UpstreamPool(upstream_url)
        self._server = _Server((host, port), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> AuthorizingEndpoint:
        if self._thread is None:
            self._wake_read, self._wake_write = socket.socketpair()
            self._thread = threading.Thread(
                target=self._serve, name=f"aws-gate-{self.function_name}", daemon=True
            )
            self._thread.start()
        return self

    def _serve(self) -> None:
        # Not serve_forever: its poll made every stop() wait ~50 ms, and test hubs come and go
        # by the hundred; here stop() wakes the loop at once.
        with selectors.DefaultSelector() as selector:
            selector.register(self._server.socket, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_read:
                        return
                    self._server.handle_request()  # a connection is waiting: accepted at once

    def stop(self) -> None:
        if self._thread is not None:
            self._wake_write.send(b"x")
            self._thread.join()
            self._thread = None
            self._wake_read.close()
            self._wake_write.close()
        self._server.server_close()
        self._pool.close()

    def __enter__(self) -> AuthorizingEndpoint:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def authorize(self, request: AwsRequest) -> Verdict:
        verdict = authorize(self.policy, request, self.principal, self.lookups)
        if not verdict.allowed:
            self.refused.append(verdict)
            what = (
                f"{verdict.refused.action} on {verdict.refused.resource}"
                if verdict.refused
                else f"{request.service}:{request.operation}"
            )
            self.note(f"refused {what}: {verdict.reason}")
        return verdict

    def note(self, line: str) -> None:
        """One line on stderr (or ``log``) about this function's calls."""
        print(f"devstack IAM: {self.function_name} {line}", file=self._log or sys.stderr, flush=True)

    def forward(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        return self._pool.send(method, target, headers, body)


def _denial(
    message: str, headers: dict[str, str], *, service: str | None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """AWS's AccessDenied answer, in the protocol the request used."""
    request_id = str(uuid.uuid4())
    if "x-amz-target" in headers or service is None:
        content_type = headers.get("content-type", "application/x-amz-json-1.0").split(";")[0]
        reply = [("Content-Type", content_type), ("x-amzn-RequestId", request_id)]
        if service == "sqs":
            # SQS's JSON protocol carries the query protocol's error code in this header.
            reply.append(("x-amzn-query-error", "AccessDenied;Sender"))
        body = json.dumps({"__type": "AccessDeniedException", "message": message}).encode()
        return 400, reply, body
    xml = (
        '<?xml version="1.0"?><ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return 403, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], xml.encode()


class _Server(socketserver.ThreadingTCPServer):
    # A thread per connection: the SDK keeps its connections, so a thread serves many calls.
    daemon_threads = True
    allow_reuse_address = True
    # handle_request's wait once a connection was seen (bounded should it vanish unaccepted).
    timeout = 0.05


def _handler_for(endpoint: AuthorizingEndpoint) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        # Replies go out at once: with Nagle's algorithm on, a reply's last segment waited for
        # the client's delayed ACK of the previous one (~40 ms on every call through here).
        disable_nagle_algorithm = True

        def handle(self) -> None:
            try:
                while self._one_request():
                    pass
            except HttpError as exc:
                with contextlib.suppress(OSError):  # the client may be gone already
                    self._reply(400, [("Content-Type", "text/plain")], f"{exc}\n".encode(), close=True)
            except OSError:
                pass  # the SDK went away (reset, broken pipe): nothing to answer

        def _one_request(self) -> bool:
            """Serves one request; whether the connection stays open for the next."""
            head = _read_head(self.rfile)
            if head is None:
                return False
            start, raw_headers = head
            parts = start.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1]:
                raise HttpError(f"malformed request line {start[:40]!r}")
            method, target, version = parts
            lower = _lowered(raw_headers)
            connection = lower.get("connection", "").lower()
            keep_alive = connection == "keep-alive" if version == "HTTP/1.0" else connection != "close"
            if lower.get("expect", "").lower() == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = _read_body(self.rfile, lower, to_close=False)
            if method not in _METHODS:
                self._reply(501, [("Content-Type", "text/plain")], f"{method} is not served\n".encode())
                return keep_alive
            self._reply(*self._answer(method, target, raw_headers, lower, body), close=not keep_alive)
            return keep_alive

        def _answer(
            self,
            method: str,
            target: str,
            raw_headers: list[tuple[str, str]],
            lower: dict[str, str],
            body: bytes,
        ) -> tuple[int, list[tuple[str, str]], bytes]:
            try:
                request = parse_request(method, target, lower, body)
            except RequestError as exc:
                endpoint.note(f"refused a request: {exc}")
                return _denial(str(exc), lower, service=None)
            verdict = endpoint.authorize(request)
            if not verdict.allowed:
                return _denial(verdict.message, lower, service=request.service)
            forwarded = [(name, value) for name, value in raw_headers if name.lower() not in _HOP_BY_HOP]
            try:
                return endpoint.forward(method, target, forwarded, body)
            except (OSError, HttpError) as exc:
                message = f"devstack could not reach the embedded AWS: {exc}"
                return 502, [("Content-Type", "text/plain")], message.encode()

        def _reply(
            self, status: int, headers: list[tuple[str, str]], payload: bytes, *, close: bool = False
        ) -> None:
            head = [f"HTTP/1.1 {status} {http.client.responses.get(status, '')}"]
            head += [
                f"{name}: {value}"
                for name, value in headers
                if name.lower() not in _HOP_BY_HOP and name.lower() not in ("server", "date")
            ]
            if close:
                head.append("Connection: close")
            head.append(f"Content-Length: {len(payload)}\r\n\r\n")
            # Head and body in one write: two small writes are two segments on the wire.
            self.wfile.write("\r\n".join(head).encode("latin-1") + payload)

    return Handler


def endpoint_for(
    provisioned: Provisioned,
    function: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log: TextIO | None = None,
) -> AuthorizingEndpoint:
    """An (unstarted) endpoint that applies ``function``'s role of ``provisioned``'s template."""
    return AuthorizingEndpoint(
        provisioned.policy_for(function),
        provisioned.endpoint_url,
        function_name=provisioned.function_name(function),
        lookups=provisioned.iam_lookups(),
        host=host,
        port=port,
        log=log,
    )
