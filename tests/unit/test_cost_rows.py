"""The cost rows of issue 12: both ingresses, the template parameters that cut lines, the goal.

A synthetic measured run (the shape ``bench.fanout`` writes) priced in every scenario: each
scenario's lines follow from its deployment, not from the run alone.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench import cost, costrows


def ingest(with_jti: bool) -> dict[str, Any]:
    calls = {"dynamodb.GetItem": 10, "dynamodb RRU": 10, "sqs.SendMessageBatch": 10}
    if with_jti:
        calls |= {"dynamodb.PutItem": 10, "dynamodb WRU": 10}
    return {
        "batch": 1,
        "with_jti": with_jti,
        "events": 10,
        "requests": 10,
        "wall": 0.05,
        "aws_wall": 0.02,
        "log_bytes": 0,
        "calls": calls,
    }


def dispatch(events: int) -> dict[str, Any]:
    invocations = max(1, events // 10)
    return {
        "subscribers": 10,
        "events": events,
        "invocations": invocations,
        "hub_wall": 0.05 * invocations,
        "aws_wall": 0.03 * invocations,
        "log_bytes": 170 * events,
        "calls": {
            "dynamodb.Query": invocations,
            "dynamodb RRU": 0.5 * invocations,
            "dynamodb.BatchWriteItem": 2 * invocations,
            "dynamodb WRU": events,
            "dynamodb archive WRU": invocations,
            "dynamodb archive bytes": 800 * invocations,
        },
    }


RESULT = {
    "memory_mb": {"IngestFunction": 256, "DispatchFunction": 1024},
    "ingest": [ingest(True), ingest(False)],
    "rows": [dispatch(1), dispatch(100)],
}


def priced(name: str) -> dict[str, cost.CostLine]:
    found = {scenario.name: scenario for scenario in costrows.scenarios(RESULT)}
    return {line.item: line for line in cost.cost_per_events(found[name].usage, cost.Prices())}


def test_both_ingresses_are_priced_with_what_each_deploys() -> None:
    rest = priced("REST API, full batches")
    http = priced("HTTP API, full batches")

    assert rest["API Gateway REST API"].dollars == pytest.approx(3.50)
    assert http["API Gateway HTTP API"].dollars == pytest.approx(1.00)
    # The authorizer: one invocation per key per cached answer, at 100 events/s.
    extra = costrows.PUBLISHER_KEYS / (costrows.FULL_BATCH_RATE * costrows.AUTHORIZER_TTL_SECONDS)
    assert http["Lambda requests"].quantity - rest["Lambda requests"].quantity == pytest.approx(extra * 1e6)


def test_tracing_and_system_logs_are_lines_of_their_own() -> None:
    defaults = priced("HTTP API, full batches, no publisher jti")
    cheapest = priced("HTTP API, Tracing PassThrough, SystemLogLevel WARN, full batches, no publisher jti")

    assert defaults["X-Ray traces recorded"].quantity > 0
    assert cheapest["X-Ray traces recorded"].quantity == 0
    # Only what the handlers logged is left (170 bytes per event, in GB): no START/END/REPORT.
    assert cheapest["CloudWatch Logs"].quantity == pytest.approx(170 * 1e6 / 1e9)
    assert defaults["CloudWatch Logs"].quantity > cheapest["CloudWatch Logs"].quantity


def test_every_row_shows_its_ratio_to_the_goal() -> None:
    found = costrows.scenarios(RESULT)
    lines = costrows.lines(found, cost.Prices())

    assert {scenario.name.split(",")[0] for scenario in found} == {"REST API", "HTTP API"}
    for line in lines[:-1]:
        total = float(line.hub.removeprefix("$").replace(",", ""))
        assert line.ratio == f"{total / cost.GOAL_DOLLARS:.2f} of $3.00"
        assert line.note.startswith("goal met" if total <= cost.GOAL_DOLLARS else "over the goal")


CHEAPEST = "HTTP API, Tracing PassThrough, SystemLogLevel WARN, full batches, no publisher jti"
CHEAPEST_ARM64 = "HTTP API, Tracing PassThrough, SystemLogLevel WARN, arm64, full batches, no publisher jti"


def test_the_cheapest_deployment_on_arm64_cuts_only_lambda_duration() -> None:
    x86 = priced(CHEAPEST)
    arm64 = priced(CHEAPEST_ARM64)

    prices = cost.Prices()
    # The same GB-s (durations as measured on x86_64), at arm64's price.
    assert arm64["Lambda duration"].quantity == pytest.approx(x86["Lambda duration"].quantity)
    assert arm64["Lambda duration"].dollars == pytest.approx(
        x86["Lambda duration"].dollars * prices.lambda_gb_second_arm64 / prices.lambda_gb_second
    )
    assert arm64["Lambda duration"].dollars < x86["Lambda duration"].dollars
    others = set(x86) - {"Lambda duration", "total"}
    assert {item: arm64[item] for item in others} == {item: x86[item] for item in others}
    assert arm64["total"].dollars == pytest.approx(
        x86["total"].dollars - x86["Lambda duration"].dollars + arm64["Lambda duration"].dollars
    )


def test_the_arm64_column_is_in_the_table_and_its_assumption_stated() -> None:
    found = costrows.scenarios(RESULT)
    prices = cost.Prices()

    header = costrows.table(found, prices).splitlines()[0]
    assert f"| {CHEAPEST_ARM64} |" in header
    assert [scenario.name for scenario in found].count(CHEAPEST_ARM64) == 1
    # Only that column is on arm64: the others stay the template's default.
    assert {scenario.name for scenario in found if scenario.usage.architecture == "arm64"} == {CHEAPEST_ARM64}
    assumptions = costrows.assumptions(found, prices)
    assert f"arm64 ${prices.lambda_gb_second_arm64:.10f}/GB-s" in assumptions
    assert "durations taken as measured on x86_64" in assumptions
