"""Cost per million events: measured durations and counted AWS requests, times list prices.

Pure arithmetic (no I/O), so it is unit-tested. Prices are public list prices,
us-east-1, no free tier, as stated in ``PRICES_NOTE``; Lambda on x86_64 (the template's
default) unless a usage says arm64 (``Architecture=arm64``: less per GB-s, requests the same).

What is counted, and how (the assumptions the bench states beside its rows):

- Requests are counted exactly from the calls the handlers made (``CountingClient``),
  DynamoDB capacity units from the items each call wrote or read (``write_units``,
  ``read_units``: 1 KB per write unit, 4 KB per read unit, half a unit for an
  eventually consistent read), never per call.
- Lambda's SQS poller: one ``ReceiveMessage`` and one ``DeleteMessageBatch`` per batch it
  hands over; its empty long polls are a fixed monthly cost (``fixed_monthly``).
- X-Ray: with ``Tracing: Active`` (the template's default) Lambda samples the first request
  of each second and 5 % of the rest (its rule cannot be changed); a request through
  API Gateway and its ingest invocation are one trace, each dispatch invocation another.
  ``Tracing: PassThrough`` records none.
- CloudWatch Logs: what the handlers logged plus, with ``SystemLogLevel: INFO`` (the
  default), Lambda's own START/END/REPORT lines; ``WARN`` drops the latter.
- Ingress: the REST API, or the HTTP API and its authorizer's invocations (``costrows``).
- The event archive (``sethub.archive``: accepted events kept for recovery) on lines of its
  own: the write units of its items, and the bytes they keep for the retention period
  (DynamoDB storage and, the table having point-in-time recovery on, its backup storage).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

PRICES_NOTE = "public list prices as of 2026, us-east-1, no free tier"
GOAL_DOLLARS = 3.00
"""Issue 12: per million events x 10 subscribers, what EventBridge with API destinations costs."""

SECONDS_PER_MONTH = 30 * 24 * 3600
PLATFORM_LOG_BYTES = 450
"""Per invocation: Lambda's START, END and REPORT (with its XRAY line) as logged, plus
CloudWatch's 26 bytes of metadata per log event."""
LOG_EVENT_OVERHEAD_BYTES = 26
XRAY_RESERVOIR_PER_SECOND = 1.0
XRAY_FIXED_RATE = 0.05
IDLE_POLLERS = 5
"""Lambda starts with five pollers per SQS mapping, each long-polling 20 s when idle."""
LONG_POLL_SECONDS = 20
ARCHIVE_PREFIX = "ARCHIVE#"
"""The partition keys of the event archive's items (``sethub.archive.ARCHIVE_PREFIX``)."""
DAYS_PER_MONTH = 30


@dataclass(frozen=True)
class Prices:
    lambda_gb_second: float = 0.0000166667
    """x86_64, the template's default Architecture."""
    lambda_gb_second_arm64: float = 0.0000133334
    """arm64 (Graviton, ``Architecture=arm64``): 20 % less; requests cost the same."""
    lambda_request: float = 0.20 / 1e6
    api_rest_request: float = 3.50 / 1e6
    """REST API, first 333 million requests a month."""
    api_http_request: float = 1.00 / 1e6
    """HTTP API, first 300 million requests a month (512 KB metering)."""
    sqs_request: float = 0.40 / 1e6
    """Standard queue, per 64 KiB chunk of a request."""
    dynamodb_write_unit: float = 0.625 / 1e6
    dynamodb_read_unit: float = 0.125 / 1e6
    kms_asymmetric_request: float = 0.15 / 1e4
    """Sign with an ECC (or non-2048 RSA) key."""
    kms_symmetric_request: float = 0.03 / 1e4
    kms_key_month: float = 1.00
    secrets_api_call: float = 0.05 / 1e4
    dynamodb_storage_gb_month: float = 0.25
    """Standard table class, per GB-month stored."""
    dynamodb_pitr_gb_month: float = 0.20
    """Point-in-time recovery (on for the hub table), per GB-month of table size."""
    logs_ingested_gb: float = 0.50
    xray_trace_recorded: float = 5.00 / 1e6


