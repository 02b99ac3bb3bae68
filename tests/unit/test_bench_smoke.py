"""The bench's cost model: what `make bench` reports per million events is plain arithmetic."""

from __future__ import annotations

import dataclasses

import pytest

from bench import cost

# One 1024 MB invocation per event lasting 99.2 ms (billed as 100 ms), nothing else billed.
ONE_INVOCATION = cost.Usage(
    functions=(cost.LambdaUse("dispatch", 1.0, 99.2, 1024),),
    api_requests=0,
    sqs_requests=0,
    dynamodb_write_units=0,
    dynamodb_read_units=0,
    kms_asymmetric_requests=0,
)


def test_lambda_duration_is_billed_per_started_millisecond_and_memory() -> None:
    # GIVEN one 1024 MB invocation of 99.2 ms per event, WHEN a million events are priced
    lines = {line.item: line for line in cost.cost_per_events(ONE_INVOCATION, cost.Prices())}
    # THEN it is 100,000 GB-s and a million requests
    assert lines["Lambda duration"].quantity == pytest.approx(100_000)
    assert lines["Lambda duration"].dollars == pytest.approx(1.66667)
    assert lines["Lambda requests"].dollars == pytest.approx(0.20)


def test_total_is_the_sum_of_every_line_at_the_stated_prices() -> None:
    usage = cost.Usage(
        functions=(cost.LambdaUse("ingest", 1.0, 10, 512), cost.LambdaUse("dispatch", 0.1, 200, 1024)),
        api_requests=1,
        sqs_requests=1.2,
        dynamodb_write_units=11,
        dynamodb_read_units=1.1,
        kms_asymmetric_requests=1,
        log_bytes=500,
    )
    lines = cost.cost_per_events(usage, cost.Prices())
    by_item = {line.item: line.dollars for line in lines}
    assert by_item["API Gateway REST API"] == pytest.approx(3.50)
    assert by_item["KMS Sign (asymmetric)"] == pytest.approx(15.00)
    assert by_item["DynamoDB writes"] == pytest.approx(6.875)
    assert by_item["CloudWatch Logs"] == pytest.approx(0.25)
    assert lines[-1].item == "total"
    assert lines[-1].dollars == pytest.approx(sum(line.dollars for line in lines[:-1]))


def test_capacity_units_come_from_the_items_written_and_read() -> None:
    small = {"pk": {"S": "DELIVERY#e1"}, "sk": {"S": "1764190000000#ab12cd34#0"}, "o": {"S": "x" * 700}}
    big = {**small, "o": {"S": "x" * 1500}}
    # One unit per started KB of each item, for a put and for each item of a batch.
    assert cost.write_units("PutItem", {"Item": small}) == 1
    assert cost.write_units("PutItem", {"Item": big}) == 2
    batch = {"RequestItems": {"hub": [{"PutRequest": {"Item": small}}, {"PutRequest": {"Item": big}}]}}
    assert cost.write_units("BatchWriteItem", batch) == 3
    # Reads: 4 KB a unit, half of it when eventually consistent.
    assert cost.read_units("GetItem", {}, {"Item": small}) == 0.5
    assert cost.read_units("GetItem", {"ConsistentRead": True}, {"Item": small}) == 1
    assert cost.read_units("Query", {}, {"Items": [big] * 5}) == 1.0
    assert cost.sqs_requests({"sqs.SendMessageBatch": 0.1, "dynamodb.Query": 1}) == pytest.approx(0.1)


def test_x_ray_records_every_request_at_a_low_rate_and_about_5_percent_at_a_high_one() -> None:
    assert cost.xray_sampled(0.4) == 1.0
    assert cost.xray_sampled(100) == pytest.approx((1 + 0.05 * 99) / 100)
    # A million events a month in batches of one: a trace per request and one per dispatch.
    assert cost.xray_traces([(1.0, 0.4), (1.0, 0.4)]) == 2.0


def test_the_ingress_line_is_priced_by_the_api_type() -> None:
    usage = cost.Usage(
        functions=(),
        api_requests=1,
        sqs_requests=0,
        dynamodb_write_units=0,
        dynamodb_read_units=0,
        kms_asymmetric_requests=0,
    )
    rest = {line.item: line.dollars for line in cost.cost_per_events(usage, cost.Prices())}
    http = {
        line.item: line.dollars
        for line in cost.cost_per_events(cost.with_ingress(usage, "http"), cost.Prices())
    }
    assert rest["API Gateway REST API"] == pytest.approx(3.50)
    assert http["API Gateway HTTP API"] == pytest.approx(1.00)
    with pytest.raises(ValueError):
        cost.with_ingress(usage, "carrier-pigeon")


def test_arm64_bills_lambda_duration_at_its_own_price_and_requests_the_same() -> None:
    # GIVEN the 100,000 GB-s and million invocations of the first test, on arm64
    usage = dataclasses.replace(ONE_INVOCATION, architecture="arm64")
    lines = {line.item: line for line in cost.cost_per_events(usage, cost.Prices())}
    # THEN the same quantities, the duration at $0.0000133334 per GB-s
    assert lines["Lambda duration"].quantity == pytest.approx(100_000)
    assert lines["Lambda duration"].dollars == pytest.approx(1.33334)
    assert lines["Lambda requests"].dollars == pytest.approx(0.20)
    assert cost.Prices().lambda_gb_second_arm64 == pytest.approx(
        0.8 * cost.Prices().lambda_gb_second, rel=1e-4
    )
    with pytest.raises(ValueError):
        cost.cost_per_events(dataclasses.replace(usage, architecture="riscv"), cost.Prices())
