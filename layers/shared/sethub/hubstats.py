"""The last hour of a hub in numbers, from what it stores (no CloudWatch needed).

Where each number comes from:

- deliveries by outcome, latency p50/p99 and retries: the delivery records in the hub
  table (one line per attempt, written by every dispatch invocation): ``at`` is when
  the invocation recorded it, latency is an attempt's ``duration_ms`` (from resolving the
  callback's host to the end of its answer), a retry is an attempt after the first;
- dead letters: the dead-letter queues' ``ApproximateNumberOfMessages`` now, and the
  attempts of the window whose outcome was ``dead``;
- queued work: the events and retry queues' ``ApproximateNumberOfMessages`` now;
- disabled subscriptions: subscriptions stored ``disabled`` now, counted on the table's
  ``ByState`` index (index entries only, not the table).

On a deployed stack (``sethub --stack``) the delivery numbers come from CloudWatch
instead (``cloudwatch_summary``): the metrics dispatch publishes (``Deliveries<Outcome>``
sums, ``DeliveryLatency`` p50/p99), one ``GetMetricData`` for the window, so the command
reads nothing of the table but the disabled count. A retry there is a delivery that
failed and was scheduled again (``DeliveriesRetrying``).

SSF streams by status are a gauge in CloudWatch (``SsfStreams``, dimension ``status``):
counted by the SSF function after every request that changes a stream, and by dispatch
(which disables failing streams) every ``CENSUS_SECONDS`` per container. A count reads the
receivers (one Query) and each receiver's streams (one Query each): receivers are the
hub's OAuth clients, created by an operator, so tens of reads at most.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from sethub.errors import SethubError, UpstreamError

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics
    from mypy_boto3_sqs import SQSClient

    from sethub.records import Attempt

logger = logging.getLogger(__name__)

STREAM_METRIC = "SsfStreams"
STREAM_STATUSES = ("enabled", "paused", "disabled")
CENSUS_SECONDS = 300.0
"""How often dispatch counts SSF streams (per container): the dashboard's period."""

SOURCES_QUEUES = "SQS ApproximateNumberOfMessages, now"
SOURCES_DISABLED = "subscriptions stored disabled, now (a count of the hub table's ByState index)"
SOURCES = {
    "outcomes": "delivery records in the hub table (attempts recorded in the window)",
    "latency_ms": "duration_ms of those attempts (nearest-rank percentiles)",
    "retries": "those attempts whose attempt number is above 1",
    "dead_in_window": "those attempts whose outcome is dead",
    "queues": SOURCES_QUEUES,
    "disabled_subscriptions": SOURCES_DISABLED,
}
OUTCOMES = ("ok", "gone", "rejected", "retrying", "dead", "skipped")
"""Delivery outcomes (``sethub.records.Status``), each a ``Deliveries<Outcome>`` metric."""
CLOUDWATCH_SOURCES = {
    "outcomes": "CloudWatch: the Deliveries<Outcome> metrics dispatch publishes, summed over the window",
    "latency_ms": "CloudWatch: DeliveryLatency p50 and p99 over the window",
    "retries": "CloudWatch: DeliveriesRetrying (deliveries that failed and were scheduled again)",
    "dead_in_window": "CloudWatch: DeliveriesDead",
    "queues": SOURCES_QUEUES,
    "disabled_subscriptions": SOURCES_DISABLED,
}


