"""devstack.motoatomic: moto's conditional writes are atomic, as DynamoDB's are.

Two writers race for one item with the same condition: exactly one may win. moto checks the
condition, then writes, with no lock between: the test holds each writer just after its check
until the other has checked too (or half a second has passed), so without the lock both pass
the condition every time; sethub's leases rely on one winner.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import moto.dynamodb.models
import pytest
from botocore.exceptions import ClientError
from lean_aws import client
from moto import mock_aws

from devstack.motoatomic import atomic_dynamodb_writes


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    atomic_dynamodb_writes()
    with mock_aws():
        dynamodb = client("dynamodb")
        dynamodb.create_table(
            TableName="leases",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield dynamodb


def _held_after_each_check(monkeypatch: pytest.MonkeyPatch, both_checked: threading.Barrier) -> None:
    """Each condition check waits, once evaluated, for the other writer's (at most 0.5 s)."""
    parser_of = moto.dynamodb.models.create_condition_expression_parser  # type: ignore[attr-defined]

    def parser(*args: Any, **kwargs: Any) -> Any:
        parsed = parser_of(*args, **kwargs)

        class Held:
            def parse(self) -> Any:
                condition = parsed.parse()
                evaluate = condition.expr

                def expr(item: Any) -> bool:
                    result = bool(evaluate(item))
                    # Broken: the other writer could not check meanwhile.
                    with contextlib.suppress(threading.BrokenBarrierError):
                        both_checked.wait()
                    return result

                condition.expr = expr  # type: ignore[method-assign]
                return condition

        return Held()

    monkeypatch.setattr(moto.dynamodb.models, "create_condition_expression_parser", parser)


def test_of_two_writers_taking_one_lease_at_once_exactly_one_wins(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    both_checked = threading.Barrier(2, timeout=0.5)
    _held_after_each_check(monkeypatch, both_checked)
    won: list[str] = []
    refused: list[str] = []

    def take(owner: str) -> None:
        try:
            table.update_item(
                TableName="leases",
                Key={"pk": {"S": "lease"}},
                UpdateExpression="SET #o = :owner",
                ConditionExpression="attribute_not_exists(pk)",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
            won.append(owner)
        except ClientError as exc:
            refused.append(exc.response["Error"]["Code"])

    threads = [threading.Thread(target=take, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(won) == 1, won
    assert refused == ["ConditionalCheckFailedException"]
    item = table.get_item(TableName="leases", Key={"pk": {"S": "lease"}})["Item"]
    assert item["owner"]["S"] == won[0]
