"""Cost per million events: measured durations and counted AWS requests, times list prices.

Pure arithmetic (no I/O), so it is unit-tested. Prices are public list prices,
us-east-1, x86 Lambda, no free tier, as stated in ``PRICES_NOTE``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

PRICES_NOTE = "public list prices as of 2026, us-east-1, no free tier"


@dataclass(frozen=True)
class Prices:
    lambda_gb_second: float = 0.0000166667
    lambda_request: float = 0.20 / 1e6
    api_rest_request: float = 3.50 / 1e6
    """REST API, first 333 million requests a month."""
    sqs_request: float = 0.40 / 1e6
    """Standard queue, per 64 KiB chunk of a request."""
    dynamodb_write_unit: float = 0.625 / 1e6
    dynamodb_read_unit: float = 0.125 / 1e6
    kms_asymmetric_request: float = 0.15 / 1e4
    """Sign with an ECC (or non-2048 RSA) key."""
    kms_symmetric_request: float = 0.03 / 1e4
    secrets_api_call: float = 0.05 / 1e4
    logs_ingested_gb: float = 0.50


@dataclass(frozen=True)
class LambdaUse:
    """A function's invocations per event and what each costs in time."""

    name: str
    invocations_per_event: float
    duration_ms: float
    memory_mb: int

    def gb_seconds_per_event(self) -> float:
        # Lambda bills duration rounded up to the millisecond.
        return self.invocations_per_event * math.ceil(self.duration_ms) / 1000 * self.memory_mb / 1024


@dataclass(frozen=True)
class Usage:
    """Everything billable that one event causes (averages)."""

    functions: tuple[LambdaUse, ...]
    api_requests: float
    sqs_requests: float
    dynamodb_write_units: float
    dynamodb_read_units: float
    kms_asymmetric_requests: float
    kms_symmetric_requests: float = 0.0
    secrets_api_calls: float = 0.0
    log_bytes: float = 0.0


@dataclass(frozen=True)
class CostLine:
    item: str
    quantity: float
    unit: str
    dollars: float


def cost_per_events(usage: Usage, prices: Prices, events: int = 1_000_000) -> list[CostLine]:
    """One line per billed item for ``events`` events, and a total line last."""
    gb_seconds = sum(function.gb_seconds_per_event() for function in usage.functions) * events
    invocations = sum(function.invocations_per_event for function in usage.functions) * events
    lines = [
        CostLine("Lambda duration", gb_seconds, "GB-s", gb_seconds * prices.lambda_gb_second),
        CostLine("Lambda requests", invocations, "requests", invocations * prices.lambda_request),
        CostLine(
            "API Gateway REST",
            usage.api_requests * events,
            "requests",
            usage.api_requests * events * prices.api_rest_request,
        ),
        CostLine(
            "SQS",
            usage.sqs_requests * events,
            "64 KiB requests",
            usage.sqs_requests * events * prices.sqs_request,
        ),
        CostLine(
            "DynamoDB writes",
            usage.dynamodb_write_units * events,
            "WRU",
            usage.dynamodb_write_units * events * prices.dynamodb_write_unit,
        ),
        CostLine(
            "DynamoDB reads",
            usage.dynamodb_read_units * events,
            "RRU",
            usage.dynamodb_read_units * events * prices.dynamodb_read_unit,
        ),
        CostLine(
            "KMS Sign (asymmetric)",
            usage.kms_asymmetric_requests * events,
            "requests",
            usage.kms_asymmetric_requests * events * prices.kms_asymmetric_request,
        ),
        CostLine(
            "KMS symmetric",
            usage.kms_symmetric_requests * events,
            "requests",
            usage.kms_symmetric_requests * events * prices.kms_symmetric_request,
        ),
        CostLine(
            "Secrets Manager",
            usage.secrets_api_calls * events,
            "API calls",
            usage.secrets_api_calls * events * prices.secrets_api_call,
        ),
        CostLine(
            "CloudWatch Logs",
            usage.log_bytes * events / 1e9,
            "GB",
            usage.log_bytes * events / 1e9 * prices.logs_ingested_gb,
        ),
    ]
    lines.append(CostLine("total", events, "events", sum(line.dollars for line in lines)))
    return lines


# How counted calls become billed units (items at most 1 KB written, 4 KB read).
_WRITE_CALLS = ("dynamodb.PutItem", "dynamodb.DeleteItem", "dynamodb.UpdateItem")
_READ_CALLS = ("dynamodb.GetItem", "dynamodb.Query")


def dynamodb_units(calls: Mapping[str, float], *, batch_items: float) -> tuple[float, float]:
    """(write units, read units) for counted calls; ``batch_items`` is what BatchWriteItem wrote.

    A Query is counted as one read unit: a page of a topic's subscriptions is a few KB.
    """
    writes = sum(calls.get(name, 0) for name in _WRITE_CALLS) + batch_items
    writes += 2 * calls.get("dynamodb.TransactWriteItems", 0)
    reads = sum(calls.get(name, 0) for name in _READ_CALLS)
    return writes, reads


def sqs_requests(calls: Mapping[str, float]) -> float:
    """SQS API calls (every message here is far below 64 KiB, so one chunk each call)."""
    return sum(count for name, count in calls.items() if name.startswith("sqs."))
