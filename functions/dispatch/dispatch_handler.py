"""Events-queue and retry-queue consumer (thin: the work is ``sethub.dispatch``).

The whole batch is dispatched together (one subscription query per topic, deliveries
of all events on one pool); the messages that did not settle are then reported as batch
item failures (``ReportBatchItemFailures``), so SQS delivers only those again. As
Powertools' ``BatchProcessor`` did, a batch none of whose messages settled fails the
invocation; the response is built here because that module alone added ~0.25 s of
imports to every cold start.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

from sethub.clients import AwsClients
from sethub.dispatch import BatchResult, Dispatcher
from sethub.errors import SethubError
from sethub.runtime import per_environment
from sethub.settings import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from sethub.hubstats import StreamCensus

logger = Logger()
# X-Ray subsegments for AWS calls only: patching every library Powertools knows (requests,
# httplib, sqlite3, ...) costs ~0.2 s of cold start and, for httplib, a subsegment per
# outbound HTTP request (every delivery and verification GET).
tracer = Tracer(patch_modules=("botocore",))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "sethub")
# The library logs through stdlib loggers; give them this handler's JSON format and keys.
copy_config_to_registered_loggers(source_logger=logger, include={"sethub"})


MAX_LATENCY_VALUES = 100


class DeliveryNotSettledError(SethubError):
    """A message whose deliveries were not all settled; SQS will deliver it again."""


dispatcher = per_environment(lambda: Dispatcher(AwsClients(), Settings.from_env()))


def _census() -> StreamCensus:
    # Imported here, with the first batch: the SSF store is not part of the handler's import.
    from sethub.hubstats import StreamCensus  # noqa: PLC0415
    from sethub.ssf.store import SsfStore  # noqa: PLC0415

    return StreamCensus(SsfStore(AwsClients().dynamodb, Settings.from_env().table_name))


# SSF streams by status for the dashboard: dispatch disables failing streams, and runs
# often enough to count them every few minutes (sethub.hubstats).
census = per_environment(_census)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    records = event.get("Records") or []
    result = dispatcher().dispatch(
        [(record["messageId"], record["body"]) for record in records],
        time_left=context.get_remaining_time_in_millis() / 1000,
    )
    if len(set(result.jtis)) == 1:
        logger.set_correlation_id(result.jtis[0])
    _publish_metrics(result)
    census().publish(metrics)

    failed = [record["messageId"] for record in records if record["messageId"] in result.failed]
    if records and len(failed) == len(records):
        raise DeliveryNotSettledError(f"none of the {len(records)} messages settled")
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def _publish_metrics(result: BatchResult) -> None:
    for status, count in result.counts.items():
        metrics.add_metric(name=f"Deliveries{status.capitalize()}", unit=MetricUnit.Count, value=count)
    if result.disabled:
        # Alarm on it: a subscriber endpoint dead for SETHUB_DISABLE_AFTER_SECONDS.
        metrics.add_metric(name="SubscriptionsDisabled", unit=MetricUnit.Count, value=result.disabled)
    if result.failed:
        metrics.add_metric(name="MessagesNotSettled", unit=MetricUnit.Count, value=len(result.failed))
    # Every request's duration, for the dashboard's p50/p99; EMF takes at most 100 values
    # per metric and line, so a bigger batch reports 100 evenly spaced ones of the sorted list.
    durations = sorted(result.durations_ms)
    step = max(1, -(-len(durations) // MAX_LATENCY_VALUES))
    for duration in durations[::step]:
        metrics.add_metric(name="DeliveryLatency", unit=MetricUnit.Milliseconds, value=duration)
