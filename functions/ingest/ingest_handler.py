"""``POST /events``: native publishing of identity events (thin: the work is ``sethub.ingest``).

Settings, clients and the ingestor are built once per container, on the first request.
The same route answers the REST API's proxy events (payload 1.0) and, with
``Ingress=http``, the HTTP API's (payload 2.0): one ``sethub.restapi`` router for each,
answering as Powertools' ``APIGatewayRestResolver`` and ``APIGatewayHttpResolver`` do.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from sethub.api import base_url, key_checker, request_body
from sethub.clients import AwsClients
from sethub.credentials import require_events_allowed
from sethub.credentials.ratelimit import DynamoDBKeyCounters, KeyLimits, KeyRateLimitedError, KeyRateLimiter
from sethub.errors import BadRequestError, SethubError
from sethub.events import parse_request_body
from sethub.ingest import Ingestor
from sethub.restapi import APPLICATION_JSON, HttpApiRouter, Response, RestRouter
from sethub.runtime import per_environment
from sethub.settings import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
# X-Ray subsegments for AWS calls only: patching every library Powertools knows (requests,
# httplib, sqlite3, ...) costs ~0.2 s of cold start and, for httplib, a subsegment per
# outbound HTTP request (every delivery and verification GET).
tracer = Tracer(patch_modules=("botocore",))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "sethub")
# Accepted requests publish no metric (below): no warning line about it either.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
# Not Powertools' resolvers: importing its event_handler costs ~40 ms of every cold start
# for one route (sethub.restapi says why and what it keeps the same).
rest_app = RestRouter()
http_app = HttpApiRouter()
HUB_BASE_URL_VARIABLE = "hubBaseUrl"
"""The HTTP API stage variable naming the REST API's base URL (the hub's own URL and the
default SET issuer): the publisher called another API's domain."""


class _Deps:
    def __init__(self) -> None:
        self.settings = Settings.from_env()
        self.clients = AwsClients()
        self.keys = key_checker(self.clients, self.settings)
        self.ingestor = Ingestor(self.clients, self.settings)
        # Ingress=http only: the HTTP API has no usage plans, so ingest limits each key.
        limits = KeyLimits.from_settings(self.settings)
        self.key_limiter = (
            KeyRateLimiter(limits, DynamoDBKeyCounters(self.clients, self.settings.table_name))
            if limits is not None
            else None
        )


deps = per_environment(_Deps)


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=APPLICATION_JSON, body=body, headers=headers or {})


def _base_url(raw_event: dict[str, Any], settings: Settings) -> str:
    hub = (raw_event.get("stageVariables") or {}).get(HUB_BASE_URL_VARIABLE)
    if hub and not settings.public_url:
        return str(hub)
    return base_url(raw_event, settings)


def _routes(app: RestRouter, *, per_key_limits: bool) -> None:
    """``POST /events`` and its error answers on ``app`` (either payload version);
    ``per_key_limits``: the function counts each key's requests (the HTTP API's)."""

    @app.post("/events")
    def post_events() -> Response:
        event = app.current_event
        current = deps()
        principal = current.keys.authenticate(event.headers)
        if per_key_limits and current.key_limiter is not None:
            current.key_limiter.admit(principal.key_id)
        body = request_body(event.body, is_base64_encoded=bool(event.is_base64_encoded))
        raw_events = parse_request_body(body)
        require_events_allowed(principal, raw_events)
        accepted = current.ingestor.ingest(
            raw_events, base_url=_base_url(event.raw_event, current.settings), publisher=principal
        )
        if len(accepted) == 1:
            logger.set_correlation_id(accepted[0]["jti"])
        # Nothing per accepted request at INFO, not even a metric (an EMF line of ~200 bytes):
        # at one event per request either was a line of the cost table on its own. The
        # archive and the delivery records keep every accepted jti; the API's Count, 4XX and
        # 5XX metrics and EventsRefused count requests (docs/operations.md, Metrics).
        logger.debug("events accepted", extra={"jtis": [item["jti"] for item in accepted][:100]})
        return _json(202, {"accepted": accepted})

    @app.exception_handler(BadRequestError)
    def on_refused(exc: BadRequestError) -> Response:
        logger.info("events refused", extra={"status": exc.status, "reason": exc.reason})
        metrics.add_metric(name="EventsRefused", unit=MetricUnit.Count, value=1)
        body: dict[str, Any] = {"error": exc.reason}
        if exc.problems:
            body["problems"] = exc.problems
        if isinstance(exc, KeyRateLimitedError):
            return _json(exc.status, body, {"Retry-After": str(exc.retry_after)})
        return _json(exc.status, body)

    @app.exception_handler(SethubError)
    def on_error(exc: SethubError) -> Response:
        # AWS or configuration trouble: nothing was accepted; the publisher should retry.
        logger.exception("ingest failed", extra={"error": type(exc).__name__})
        return _json(503, {"error": "events were not accepted, try again later"})


# The REST API's usage plan limits each key at the gateway.
_routes(rest_app, per_key_limits=False)
_routes(http_app, per_key_limits=True)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Payload 2.0 (HTTP API) says so in "version"; the REST API's 1.0 events have none.
    app = http_app if event.get("version") == "2.0" else rest_app
    return app.resolve(event, context)
