"""The hub endpoint: ``POST /hub``, ``GET /.well-known/jwks.json`` and ``GET /health``.

Thin: it turns API Gateway events into ``sethub.websub`` calls and plain-text replies.
Settings, clients and the hub are built once per container, on the first request.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from sethub.api import base_url, header, request_body
from sethub.clients import AwsClients
from sethub.errors import BadRequestError, SethubError
from sethub.restapi import APPLICATION_JSON, Response, RestRouter
from sethub.runtime import per_environment
from sethub.settings import Settings
from sethub.websub import Hub, HubReply, parse_hub_request

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from sethub.keyring import Signer

# sethub.keyring.JWKS_MAX_AGE_SECONDS: a rotated-in key waits this long before it signs.
JWKS_CACHE_CONTROL = "public, max-age=300"

logger = Logger()
# X-Ray subsegments for AWS calls only: patching every library Powertools knows (requests,
# httplib, sqlite3, ...) costs ~0.2 s of cold start and, for httplib, a subsegment per
# outbound HTTP request (every delivery and verification GET).
tracer = Tracer(patch_modules=("botocore",))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "sethub")
# Not Powertools' APIGatewayRestResolver: its import costs ~40 ms of every cold start for
# three routes (sethub.restapi says why and what it keeps the same).
app = RestRouter()


class _Container:
    """What one Lambda container builds once: settings, clients, the hub, the signer."""

    def __init__(self) -> None:
        self.settings = Settings.from_env()
        self.clients = AwsClients()
        self.hub = Hub(self.clients, self.settings)
        self._signer: Signer | None = None

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            from sethub.keyring import signer_for  # noqa: PLC0415 - only the JWKS route needs it

            # The ring is read on every JWKS request (one GetItem): a rotated-in key is
            # published at once, so receivers see it before it signs.
            self._signer = signer_for(self.clients, self.settings, refresh_seconds=0)
        return self._signer


container = per_environment(_Container)


def settings() -> Settings:
    return container().settings


def hub() -> Hub:
    return container().hub


def _text(reply: HubReply) -> Response:
    return Response(status_code=reply.status, content_type="text/plain; charset=utf-8", body=reply.body)


def _body() -> bytes:
    event = app.current_event
    return request_body(event.body, is_base64_encoded=bool(event.is_base64_encoded))


@app.post("/hub")
def post_hub() -> Response:
    event = app.current_event
    try:
        request = parse_hub_request(
            query=event.query_string_parameters,
            body=_body(),
            content_type=header(event.headers, "content-type"),
        )
    except BadRequestError as exc:
        return _text(HubReply(status=exc.status, body=exc.reason))
    reply = hub().handle(request, headers=event.headers, base_url=base_url(event.raw_event, settings()))
    mode = request.params.get("hub.mode", "")
    # The topic and mode only: parameters may include hub.secret.
    logger.info(
        "hub request",
        extra={"mode": mode[:40], "topic": request.params.get("hub.topic", "")[:200], "status": reply.status},
    )
    metrics.add_metric(
        name="HubRequests" if reply.status < 400 else "HubRefusals", unit=MetricUnit.Count, value=1
    )
    return _text(reply)


@app.get("/.well-known/jwks.json")
def get_jwks() -> Response:
    import time  # noqa: PLC0415 - only this route needs it

    from sethub.ssf.keys import published_jwks  # noqa: PLC0415

    built = container()
    # One JWKS for every SET sethub signs: the SSF streams' RS256 keys too (the SSF
    # metadata's jwks_uri), read from their ring's item (one GetItem, no KMS).
    ssf = published_jwks(built.clients.dynamodb, built.settings.table_name, now=time.time())
    hub = built.signer.jwks()["keys"]
    seen = {key["kid"] for key in hub}
    return Response(
        status_code=200,
        content_type=APPLICATION_JSON,
        body={"keys": [*hub, *(key for key in ssf if key["kid"] not in seen)]},
        headers={"Cache-Control": JWKS_CACHE_CONTROL},
    )


@app.get("/health")
def get_health() -> dict[str, str]:
    return {"status": "ok"}


@app.exception_handler(SethubError)
def on_error(exc: SethubError) -> Response:
    # AWS or configuration trouble: the detail goes to the log, the caller gets one line.
    logger.exception("hub request failed", extra={"error": type(exc).__name__})
    if app.current_event.path.endswith("/hub"):
        return _text(HubReply(status=500, body="internal error, try again later"))
    return Response(status_code=500, content_type=APPLICATION_JSON, body={"error": "internal error"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
