"""The bench's cost model: what `make bench` reports per million events is plain arithmetic."""

from __future__ import annotations

import pytest

from bench import cost


def test_lambda_duration_is_billed_per_started_millisecond_and_memory() -> None:
    # GIVEN one 1024 MB invocation per event lasting 99.2 ms (billed as 100 ms)
    usage = cost.Usage(
        functions=(cost.LambdaUse("dispatch", 1.0, 99.2, 1024),),
        api_requests=0,
        sqs_requests=0,
        dynamodb_write_units=0,
        dynamodb_read_units=0,
        kms_asymmetric_requests=0,
    )
    # WHEN a million events are priced
    lines = {line.item: line for line in cost.cost_per_events(usage, cost.Prices())}
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
    assert by_item["API Gateway REST"] == pytest.approx(3.50)
    assert by_item["KMS Sign (asymmetric)"] == pytest.approx(15.00)
    assert by_item["DynamoDB writes"] == pytest.approx(6.875)
    assert by_item["CloudWatch Logs"] == pytest.approx(0.25)
    assert lines[-1].item == "total"
    assert lines[-1].dollars == pytest.approx(sum(line.dollars for line in lines[:-1]))


def test_counted_calls_become_request_units() -> None:
    calls = {"dynamodb.PutItem": 1, "dynamodb.Query": 0.1, "dynamodb.GetItem": 1, "sqs.SendMessageBatch": 0.1}
    writes, reads = cost.dynamodb_units(calls, batch_items=10)
    assert writes == pytest.approx(11)
    assert reads == pytest.approx(1.1)
    assert cost.sqs_requests(calls) == pytest.approx(0.1)
