"""sethub.restapi answers API Gateway's proxy events as Powertools' resolvers did.

The hub's functions swapped ``APIGatewayRestResolver`` (REST API, payload 1.0) and
``APIGatewayHttpResolver`` (HTTP API, payload 2.0) for sethub.restapi (cold start): the
same routes and handlers registered on both must give API Gateway the same reply, so
callers see no difference.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, APIGatewayRestResolver
from aws_lambda_powertools.event_handler import Response as PowertoolsResponse

from sethub.errors import BadRequestError, SethubError
from sethub.restapi import APPLICATION_JSON, HttpApiRouter, Response, RestRouter


def _register(app: Any, response: Any) -> None:
    """The same routes on either router; ``response`` is that router's Response class."""

    def health() -> dict[str, str]:
        return {"status": "ok", "name": "é"}

    def hub() -> Any:
        event = app.current_event
        body = f"{event.http_method} {event.body} {event.is_base64_encoded} {event.query_string_parameters}"
        return response(status_code=202, content_type="text/plain; charset=utf-8", body=body)

    def jwks() -> Any:
        return response(
            status_code=200,
            content_type=APPLICATION_JSON,
            body={"keys": []},
            headers={"Cache-Control": "public, max-age=300", "Vary": ["a", "b"]},
        )

    def gone() -> Any:
        return response(status_code=204, headers={"Cache-Control": "no-store"}, body="")

    def limited() -> Any:
        # As ingest refuses a key over its rate: a JSON body and Retry-After.
        headers = {"Retry-After": "7"}
        return response(
            status_code=429, content_type=APPLICATION_JSON, body={"error": "slow"}, headers=headers
        )

    def raw() -> Any:
        return response(status_code=200, content_type="application/octet-stream", body=b"\x00\xff")

    def refuse() -> Any:
        raise BadRequestError("no such topic")

    def fail() -> Any:
        raise SethubError("table missing")

    def crash() -> Any:
        raise KeyError("not handled")

    def on_refusal(exc: BadRequestError) -> Any:
        return response(status_code=exc.status, content_type="text/plain", body=exc.reason)

    def on_error(exc: SethubError) -> Any:
        return response(status_code=500, content_type=APPLICATION_JSON, body={"error": "internal error"})

    app.get("/health")(health)
    app.post("/hub")(hub)
    app.get("/jwks")(jwks)
    app.delete("/stream")(gone)
    app.post("/events")(limited)
    app.get("/bytes")(raw)
    app.post("/refuse")(refuse)
    app.post("/fail")(fail)
    app.put("/crash")(crash)
    app.exception_handler(BadRequestError)(on_refusal)
    app.exception_handler(SethubError)(on_error)


def _event(method: str, path: str, body: str | None = None) -> dict[str, Any]:
    return {
        "httpMethod": method,
        "path": path,
        "resource": path,
        "headers": {"Host": "hub.example"},
        "multiValueHeaders": {"Host": ["hub.example"]},
        "queryStringParameters": {"a": "1"} if body else None,
        "body": body,
        "isBase64Encoded": False,
        "requestContext": {"requestId": "r1", "stage": "v1"},
    }


REQUESTS = [
    ("GET", "/health", None),
    ("GET", "/health/", None),
    ("POST", "/hub", "hub.mode=subscribe"),
    ("GET", "/jwks", None),
    ("DELETE", "/stream", None),
    ("POST", "/events", "[]"),
    ("GET", "/bytes", None),
    ("POST", "/refuse", "{}"),
    ("POST", "/fail", "{}"),
    ("GET", "/nowhere", None),
    ("POST", "/health", None),
    ("GET", "/hub", None),
    ("GET", "/healthz", None),
]


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS)
def test_same_reply_as_powertools(method: str, path: str, body: str | None) -> None:
    ours, theirs = RestRouter(), APIGatewayRestResolver()
    _register(ours, Response)
    _register(theirs, PowertoolsResponse)
    assert ours.resolve(_event(method, path, body), None) == theirs.resolve(
        _event(method, path, body), cast(Any, {})
    )


def _http_event(method: str, path: str, body: str | None = None, stage: str = "$default") -> dict[str, Any]:
    """An HTTP API's payload 2.0 event (``Ingress=http``): the stage, if named, leads the path."""
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": raw_path,
        "rawQueryString": "a=1" if body else "",
        "headers": {"host": "hub.example", "x-api-key": "k"},
        "queryStringParameters": {"a": "1"} if body else None,
        "requestContext": {
            "http": {"method": method, "path": raw_path},
            "requestId": "r1",
            "stage": stage,
        },
        "stageVariables": {"hubBaseUrl": "https://hub.example/Prod"},
        "body": body,
        "isBase64Encoded": False,
    }


HTTP_REQUESTS = [
    *((method, path, body, "$default") for method, path, body in REQUESTS),
    ("POST", "/events", "[]", "v1"),
    ("GET", "/health", None, "v1"),
    ("GET", "", None, "v1"),  # the stage alone: an empty path
]


@pytest.mark.parametrize(("method", "path", "body", "stage"), HTTP_REQUESTS)
def test_same_http_api_reply_as_powertools(method: str, path: str, body: str | None, stage: str) -> None:
    ours, theirs = HttpApiRouter(), APIGatewayHttpResolver()
    _register(ours, Response)
    _register(theirs, PowertoolsResponse)
    assert ours.resolve(_http_event(method, path, body, stage), None) == theirs.resolve(
        _http_event(method, path, body, stage), cast(Any, {})
    )


def test_an_unhandled_error_propagates_and_the_router_forgets_the_event() -> None:
    app = RestRouter()
    _register(app, Response)
    with pytest.raises(KeyError):
        app.resolve(_event("PUT", "/crash"))
    with pytest.raises(RuntimeError):
        app.current_event  # noqa: B018 - reading it is the check


def test_threads_resolving_at_once_each_see_their_own_event() -> None:
    # The local stack's workers serve requests on threads with one router per function.
    app = RestRouter()
    inside = threading.Barrier(2, timeout=10)

    def echo() -> Response:
        body = app.current_event.body
        inside.wait()  # both requests are being resolved now
        return Response(status_code=200, content_type="text/plain", body=f"{body} {app.current_event.body}")

    app.post("/echo")(echo)
    with ThreadPoolExecutor(max_workers=2) as pool:
        replies = list(pool.map(lambda body: app.resolve(_event("POST", "/echo", body)), ["a", "b"]))
    assert [reply["body"] for reply in replies] == ["a a", "b b"]