INGRESS = {"rest": "API Gateway REST API", "http": "API Gateway HTTP API"}
ARCHITECTURES = ("x86_64", "arm64")
"""The template's Architecture values."""


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
    xray_traces: float = 0.0
    ingress: str = "rest"
    archive_write_units: float = 0.0
    """Write units of the event archive's items (not in ``dynamodb_write_units``)."""
    archive_bytes: float = 0.0
    """Bytes of archive items per event, kept ``archive_days``."""
    archive_days: float = 14
    architecture: str = "x86_64"
    """The functions' instruction set: it sets the price of a GB-s."""


@dataclass(frozen=True)
class CostLine:
    item: str
    quantity: float
    unit: str
    dollars: float


def gb_second_price(prices: Prices, architecture: str) -> float:
    """What a GB-s of Lambda duration costs on ``architecture``."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}")
    return prices.lambda_gb_second_arm64 if architecture == "arm64" else prices.lambda_gb_second


def cost_per_events(usage: Usage, prices: Prices, events: int = 1_000_000) -> list[CostLine]:
    """One line per billed item for ``events`` events, and a total line last."""
    gb_second = gb_second_price(prices, usage.architecture)
    gb_seconds = sum(function.gb_seconds_per_event() for function in usage.functions) * events
    invocations = sum(function.invocations_per_event for function in usage.functions) * events
    api_price = prices.api_http_request if usage.ingress == "http" else prices.api_rest_request

    def line(item: str, per_event: float, unit: str, price: float, scale: float = 1.0) -> CostLine:
        quantity = per_event * events / scale
        return CostLine(item, quantity, unit, quantity * price)

    lines = [
        CostLine("Lambda duration", gb_seconds, "GB-s", gb_seconds * gb_second),
        CostLine("Lambda requests", invocations, "requests", invocations * prices.lambda_request),
        line(INGRESS[usage.ingress], usage.api_requests, "requests", api_price),
        line("SQS", usage.sqs_requests, "64 KiB requests", prices.sqs_request),
        line("DynamoDB writes", usage.dynamodb_write_units, "WRU", prices.dynamodb_write_unit),
        line("DynamoDB reads", usage.dynamodb_read_units, "RRU", prices.dynamodb_read_unit),
        line(
            "KMS Sign (asymmetric)", usage.kms_asymmetric_requests, "requests", prices.kms_asymmetric_request
        ),
        line("KMS symmetric", usage.kms_symmetric_requests, "requests", prices.kms_symmetric_request),
        line("Secrets Manager", usage.secrets_api_calls, "API calls", prices.secrets_api_call),
        line("CloudWatch Logs", usage.log_bytes, "GB", prices.logs_ingested_gb, scale=1e9),
        line("X-Ray traces recorded", usage.xray_traces, "traces", prices.xray_trace_recorded),
        line("Event archive writes (DynamoDB)", usage.archive_write_units, "WRU", prices.dynamodb_write_unit),
        line(
            f"Event archive storage ({usage.archive_days:g} days, with PITR)",
            usage.archive_bytes * usage.archive_days / DAYS_PER_MONTH,
            "GB-months",
            prices.dynamodb_storage_gb_month + prices.dynamodb_pitr_gb_month,
            scale=1e9,
        ),
    ]
    lines.append(CostLine("total", events, "events", sum(item.dollars for item in lines)))
    return lines


def xray_sampled(rate_per_second: float) -> float:
    """The fraction of requests arriving at ``rate_per_second`` that X-Ray's default rule records."""
    if rate_per_second <= 0:
        return 0.0
    reservoir = min(rate_per_second, XRAY_RESERVOIR_PER_SECOND)
    return (reservoir + XRAY_FIXED_RATE * (rate_per_second - reservoir)) / rate_per_second


def xray_traces(entry_points: Iterable[tuple[float, float]]) -> float:
    """Traces recorded per event: ``(invocations per event, invocations per second)`` per entry point."""
    return sum(per_event * xray_sampled(per_second) for per_event, per_second in entry_points)


