"""The verify-queue consumer: verification of intent and denial callbacks.

Thin: each SQS record is one ``sethub.verification`` call. A network failure fails
the record alone (partial batch response) so SQS redelivers it; everything else is
settled and logged.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from sethub.clients import AwsClients
from sethub.messages import DenySubscription, MessageFormatError, VerifyIntent, parse_message
from sethub.outbound import GuardedHttp
from sethub.runtime import per_environment
from sethub.settings import Settings
from sethub.store import SubscriptionStore
from sethub.verification import MAX_RESPONSE_BYTES, Verifier

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "sethub")
processor = BatchProcessor(event_type=EventType.SQS)


def _build_verifier() -> Verifier:
    settings = Settings.from_env()
    store = SubscriptionStore(AwsClients(), settings)
    http = GuardedHttp.from_settings(settings, max_response_bytes=MAX_RESPONSE_BYTES)
    return Verifier(store, http)


verifier = per_environment(_build_verifier)


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    try:
        message = parse_message(record.body)
    except MessageFormatError as exc:
        # Redelivery cannot fix a message sethub did not write: drop it, loudly.
        logger.error("dropped a malformed verify message", extra={"error": str(exc)[:200]})
        metrics.add_metric(name="VerifyMessagesDropped", unit=MetricUnit.Count, value=1)
        return
    if not isinstance(message, VerifyIntent | DenySubscription):
        logger.error("dropped a message of the wrong kind", extra={"kind": message.kind})
        return
    outcome = verifier().process(message)
    logger.info(
        "verification",
        extra={
            "outcome": outcome.kind,
            "topic": outcome.topic,
            "callback": outcome.callback,
            "detail": outcome.detail,
        },
    )
    metrics.add_metric(name=f"Verification_{outcome.kind}", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
