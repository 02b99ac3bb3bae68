"""The bench's call counter: capacity units are counted when read, not inside the timed handler."""

from __future__ import annotations

from typing import Any

from bench.aws import CallCounter, CountingClient


class _Meta:
    method_to_api_mapping = {"query": "Query", "batch_write_item": "BatchWriteItem"}


class _FakeDynamoDb:
    """A boto3-shaped client: answers a Query with ``items`` and accepts any batch write."""

    meta = _Meta()

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def query(self, **_: Any) -> dict[str, Any]:
        return {"Items": self.items}

    def batch_write_item(self, **_: Any) -> dict[str, Any]:
        return {"UnprocessedItems": {}}


def _item(size: int) -> dict[str, Any]:
    return {"pk": {"S": "x" * (size - 2)}}  # "pk" is two bytes of the billed size


def test_units_of_a_call_are_counted_at_the_next_snapshot_from_what_it_read_and_wrote() -> None:
    # GIVEN a counting client over a table answering 3 items of 4 KB
    counter = CallCounter()
    client: Any = CountingClient(_FakeDynamoDb([_item(4096)] * 3), "dynamodb", counter)
    before = counter.snapshot()
    # WHEN the handler queries once (eventually consistent) and writes two items of 1.5 KB
    client.query(TableName="t", KeyConditionExpression="pk = :pk")
    client.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": _item(1536)}}] * 2})
    # THEN the calls and their units (12 KB read at 4 KB per half unit; 2 KB each written)
    # are all in the snapshot taken after the handler ran
    assert counter.since(before) == {
        "dynamodb.Query": 1,
        "dynamodb RRU": 1.5,
        "dynamodb.BatchWriteItem": 1,
        "dynamodb WRU": 4,
    }


def test_a_call_made_before_a_snapshot_is_not_counted_after_it() -> None:
    counter = CallCounter()
    client: Any = CountingClient(_FakeDynamoDb([_item(100)]), "dynamodb", counter)
    client.query(TableName="t")
    before = counter.snapshot()
    assert counter.since(before) == {}
