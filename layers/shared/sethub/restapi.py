"""A small router for API Gateway REST proxy events, shaped like Powertools' resolver.

Why not ``aws_lambda_powertools.event_handler.APIGatewayRestResolver``: importing it runs
the ``event_handler`` package, which loads every resolver Powertools has (AppSync and its
asyncio, Bedrock, VPC Lattice, ...) and the data classes of ~40 event types: ~40 ms of
CPU on every cold start of a function that routes three paths (issue 12's cold-start
goal is 1.3x ``import boto3`` for the whole handler). This module keeps the decorator
API the handlers used (``@app.get``, ``@app.exception_handler``, ``app.current_event``,
``Response``) and answers as that resolver does: ``multiValueHeaders``, dict bodies as
compact JSON, bytes as base64, a trailing slash matched, and unknown routes or methods
``404 {"statusCode":404,"message":"Not found"}``. ``HttpApiRouter`` does the same for an
HTTP API's payload 2.0 events as ``APIGatewayHttpResolver``: the stage stripped from the
path, no trailing slash matched, ``headers`` with repeated values joined by ", " and
``cookies``. Logging, metrics and tracing stay Powertools'.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

APPLICATION_JSON = "application/json"

_Handler = TypeVar("_Handler", bound=Callable[..., Any])
_NOT_FOUND = json.dumps({"statusCode": 404, "message": "Not found"}, separators=(",", ":"))


@dataclass(frozen=True)
class Response:
    """A reply: ``body`` as text, bytes (sent base64) or a JSON-able value (sent as JSON)."""

    status_code: int
    content_type: str | None = None
    body: Any = None
    headers: Mapping[str, str | list[str]] = field(default_factory=dict)


class RestEvent:
    """The parts of a REST proxy event the handlers read."""

    def __init__(self, raw_event: dict[str, Any]) -> None:
        self.raw_event = raw_event

    @property
    def path(self) -> str:
        return str(self.raw_event.get("path") or "/")

    @property
    def http_method(self) -> str:
        return str(self.raw_event.get("httpMethod") or "").upper()

    @property
    def headers(self) -> dict[str, str]:
        return self.raw_event.get("headers") or {}

    @property
    def query_string_parameters(self) -> dict[str, str] | None:
        return self.raw_event.get("queryStringParameters")

    @property
    def body(self) -> str | None:
        return self.raw_event.get("body")

    @property
    def is_base64_encoded(self) -> bool:
        return bool(self.raw_event.get("isBase64Encoded"))


class HttpApiEvent(RestEvent):
    """An HTTP API's payload 2.0 event: the method and path live elsewhere."""

    @property
    def path(self) -> str:
        # As Powertools reads it: a named stage is the path's first segment ($default has none).
        raw = str(self.raw_event.get("rawPath") or "/")
        stage = (self.raw_event.get("requestContext") or {}).get("stage")
        if stage and stage != "$default":
            return raw[len("/" + stage) :]
        return raw

    @property
    def http_method(self) -> str:
        http = (self.raw_event.get("requestContext") or {}).get("http") or {}
        return str(http.get("method") or "").upper()


