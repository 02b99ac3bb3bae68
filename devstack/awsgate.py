"""An AWS endpoint that applies one function's role before the embedded AWS sees a call.

One ``AuthorizingEndpoint`` per function: the function's ``AWS_ENDPOINT_URL`` points at it,
so every call its SDK makes is read (``devstack.iam.parse_request``), checked against that
function's policy by AWS's per-call rules, and either forwarded byte for byte to moto (its
answer returned as is) or refused with the answer AWS gives, ``AccessDenied``, plus one line
on stderr naming the function, the action and the resource.

moto's own IAM enforcement is not used: it refuses ``TransactWriteItems`` even when every
per-item action is allowed, and it knows nothing of SAM's managed policies.
"""

from __future__ import annotations

import http.client
import json
import queue
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

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
    }
)
# Long polls (ReceiveMessage WaitTimeSeconds) last up to 20 s.
_UPSTREAM_TIMEOUT_SECONDS = 60.0
_POOL_SIZE = 16


class _UpstreamPool:
    """Keep-alive connections to moto, reused across requests (one per request at a time)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the embedded AWS must be an http:// URL, not {url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._idle: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._host, self._port, timeout=_UPSTREAM_TIMEOUT_SECONDS)

    def send(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        try:
            connection, reused = self._idle.get_nowait(), True
        except queue.Empty:
            connection, reused = self._connect(), False
        try:
            response = self._exchange(connection, method, target, headers, body)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            connection.close()
            if not reused:
                raise
            # moto closed an idle keep-alive connection: the request never reached it.
            connection = self._connect()
            response = self._exchange(connection, method, target, headers, body)
        except BaseException:
            connection.close()
            raise
        if self._idle.qsize() < _POOL_SIZE:
            self._idle.put(connection)
        else:
            connection.close()
        return response

    @staticmethod
    def _exchange(
        connection: http.client.HTTPConnection,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        payload = response.read()
        if response.will_close:
            connection.close()
        return response.status, response.getheaders(), payload

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
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> AuthorizingEndpoint:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                # stop() waits for one poll: keep it short (test hubs come and go by the hundred).
                kwargs={"poll_interval": 0.05},
                name=f"aws-gate-{self.function_name}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
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


def _handler_for(endpoint: AuthorizingEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, like AWS: SDKs reuse their connections.
        protocol_version = "HTTP/1.1"
        # Replies go out at once: with Nagle's algorithm on, a reply's last segment waited for
        # the client's delayed ACK of the previous one (~40 ms on every call through here).
        disable_nagle_algorithm = True

        def _body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _handle(self) -> None:
            body = self._body()
            raw_headers = [(name, value) for name, value in self.headers.items()]
            lower = {name.lower(): value for name, value in raw_headers}
            try:
                request = parse_request(self.command, self.path, lower, body)
            except RequestError as exc:
                endpoint.note(f"refused a request: {exc}")
                self._reply(*_denial(str(exc), lower, service=None))
                return
            verdict = endpoint.authorize(request)
            if not verdict.allowed:
                self._reply(*_denial(verdict.message, lower, service=request.service))
                return
            forwarded = [(name, value) for name, value in raw_headers if name.lower() not in _HOP_BY_HOP]
            try:
                status, headers, payload = endpoint.forward(self.command, self.path, forwarded, body)
            except OSError as exc:
                message = f"devstack could not reach the embedded AWS: {exc}"
                self._reply(502, [("Content-Type", "text/plain")], message.encode())
                return
            self._reply(status, headers, payload)

        def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
            reason = self.responses.get(status, ("",))[0]
            head = [f"{self.protocol_version} {status} {reason}"]
            head += [
                f"{name}: {value}"
                for name, value in headers
                if name.lower() not in _HOP_BY_HOP and name.lower() not in ("server", "date")
            ]
            head.append(f"Content-Length: {len(payload)}\r\n\r\n")
            # Head and body in one write: two small writes are two segments on the wire.
            self.wfile.write("\r\n".join(head).encode("latin-1") + payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass  # One line per refusal is logged instead; allowed calls stay quiet.

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
