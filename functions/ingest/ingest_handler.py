"""``POST /events``: native publishing of identity events (thin: the work is ``sethub.ingest``).

Settings, clients and the ingestor are built once per container, on the first request.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit

from sethub.api import base_url, key_checker, request_body
from sethub.clients import AwsClients
from sethub.credentials import require_events_allowed
from sethub.errors import BadRequestError, SethubError
from sethub.events import parse_request_body
from sethub.ingest import Ingestor
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
app = APIGatewayRestResolver()


class _Deps:
    def __init__(self) -> None:
        self.settings = Settings.from_env()
        self.clients = AwsClients()
        self.keys = key_checker(self.clients, self.settings)
        self.ingestor = Ingestor(self.clients, self.settings)


deps = per_environment(_Deps)


def _json(status: int, body: dict[str, Any]) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def _body() -> bytes:
    event = app.current_event
    return request_body(event.body, is_base64_encoded=bool(event.is_base64_encoded))


@app.post("/events")
def post_events() -> Response[Any]:
    event = app.current_event
    current = deps()
    principal = current.keys.authenticate(event.headers)
    raw_events = parse_request_body(_body())
    require_events_allowed(principal, raw_events)
    accepted = current.ingestor.ingest(
        raw_events, base_url=base_url(event.raw_event, current.settings), publisher=principal
    )
    if len(accepted) == 1:
        logger.set_correlation_id(accepted[0]["jti"])
    logger.info("events accepted", extra={"jtis": [item["jti"] for item in accepted][:100]})
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=len(accepted))
    return _json(202, {"accepted": accepted})


@app.exception_handler(BadRequestError)  # type: ignore[untyped-decorator]
def on_refused(exc: BadRequestError) -> Response[Any]:
    logger.info("events refused", extra={"status": exc.status, "reason": exc.reason})
    metrics.add_metric(name="EventsRefused", unit=MetricUnit.Count, value=1)
    body: dict[str, Any] = {"error": exc.reason}
    if exc.problems:
        body["problems"] = exc.problems
    return _json(exc.status, body)


@app.exception_handler(SethubError)  # type: ignore[untyped-decorator]
def on_error(exc: SethubError) -> Response[Any]:
    # AWS or configuration trouble: nothing was accepted; the publisher should retry.
    logger.exception("ingest failed", extra={"error": type(exc).__name__})
    return _json(503, {"error": "events were not accepted, try again later"})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