class RestRouter:
    """Routes by method and exact path (a trailing slash allowed).

    ``current_event`` is the event this thread is resolving: the local stack's workers
    serve requests on threads, so one router may resolve several events at once.
    """

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], Callable[[], Any]] = {}
        self._errors: dict[type[BaseException], Callable[[Any], Response]] = {}
        self._local = threading.local()

    @property
    def current_event(self) -> RestEvent:
        event: RestEvent | None = getattr(self._local, "event", None)
        if event is None:
            raise RuntimeError("no event is being resolved")
        return event

    def route(self, method: str, path: str) -> Callable[[_Handler], _Handler]:
        def register(function: _Handler) -> _Handler:
            self._routes[(method.upper(), path.rstrip("/") or "/")] = function
            return function

        return register

    def get(self, path: str) -> Callable[[_Handler], _Handler]:
        return self.route("GET", path)

    def post(self, path: str) -> Callable[[_Handler], _Handler]:
        return self.route("POST", path)

    def put(self, path: str) -> Callable[[_Handler], _Handler]:
        return self.route("PUT", path)

    def patch(self, path: str) -> Callable[[_Handler], _Handler]:
        return self.route("PATCH", path)

    def delete(self, path: str) -> Callable[[_Handler], _Handler]:
        return self.route("DELETE", path)

    def exception_handler(self, kind: type[BaseException]) -> Callable[[_Handler], _Handler]:
        """Replies for ``kind`` and its subclasses (the most specific handler wins)."""

        def register(function: _Handler) -> _Handler:
            self._errors[kind] = function
            return function

        return register

    def resolve(self, event: dict[str, Any], context: object = None) -> dict[str, Any]:
        self._local.event = self._event(event)
        try:
            return self._reply(self._dispatch(self._local.event))
        finally:
            self._local.event = None

    def _event(self, event: dict[str, Any]) -> RestEvent:
        return RestEvent(event)

    def _route_path(self, path: str) -> str:
        # REST API: "/health/" is "/health", as Powertools' REST resolver matches it.
        return _SLASHES.sub("", path) or "/"

    def _reply(self, response: Response) -> dict[str, Any]:
        return _proxy_reply(response)

    def _dispatch(self, event: RestEvent) -> Response:
        route = self._routes.get((event.http_method, self._route_path(event.path)))
        if route is None:
            return Response(status_code=404, content_type=APPLICATION_JSON, body=_NOT_FOUND)
        try:
            result = route()
        except Exception as exc:
            on_error = self._handler_for(exc)
            if on_error is None:
                raise
            return on_error(exc)
        if isinstance(result, Response):
            return result
        return Response(status_code=200, content_type=APPLICATION_JSON, body=result)

    def _handler_for(self, exc: BaseException) -> Callable[[Any], Response] | None:
        for kind in type(exc).__mro__:
            if kind in self._errors:
                return self._errors[kind]
        return None


_SLASHES = re.compile(r"/+$")


class HttpApiRouter(RestRouter):
    """``RestRouter`` for an HTTP API's payload 2.0 events (``APIGatewayHttpResolver``'s replies)."""

    def _event(self, event: dict[str, Any]) -> RestEvent:
        return HttpApiEvent(event)

    def _route_path(self, path: str) -> str:
        # Powertools' HTTP resolver matches the path exactly: "/events/" is not found.
        return path

    def _reply(self, response: Response) -> dict[str, Any]:
        body, encoded = _body(response)
        headers: dict[str, str] = {}
        for name, value in response.headers.items():
            headers[name] = ", ".join(value) if isinstance(value, list) else value
        if response.content_type:
            headers.setdefault("Content-Type", response.content_type)  # a header of that name wins
        return {
            "statusCode": response.status_code,
            "body": body,
            "isBase64Encoded": encoded,
            "headers": headers,
            "cookies": [],
        }


def _body(response: Response) -> tuple[str, bool]:
    """The reply's body as API Gateway takes it, and whether it is base64."""
    body = response.body
    if body is None:
        return "", False
    if isinstance(body, bytes):
        return base64.b64encode(body).decode("ascii"), True
    if not isinstance(body, str):
        return json.dumps(body, separators=(",", ":")), False
    return body, False


def _proxy_reply(response: Response) -> dict[str, Any]:
    headers: dict[str, list[str]] = {}
    if response.content_type:
        headers["Content-Type"] = [response.content_type]
    for name, value in response.headers.items():
        headers[name] = list(value) if isinstance(value, list) else [value]
    body, encoded = _body(response)
    return {
        "statusCode": response.status_code,
        "body": body,
        "isBase64Encoded": encoded,
        "multiValueHeaders": headers,
    }
