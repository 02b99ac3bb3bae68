"""devstack.motohotpath: moto answers a Query from its partition, exactly as before.

The local stack's moto reads only the partition a table's Query names (DynamoDB's cost, not
the whole table's); every answer a client can see stays what DynamoDB gives: the partition's
items in sort-key order, either direction, paged by Limit, filtered and projected. Queries of
an index and Scans still see every partition.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from lean_aws import client
from moto import mock_aws

from devstack.motohotpath import lighten_moto_hot_path


def _s(value: str) -> dict[str, str]:
    return {"S": value}


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    lighten_moto_hot_path()
    lighten_moto_hot_path()  # idempotent
    with mock_aws():
        db = client("dynamodb")
        db.create_table(
            TableName="hub",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
                {"AttributeName": "state", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by-state",
                    "KeySchema": [{"AttributeName": "state", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        # Written out of order, and interleaved with other partitions'.
        for pk, sk, state in [
            ("TOPIC#b", "SUB#2", "active"),
            ("TOPIC#a", "SUB#3", "active"),
            ("JTI#1", "MARKER", "held"),
            ("TOPIC#a", "TOPIC", "registered"),
            ("TOPIC#a", "SUB#1", "pending"),
            ("TOPIC#b", "SUB#1", "active"),
            ("TOPIC#a", "SUB#2", "active"),
        ]:
            db.put_item(
                TableName="hub", Item={"pk": _s(pk), "sk": _s(sk), "state": _s(state), "n": {"N": "1"}}
            )
        yield db


def _sort_keys(items: list[dict[str, Any]]) -> list[str]:
    return [item["sk"]["S"] for item in items]


def _query(db: Any, **extra: Any) -> dict[str, Any]:
    values = {":pk": _s("TOPIC#a"), **extra.pop("values", {})}
    return db.query(  # type: ignore[no-any-return]
        TableName="hub",
        KeyConditionExpression=extra.pop("condition", "pk = :pk"),
        ExpressionAttributeValues=values,
        **extra,
    )


def test_a_query_answers_its_partitions_items_in_sort_key_order(dynamodb: Any) -> None:
    answer = _query(dynamodb)
    assert _sort_keys(answer["Items"]) == ["SUB#1", "SUB#2", "SUB#3", "TOPIC"]
    assert (answer["Count"], answer["ScannedCount"]) == (4, 4)
    assert _sort_keys(_query(dynamodb, ScanIndexForward=False)["Items"]) == [
        "TOPIC",
        "SUB#3",
        "SUB#2",
        "SUB#1",
    ]


def test_a_query_with_a_sort_key_condition_filter_and_projection(dynamodb: Any) -> None:
    answer = _query(
        dynamodb,
        condition="pk = :pk AND begins_with(sk, :sub)",
        FilterExpression="#state = :active",
        ProjectionExpression="sk",
        ExpressionAttributeNames={"#state": "state"},
        values={":sub": _s("SUB#"), ":active": _s("active")},
    )
    assert answer["Items"] == [{"sk": _s("SUB#2")}, {"sk": _s("SUB#3")}]
    assert (answer["Count"], answer["ScannedCount"]) == (2, 3)


def test_a_query_pages_through_its_partition_with_limit(dynamodb: Any) -> None:
    pages: list[list[str]] = []
    start: dict[str, Any] | None = None
    while True:
        answer = _query(dynamodb, Limit=3, **({"ExclusiveStartKey": start} if start else {}))
        pages.append(_sort_keys(answer["Items"]))
        start = answer.get("LastEvaluatedKey")
        if start is None:
            break
    assert pages == [["SUB#1", "SUB#2", "SUB#3"], ["TOPIC"]]


def test_a_query_of_an_absent_partition_is_empty_and_creates_nothing(dynamodb: Any) -> None:
    assert _query(dynamodb, values={":pk": _s("TOPIC#none")})["Items"] == []
    scanned = dynamodb.scan(TableName="hub")
    assert scanned["Count"] == 7


def test_an_index_query_and_a_scan_still_see_every_partition(dynamodb: Any) -> None:
    indexed = dynamodb.query(
        TableName="hub",
        IndexName="by-state",
        KeyConditionExpression="#state = :active",
        ExpressionAttributeNames={"#state": "state"},
        ExpressionAttributeValues={":active": _s("active")},
    )["Items"]
    assert sorted((item["pk"]["S"], item["sk"]["S"]) for item in indexed) == [
        ("TOPIC#a", "SUB#2"),
        ("TOPIC#a", "SUB#3"),
        ("TOPIC#b", "SUB#1"),
        ("TOPIC#b", "SUB#2"),
    ]
    assert len(dynamodb.scan(TableName="hub")["Items"]) == 7


def test_a_table_without_a_sort_key_answers_its_one_item(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName="keys",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for pk in ("KEY#2", "KEY#1"):
        dynamodb.put_item(TableName="keys", Item={"pk": _s(pk), "role": _s("admin")})
    answer = dynamodb.query(
        TableName="keys", KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": _s("KEY#1")}
    )
    assert answer["Items"] == [{"pk": _s("KEY#1"), "role": _s("admin")}]
    assert (
        dynamodb.query(
            TableName="keys",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _s("KEY#3")},
        )["Items"]
        == []
    )


def test_each_services_actions_are_still_found(dynamodb: Any) -> None:
    # moto finds an action's handler among its response class's methods, listed once per class.
    sqs = client("sqs")
    url = sqs.create_queue(QueueName="events")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["x"]
    assert dynamodb.list_tables()["TableNames"] == ["hub"]
