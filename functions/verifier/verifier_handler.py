"""The verify-queue consumer: verification of intent and denial callbacks.

Thin: the records of a batch go to ``sethub.verification`` together (verified side by
side, each GET under one total deadline). Every outcome of a GET is final and settled;
only an AWS failure fails a record (partial batch response), so SQS redelivers it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from sethub.clients import AwsClients
from sethub.errors import ConfigurationError, UpstreamError
from sethub.hostlimits import HostLimits
from sethub.hygiene import callback_fields
from sethub.messages import (
    DenySubscription,
    MessageFormatError,
    VerifyIntent,
    VerifyQueueMessage,
    parse_message,
)
from sethub.outbound import GuardedHttp
from sethub.runtime import per_environment
from sethub.settings import Settings
from sethub.store import SubscriptionStore
from sethub.verification import MAX_RESPONSE_BYTES, Requeue, Verifier

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
# X-Ray subsegments for AWS calls only: patching every library Powertools knows (requests,
# httplib, sqlite3, ...) costs ~0.2 s of cold start and, for httplib, a subsegment per
# outbound HTTP request (every delivery and verification GET).
tracer = Tracer(patch_modules=("botocore",))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "sethub")


def _requeue(clients: AwsClients, queue_url: str) -> Requeue:
    def requeue(message: VerifyIntent, delay_seconds: int) -> None:
        try:
            clients.sqs.send_message(
                QueueUrl=queue_url, MessageBody=message.to_json(), DelaySeconds=min(delay_seconds, 900)
            )
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"SQS could not put a verification back: {type(exc).__name__}") from exc

    return requeue


def _build_verifier() -> Verifier:
    settings = Settings.from_env()
    if not settings.verify_queue_url:
        raise ConfigurationError("SETHUB_VERIFY_QUEUE_URL is not set")
    clients = AwsClients()
    store = SubscriptionStore(clients, settings)
    http = GuardedHttp.from_settings(settings, max_response_bytes=MAX_RESPONSE_BYTES)
    return Verifier(
        store,
        http,
        limits=HostLimits(clients, settings),
        requeue=_requeue(clients, settings.verify_queue_url),
    )


verifier = per_environment(_build_verifier)


def _parse(record: dict[str, Any]) -> VerifyQueueMessage | None:
    try:
        message = parse_message(str(record.get("body", "")))
    except MessageFormatError as exc:
        # Redelivery cannot fix a message sethub did not write: drop it, loudly.
        logger.error("dropped a malformed verify message", extra={"error": str(exc)[:200]})
        metrics.add_metric(name="VerifyMessagesDropped", unit=MetricUnit.Count, value=1)
        return None
    if not isinstance(message, VerifyIntent | DenySubscription):
        logger.error("dropped a message of the wrong kind", extra={"kind": message.kind})
        return None
    return message


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    work: list[tuple[str, VerifyQueueMessage]] = []
    for record in event.get("Records", []):
        message = _parse(record)
        if message is not None:
            work.append((str(record["messageId"]), message))
    results = verifier().process_all([message for _, message in work])
    failures: list[dict[str, str]] = []
    for (message_id, message), result in zip(work, results, strict=True):
        # Callback URLs may carry tokens: logs name the host and the subscription id only.
        named = callback_fields(message.topic, message.callback)
        if isinstance(result, Exception):
            logger.error(
                "verification failed, SQS will redeliver it",
                extra={"topic": message.topic, **named, "error": str(result)[:300]},
            )
            failures.append({"itemIdentifier": message_id})
            continue
        logger.info(
            "verification",
            extra={
                "outcome": result.kind,
                "topic": result.topic,
                **named,
                "detail": result.detail,
            },
        )
        metrics.add_metric(name=f"Verification_{result.kind}", unit=MetricUnit.Count, value=1)
    return {"batchItemFailures": failures}