def percentile(values: Sequence[int], fraction: float) -> int | None:
    """Nearest-rank percentile (``fraction`` in 0..1) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class HubStats:
    since: float
    until: float
    outcomes: dict[str, int]
    attempts: int
    latency_p50_ms: int | None
    latency_p99_ms: int | None
    retries: int
    dead_in_window: int
    queues: dict[str, int]
    disabled_subscriptions: int
    sources: dict[str, str] = field(default_factory=lambda: dict(SOURCES))


def queue_depths(sqs: SQSClient, urls: Mapping[str, str]) -> dict[str, int]:
    """Messages waiting in each named queue (visible ones; in-flight ones are being worked on)."""
    depths: dict[str, int] = {}
    for name, url in urls.items():
        if not url:
            continue
        try:
            attributes = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"SQS could not read the {name} queue's attributes") from exc
        depths[name] = int(attributes.get("Attributes", {}).get("ApproximateNumberOfMessages", "0"))
    return depths


def summarise(
    attempts: Sequence[Attempt],
    *,
    since: float,
    until: float,
    queues: Mapping[str, int],
    disabled_subscriptions: int,
) -> HubStats:
    durations = [attempt.duration_ms for attempt in attempts]
    outcomes: Counter[str] = Counter(attempt.status for attempt in attempts)
    return HubStats(
        since=since,
        until=until,
        outcomes=dict(sorted(outcomes.items())),
        attempts=len(attempts),
        latency_p50_ms=percentile(durations, 0.50),
        latency_p99_ms=percentile(durations, 0.99),
        retries=sum(1 for attempt in attempts if attempt.attempt > 1),
        dead_in_window=outcomes.get("dead", 0),
        queues=dict(queues),
        disabled_subscriptions=disabled_subscriptions,
    )


def cloudwatch_summary(
    cloudwatch: Any,
    *,
    since: float,
    until: float,
    queues: Mapping[str, int],
    disabled_subscriptions: int,
    namespace: str = "sethub",
    service: str = "sethub",
) -> HubStats:
    """The window's delivery numbers from the metrics dispatch publishes (one GetMetricData)."""
    from datetime import UTC, datetime  # noqa: PLC0415

    # One period covering the window, in whole minutes (CloudWatch's unit), ending with the
    # current minute (its data points are stamped to the second, and may be in it).
    period = max(60, math.ceil((until - since) / 60) * 60)
    end_at = math.ceil(until / 60) * 60
    start = datetime.fromtimestamp(end_at - period, UTC)
    end = datetime.fromtimestamp(end_at, UTC)
    dimensions = [{"Name": "service", "Value": service}]

    def query(ident: str, name: str, stat: str) -> dict[str, Any]:
        metric = {"Namespace": namespace, "MetricName": name, "Dimensions": dimensions}
        return {"Id": ident, "MetricStat": {"Metric": metric, "Period": period, "Stat": stat}}

    queries = [query(f"o_{outcome}", f"Deliveries{outcome.capitalize()}", "Sum") for outcome in OUTCOMES]
    queries += [query("p50", "DeliveryLatency", "p50"), query("p99", "DeliveryLatency", "p99")]
    values: dict[str, float] = {}
    request: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end}
    try:
        while True:
            page = cloudwatch.get_metric_data(**request)
            for result in page.get("MetricDataResults", []):
                found = [v for v in result.get("Values", []) if v is not None]
                if not found:
                    continue
                ident = result["Id"]
                if ident.startswith("p"):
                    # A percentile: CloudWatch may align the window over two periods; the
                    # larger of them, never a sum.
                    values[ident] = max(values.get(ident, 0.0), *map(float, found))
                else:
                    values[ident] = values.get(ident, 0.0) + float(sum(found))
            if not page.get("NextToken"):
                break
            request["NextToken"] = page["NextToken"]
    except (ClientError, BotoCoreError) as exc:
        raise UpstreamError("CloudWatch could not read the delivery metrics") from exc
    outcomes = {o: int(values[f"o_{o}"]) for o in OUTCOMES if values.get(f"o_{o}")}
    return HubStats(
        since=since,
        until=until,
        outcomes=dict(sorted(outcomes.items())),
        attempts=sum(outcomes.values()),
        latency_p50_ms=round(values["p50"]) if "p50" in values else None,
        latency_p99_ms=round(values["p99"]) if "p99" in values else None,
        retries=outcomes.get("retrying", 0),
        dead_in_window=outcomes.get("dead", 0),
        queues=dict(queues),
        disabled_subscriptions=disabled_subscriptions,
        sources=dict(CLOUDWATCH_SOURCES),
    )


def as_dict(stats: HubStats) -> dict[str, Any]:
    return {
        "since": stats.since,
        "until": stats.until,
        "outcomes": stats.outcomes,
        "attempts": stats.attempts,
        "latency_p50_ms": stats.latency_p50_ms,
        "latency_p99_ms": stats.latency_p99_ms,
        "retries": stats.retries,
        "dead_in_window": stats.dead_in_window,
        "queues": stats.queues,
        "disabled_subscriptions": stats.disabled_subscriptions,
        "sources": stats.sources,
    }


class _Client(Protocol):
    @property
    def client_id(self) -> str: ...


class _Stream(Protocol):
    @property
    def status(self) -> str: ...


class StreamLister(Protocol):
    """The part of ``sethub.ssf.store.SsfStore`` a count reads."""

    def list_clients(self) -> Sequence[_Client]: ...
    def list_streams(self, client_id: str) -> Sequence[_Stream]: ...


def stream_counts(store: StreamLister) -> dict[str, int]:
    """Every receiver's streams, by status (each status present, 0 when none)."""
    counts = dict.fromkeys(STREAM_STATUSES, 0)
    for client in store.list_clients():
        for stream in store.list_streams(client.client_id):
            counts[stream.status] = counts.get(stream.status, 0) + 1
    return counts


def publish_stream_counts(metrics: Metrics, counts: Mapping[str, int]) -> None:
    """``SsfStreams`` per status, as EMF lines of their own (a dimension each)."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric  # noqa: PLC0415

    # The handler's own service dimension, as its other metrics carry it (the dashboard's key).
    dimensions = {**metrics.default_dimensions}
    if metrics.service:
        dimensions["service"] = metrics.service
    for status, count in counts.items():
        with single_metric(
            name=STREAM_METRIC,
            unit=MetricUnit.Count,
            value=count,
            namespace=metrics.namespace,
            default_dimensions=dimensions,
        ) as metric:
            metric.add_dimension(name="status", value=status)


@dataclass
class StreamCensus:
    """Counts SSF streams by status and publishes the gauge; never fails its caller."""

    store: StreamLister
    every: float = CENSUS_SECONDS
    clock: Callable[[], float] = time.monotonic
    _last: float | None = None

    def publish(self, metrics: Metrics, *, force: bool = False) -> dict[str, int] | None:
        """Count and publish now (``force``), or when ``every`` has passed since the last count."""
        now = self.clock()
        if not force and self._last is not None and now - self._last < self.every:
            return None
        self._last = now
        try:
            counts = stream_counts(self.store)
        except SethubError as exc:
            # A gauge point missed; the next count fills it. Never a failed request or batch.
            logger.warning("could not count SSF streams: %s", exc)
            return None
        publish_stream_counts(metrics, counts)
        return counts


__all__ = [
    "CENSUS_SECONDS",
    "SOURCES",
    "STREAM_METRIC",
    "STREAM_STATUSES",
    "HubStats",
    "StreamCensus",
    "as_dict",
    "cloudwatch_summary",
    "percentile",
    "publish_stream_counts",
    "queue_depths",
    "stream_counts",
    "summarise",
]
