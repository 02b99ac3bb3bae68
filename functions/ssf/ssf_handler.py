"""The SSF transmitter's HTTP endpoints (thin: the work is ``sethub.ssf.service``).

GET  /.well-known/ssf-configuration     metadata (no auth)
GET  /ssf/jwks.json                     the RS256 keys of SSF SETs only (no auth); the metadata's
                                        jwks_uri is the hub's one JWKS, /.well-known/jwks.json
POST /oauth2/token                      client credentials -> bearer access token
POST|GET|PATCH|PUT|DELETE /ssf/stream   stream configuration (SSF 8.1.1)
GET|POST /ssf/status                    stream status (SSF 8.1.2)
POST /ssf/subjects/add|remove           subjects (SSF 8.1.3)
POST /ssf/verify                        verification (SSF 8.1.4)
POST /ssf/poll?stream_id=               RFC 8936 poll
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths

from sethub.api import base_url, request_body
from sethub.clients import AwsClients
from sethub.errors import BadRequestError, PayloadTooLargeError, SethubError
from sethub.hubstats import StreamCensus
from sethub.queues import QueueSender
from sethub.restapi import APPLICATION_JSON, Response, RestRouter
from sethub.runtime import per_environment
from sethub.settings import Settings
from sethub.ssf import model
from sethub.ssf.auth import InsufficientScopeError, InvalidTokenError, TokenError
from sethub.ssf.keys import SsfKeys
from sethub.ssf.service import Reply, SsfService
from sethub.ssf.store import SsfStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

MAX_BODY_BYTES = 64 * 1024
NO_STORE = {"Cache-Control": "no-store"}

logger = Logger()
# X-Ray subsegments for AWS calls only: patching every library Powertools knows (requests,
# httplib, sqlite3, ...) costs ~0.2 s of cold start and, for httplib, a subsegment per
# outbound HTTP request (every delivery and verification GET).
tracer = Tracer(patch_modules=("botocore",))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "sethub")
# Not Powertools' APIGatewayRestResolver: its import costs ~40 ms of every cold start
# (sethub.restapi says why and what it keeps the same).
app = RestRouter()
# The request as this thread received it: the resolver's current_event is shared by the app,
# and the local stack's workers serve requests on threads (a long poll overlaps others).
_request = threading.local()


class _Container:
    def __init__(self) -> None:
        self.settings = Settings.from_env()
        self.clients = AwsClients()
        self.keys = SsfKeys(
            self.clients.kms,
            self.clients.dynamodb,
            table_name=self.settings.table_name,
            data_key_id=self.settings.data_key_id,
        )
        store = SsfStore(self.clients.dynamodb, self.settings.table_name)
        # SSF streams by status for the dashboard, counted whenever a receiver changes one.
        self.census = StreamCensus(store)
        self.service = SsfService(
            store,
            QueueSender(self.clients.sqs),
            events_queue_url=self.settings.events_queue_url,
            allow_http=self.settings.allow_http_callbacks,
            ensure_key=self.keys.ensure,
        )


container = per_environment(_Container)


def _service() -> SsfService:
    return container().service


def _event() -> dict[str, Any]:
    return _request.event  # type: ignore[no-any-return]


def _base() -> str:
    return base_url(_event(), container().settings)


def _issuer() -> str:
    """The transmitter's issuer: the URL its metadata is fetched from (SSF 7.2.4), so the
    API's public base URL (``SETHUB_PUBLIC_URL``, a custom domain) and never ``SETHUB_ISSUER``
    (which names topic SETs' issuer, possibly another host). Deployed without a custom
    domain it carries the stage (``/Prod``): see docs/ssf.md."""
    return _base()


def _body() -> bytes:
    event = _event()
    body = request_body(event.get("body"), is_base64_encoded=bool(event.get("isBase64Encoded")))
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"the body is over {MAX_BODY_BYTES} bytes")
    return body


def _headers() -> dict[str, str]:
    return dict(_event().get("headers") or {})


def _stream_id() -> str | None:
    return (_event().get("queryStringParameters") or {}).get("stream_id")


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    if body is None:
        return Response(status_code=status, headers={**NO_STORE, **(headers or {})}, body="")
    return Response(
        status_code=status,
        content_type=APPLICATION_JSON,
        body=body,
        headers={**NO_STORE, **(headers or {})},
    )


def _reply(reply: Reply) -> Response:
    return _json(reply.status, reply.body, dict(reply.headers))


def _changed(reply: Reply) -> Response:
    """A stream-changing request's reply; once it succeeded, the streams by status again."""
    if reply.status < 300:
        container().census.publish(metrics, force=True)
    return _reply(reply)


@app.get("/.well-known/ssf-configuration")
def get_configuration() -> Response:
    base = _base()
    # jwks_uri publishes the SSF key from the moment receivers can discover it.
    container().keys.ensure()
    return Response(
        status_code=200,
        content_type=APPLICATION_JSON,
        body=model.metadata(_issuer(), base),
        headers={"Cache-Control": "public, max-age=300"},
    )


@app.get("/ssf/jwks.json")
def get_jwks() -> Response:
    return Response(
        status_code=200,
        content_type=APPLICATION_JSON,
        body=container().keys.jwks(),
        headers={"Cache-Control": "public, max-age=300"},
    )


@app.post("/oauth2/token")
def post_token() -> Response:
    answer = _service().authority.issue(_headers(), _body(), now=int(_now()))
    return _json(200, answer, {"Pragma": "no-cache"})


@app.post("/ssf/stream")
def create_stream() -> Response:
    receiver = _service().receiver(_headers(), "ssf.manage")  # 401/403 before the body is read
    base = _base()
    return _changed(_service().create(receiver, _body(), iss=_issuer(), base_url=base))


@app.get("/ssf/stream")
def read_stream() -> Response:
    return _reply(_service().read(_service().receiver(_headers(), "ssf.read"), _stream_id()))


@app.patch("/ssf/stream")
def update_stream() -> Response:
    receiver = _service().receiver(_headers(), "ssf.manage")
    return _changed(_service().update(receiver, _body(), base_url=_base(), replace_all=False))


@app.put("/ssf/stream")
def replace_stream() -> Response:
    receiver = _service().receiver(_headers(), "ssf.manage")
    return _changed(_service().update(receiver, _body(), base_url=_base(), replace_all=True))


@app.delete("/ssf/stream")
def delete_stream() -> Response:
    return _changed(_service().delete(_service().receiver(_headers(), "ssf.manage"), _stream_id()))


@app.get("/ssf/status")
def get_status() -> Response:
    return _reply(_service().get_status(_service().receiver(_headers(), "ssf.read"), _stream_id()))


@app.post("/ssf/status")
def post_status() -> Response:
    receiver = _service().receiver(_headers(), "ssf.manage")
    return _changed(_service().set_status(receiver, _body(), _stream_id()))


@app.post("/ssf/subjects/add")
def add_subject() -> Response:
    receiver = _service().receiver(_headers(), "ssf.manage")
    return _reply(_service().subject(receiver, _body(), add=True))


@app.post("/ssf/subjects/remove")
def remove_subject() -> Response:
    receiver = _service().receiver(_headers(), "ssf.manage")
    return _reply(_service().subject(receiver, _body(), add=False))


@app.post("/ssf/verify")
def verify() -> Response:
    receiver = _service().receiver(_headers(), "ssf.manage")
    return _reply(_service().verify(receiver, _body()))


@app.post("/ssf/poll")
def poll() -> Response:
    receiver = _service().receiver(_headers(), "ssf.read")
    return _reply(_service().poll(receiver, _body(), _stream_id()))


def _now() -> float:
    import time  # noqa: PLC0415

    return time.time()


@app.exception_handler(TokenError)
def on_token_error(exc: TokenError) -> Response:
    # RFC 6749 5.2: {"error", "error_description"}; 401 names the Basic scheme.
    headers = {"WWW-Authenticate": 'Basic realm="sethub"'} if exc.status == 401 else {}
    return _json(exc.status, {"error": exc.error, "error_description": exc.reason}, headers)


@app.exception_handler(BadRequestError)
def on_refusal(exc: BadRequestError) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, InvalidTokenError):
        headers["WWW-Authenticate"] = 'Bearer realm="sethub", error="invalid_token"'
    elif isinstance(exc, InsufficientScopeError):
        headers["WWW-Authenticate"] = 'Bearer realm="sethub", error="insufficient_scope"'
    return _json(exc.status, {"error": exc.reason}, headers)


@app.exception_handler(SethubError)
def on_error(exc: SethubError) -> Response:
    logger.exception("SSF request failed", extra={"error": type(exc).__name__})
    return _json(500, {"error": "internal error, try again later"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _request.event = event
    return app.resolve(event, context)