def with_ingress(usage: Usage, ingress: str) -> Usage:
    if ingress not in INGRESS:
        raise ValueError(f"unknown ingress {ingress!r}")
    return replace(usage, ingress=ingress)


def fixed_monthly(prices: Prices, *, kms_keys: int, sqs_mappings: int) -> list[CostLine]:
    """What the stack costs a month with no events at all: its KMS keys and Lambda's idle polls."""
    polls = IDLE_POLLERS * sqs_mappings * SECONDS_PER_MONTH / LONG_POLL_SECONDS
    return [
        CostLine("KMS keys", kms_keys, "key-months", kms_keys * prices.kms_key_month),
        CostLine("SQS idle long polls", polls, "requests", polls * prices.sqs_request),
    ]


# -- capacity units from the calls themselves --------------------------------------------


def item_bytes(item: Mapping[str, Any]) -> int:
    """An item's size as DynamoDB bills it: attribute names plus values (numbers rounded up)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        size += _value_bytes(value)
    return size


def _value_bytes(value: Mapping[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        return (len(str(data).lstrip("-").replace(".", "")) + 1) // 2 + 1
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(_value_bytes({kind[0]: element}) for element in data)
    if kind == "L":
        return 3 + sum(1 + _value_bytes(element) for element in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + _value_bytes(v) for k, v in data.items())
    raise ValueError(f"unknown attribute type {kind}")


def write_units(operation: str, params: Mapping[str, Any]) -> float:
    """Write units a call consumes: one per started KB of each item written.

    A delete or an update is billed on the item's size, which the call does not carry:
    one unit each (every item they touch here is under 1 KB). A conditional write that
    fails still consumes its units.
    """
    if operation == "PutItem":
        return math.ceil(item_bytes(params["Item"]) / 1024)
    if operation == "BatchWriteItem":
        units = 0
        for requests in params["RequestItems"].values():
            for request in requests:
                put = request.get("PutRequest")
                units += math.ceil(item_bytes(put["Item"]) / 1024) if put else 1
        return units
    if operation in ("DeleteItem", "UpdateItem"):
        return 1
    if operation == "TransactWriteItems":
        # Transactions cost two units per item (prepare and commit).
        return 2 * sum(
            math.ceil(item_bytes(entry["Put"]["Item"]) / 1024) if "Put" in entry else 1
            for entry in params["TransactItems"]
        )
    return 0


def read_units(operation: str, params: Mapping[str, Any], response: Mapping[str, Any]) -> float:
    """Read units a call consumes: 4 KB per unit of what it read, half for eventually consistent."""
    factor = 1.0 if params.get("ConsistentRead") else 0.5
    if operation == "GetItem":
        return factor * max(1, math.ceil(item_bytes(response.get("Item") or {}) / 4096))
    if operation == "Query":
        read = sum(item_bytes(item) for item in response.get("Items") or [])
        return factor * max(1, math.ceil(read / 4096))
    if operation == "BatchGetItem":
        items = [item for found in (response.get("Responses") or {}).values() for item in found]
        return factor * sum(max(1, math.ceil(item_bytes(item) / 4096)) for item in items)
    return 0.0


def archive_units(operation: str, params: Mapping[str, Any]) -> tuple[float, float]:
    """The write units and bytes of the event archive's items in a call (both 0 for others)."""
    if operation != "BatchWriteItem":
        return 0.0, 0.0
    sizes = [
        item_bytes(put["Item"])
        for requests in params["RequestItems"].values()
        for request in requests
        if (put := request.get("PutRequest"))
        and put["Item"].get("pk", {}).get("S", "").startswith(ARCHIVE_PREFIX)
    ]
    return float(sum(math.ceil(size / 1024) for size in sizes)), float(sum(sizes))


def sqs_requests(calls: Mapping[str, float]) -> float:
    """SQS API calls (every message here is far below 64 KiB, so one chunk each call)."""
    return sum(count for name, count in calls.items() if name.startswith("sqs."))
