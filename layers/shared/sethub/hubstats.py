"""The last hour of a hub in numbers, from what it stores (no CloudWatch needed).

Where each number comes from:

- deliveries by outcome, latency p50/p99 and retries: the delivery records in the hub
  table (one line per attempt, written by every dispatch invocation): ``at`` is when
  the invocation recorded it, latency is an attempt's ``duration_ms`` (from resolving the
  callback's host to the end of its answer), a retry is an attempt after the first;
- dead letters: the dead-letter queues' ``ApproximateNumberOfMessages`` now, and the
  attempts of the window whose outcome was ``dead``;
- queued work: the events and retry queues' ``ApproximateNumberOfMessages`` now;
- disabled subscriptions: subscription items whose state is ``disabled``, now.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from sethub.errors import UpstreamError
from sethub.records import Attempt

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SOURCES = {
    "outcomes": "delivery records in the hub table (attempts recorded in the window)",
    "latency_ms": "duration_ms of those attempts (nearest-rank percentiles)",
    "retries": "those attempts whose attempt number is above 1",
    "dead_in_window": "those attempts whose outcome is dead",
    "queues": "SQS ApproximateNumberOfMessages, now",
    "disabled_subscriptions": "subscription items in the hub table with state disabled, now",
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


__all__ = ["SOURCES", "HubStats", "as_dict", "percentile", "queue_depths", "summarise"]
