"""A local API Gateway: HTTP requests in, REST API (v1) proxy events to the real handlers.

API key rules are the template's: a route with ``ApiKeyRequired`` answers a missing or
wrong ``x-api-key`` with the template's ``INVALID_API_KEY`` gateway response before the
function sees the request, as API Gateway does; an unknown route gets
``MISSING_AUTHENTICATION_TOKEN``; a handler that raises gets API Gateway's 502.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from devstack.functions import Invocable
from devstack.provision import ACCOUNT_ID, ApiRoute, GatewayResponse

STAGE = "local"
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
_DEFAULT_ERRORS = {
    "INVALID_API_KEY": (403, "Forbidden"),
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
}


@dataclass(frozen=True)
class _CompiledRoute:
    route: ApiRoute
    pattern: re.Pattern[str]

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.route.method not in ("ANY", method):
            return None
        found = self.pattern.fullmatch(path)
        return None if found is None else found.groupdict()


def _compile(route: ApiRoute) -> _CompiledRoute:
    pattern = ""
    for part in re.split(r"(\{[^}]+\})", route.path):
        if part.startswith("{") and part.endswith("+}"):
            pattern += f"(?P<{part[1:-2]}>.+)"
        elif part.startswith("{"):
            pattern += f"(?P<{part[1:-1]}>[^/]+)"
        else:
            pattern += re.escape(part)
    return _CompiledRoute(route=route, pattern=re.compile(pattern))


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class ApiGateway:
    """Routes requests to functions; ``ready`` is set once the whole stack can serve."""

    def __init__(
        self,
        *,
        routes: Sequence[ApiRoute],
        functions: Mapping[str, Invocable],
        api_key: str,
        gateway_responses: Mapping[str, GatewayResponse],
        host: str = "127.0.0.1",
        port: int = 3000,
        access_log: bool = True,
    ) -> None:
        self._routes = [_compile(route) for route in routes]
        self._functions = functions
        self._api_key = api_key.encode()
        self._key_check: Callable[[str], bool] | None = None
        self._responses = gateway_responses
        self.ready = threading.Event()
        self.access_log = access_log
        self._server = ThreadingHTTPServer((host, port), _handler_class(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    def configure(
        self,
        *,
        routes: Sequence[ApiRoute],
        functions: Mapping[str, Invocable],
        gateway_responses: Mapping[str, GatewayResponse],
    ) -> None:
        """Install the routes (before ``ready`` is set; the server is already listening)."""
        self._routes = [_compile(route) for route in routes]
        self._functions = functions
        self._responses = gateway_responses

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="api-gateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    # -- request handling ----------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes, client_ip: str
    ) -> Reply:
        if not self.ready.is_set():
            return _json_reply(503, {"status": "starting"})
        split = urlsplit(target)
        path = split.path or "/"
        for compiled in self._routes:
            params = compiled.match(method, path)
            if params is not None:
                break
        else:
            if path == "/health" and method == "GET":
                return _json_reply(200, {"status": "ok"})
            return self._gateway_error("MISSING_AUTHENTICATION_TOKEN")
        route = compiled.route
        if route.api_key_required and not self._key_ok(headers):
            return self._gateway_error("INVALID_API_KEY")
        event = self._event(
            route=route,
            method=method,
            path=path,
            query=split.query,
            headers=headers,
            body=body,
            path_parameters=params,
            client_ip=client_ip,
        )
        try:
            result = self._functions[route.function].invoke(event)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return _json_reply(502, {"message": "Internal server error"})
        return _reply_from_result(result)

    def accept_keys(self, check: Callable[[str], bool]) -> None:
        """Admit exactly the keys ``check`` accepts: API Gateway admits any key of the stage's
        usage plan, which holds every live hub key (devstack.credentials)."""
        self._key_check = check

    def _key_ok(self, headers: Sequence[tuple[str, str]]) -> bool:
        presented = next((value for name, value in headers if name.lower() == "x-api-key"), "")
        if not presented:
            return False
        if self._key_check is not None:
            return self._key_check(presented)
        return hmac.compare_digest(presented.strip().encode(), self._api_key)

    def _gateway_error(self, kind: str) -> Reply:
        status, message = _DEFAULT_ERRORS.get(kind, (400, "Bad Request"))
        spec = self._responses.get(kind) or self._responses.get("DEFAULT_4XX")
        if spec is None or not spec.body_template:
            return _json_reply(status, {"message": message})
        body = spec.body_template.replace("$context.error.messageString", json.dumps(message)).replace(
            "$context.error.message", message
        )
        headers = [("Content-Type", "application/json"), *spec.headers.items()]
        return Reply(spec.status or status, headers, body.encode())

    def _event(
        self,
        *,
        route: ApiRoute,
        method: str,
        path: str,
        query: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        path_parameters: dict[str, str],
        client_ip: str,
    ) -> dict[str, Any]:
        return proxy_event(
            resource=route.path,
            method=method,
            path=path,
            query=query,
            headers=headers,
            body=body,
            path_parameters=path_parameters,
            client_ip=client_ip,
        )


def proxy_event(
    *,
    resource: str,
    method: str,
    path: str | None = None,
    query: str = "",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    path_parameters: Mapping[str, str] | None = None,
    client_ip: str = "127.0.0.1",
    force_base64: bool = False,
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event, as API Gateway builds it for a Lambda proxy
    integration. A body that is not UTF-8 (or any body, with ``force_base64``) is base64."""
    path = path or resource
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    single_query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        single_query[name] = value
        multi_query.setdefault(name, []).append(value)
    encoded = force_base64
    if not encoded:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            encoded = True
    if encoded:
        text = base64.b64encode(body).decode()
    host = next((value for name, value in headers if name.lower() == "host"), "127.0.0.1")
    now = time.time()
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "extendedRequestId": str(uuid.uuid4()),
            "httpMethod": method,
            "identity": {
                "sourceIp": client_ip,
                "userAgent": single.get("User-Agent", ""),
            },
            "path": f"/{STAGE}{path}",
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "resourceId": "local",
            "resourcePath": resource,
            "stage": STAGE,
        },
        "body": text if body else None,
        "isBase64Encoded": encoded,
    }


def _json_reply(status: int, document: Mapping[str, Any]) -> Reply:
    return Reply(status, [("Content-Type", "application/json")], json.dumps(document).encode())


def _reply_from_result(result: Any) -> Reply:
    """API Gateway's reading of a proxy integration's result (a malformed one is a 502)."""
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        print("devstack: handler returned a malformed proxy response", file=sys.stderr)
        return _json_reply(502, {"message": "Internal server error"})
    headers: dict[str, list[str]] = {}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.setdefault(name, []).extend(str(value) for value in values)
    for name, value in (result.get("headers") or {}).items():
        if name not in headers:
            headers[name] = [str(value)]
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    pairs = [(name, value) for name, values in headers.items() for value in values]
    return Reply(int(result["statusCode"]), pairs, raw)


def _handler_class(gateway: ApiGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "sethub-devstack"
        # The head and the body leave in two writes: with Nagle on, the body waits for the
        # client's delayed ACK of the head (up to 40 ms on a kept-alive connection).
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                reply = gateway._gateway_error("REQUEST_TOO_LARGE")
                self.close_connection = True
            else:
                body = self.rfile.read(length) if length else b""
                reply = gateway.handle(
                    self.command, self.path, list(self.headers.items()), body, self.client_address[0]
                )
            self.send_response(reply.status)
            for name, value in reply.headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            if gateway.access_log:
                sys.stderr.write(f"devstack api: {format % args}\n")

    return Handler
