"""Delivery records: batches of 25, UnprocessedItems sent again a bounded number of times,
and batches written while the rest of the outcomes are still coming in. No network."""

from __future__ import annotations

from concurrent.futures import Executor, Future
from typing import Any

import pytest

from sethub.clients import AwsClients
from sethub.errors import UpstreamError
from sethub.records import Attempt, DeliveryRecords, RecordBatcher
from sethub.settings import Settings

SETTINGS = Settings(table_name="hub")


class FakeDynamoDB:
    """BatchWriteItem that leaves the last ``unprocess`` items of the first ``rounds`` calls unprocessed."""

    def __init__(self, *, unprocess: int = 0, rounds: int = 0) -> None:
        self.unprocess = unprocess
        self.rounds = rounds
        self.calls: list[list[dict[str, Any]]] = []
        self.stored: dict[tuple[str, str], dict[str, Any]] = {}

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        requests = RequestItems["hub"]
        self.calls.append(requests)
        keep = requests
        left: list[dict[str, Any]] = []
        if len(self.calls) <= self.rounds and self.unprocess:
            keep, left = requests[: -self.unprocess], requests[-self.unprocess :]
        for request in keep:
            item = request["PutRequest"]["Item"]
            self.stored[(item["pk"]["S"], item["sk"]["S"])] = item
        return {"UnprocessedItems": {"hub": left} if left else {}}


class InlineExecutor(Executor):
    """Runs each task when submitted, remembering how many were submitted."""

    def __init__(self) -> None:
        self.submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


def attempts(count: int, *, jti: str = "e1") -> list[Attempt]:
    return [
        Attempt(jti, "acme.login", f"https://sub.example/{n}", 1, "ok", 1_764_190_000.0, 202, "", 3)
        for n in range(count)
    ]


def records(db: FakeDynamoDB, sleeps: list[float] | None = None) -> DeliveryRecords:
    waits = sleeps if sleeps is not None else []
    return DeliveryRecords(AwsClients(dynamodb=db), SETTINGS, sleep=waits.append)


def test_unprocessed_items_are_sent_again_after_a_backoff_until_written():
    db = FakeDynamoDB(unprocess=5, rounds=2)
    sleeps: list[float] = []

    records(db, sleeps).write_batch(attempts(25))

    assert [len(call) for call in db.calls] == [25, 5, 5]
    assert len(db.stored) == 25
    assert len(sleeps) == 2
    assert all(wait > 0 for wait in sleeps)


def test_items_still_unprocessed_after_the_last_round_are_an_upstream_error():
    db = FakeDynamoDB(unprocess=3, rounds=100)

    with pytest.raises(UpstreamError, match="3 delivery records unprocessed"):
        records(db).write_batch(attempts(10))

    assert len(db.calls) == 5  # bounded
    assert len(db.stored) == 7


def test_one_attempt_made_twice_in_a_batch_is_written_once():
    db = FakeDynamoDB()
    same = attempts(1)

    records(db).write_batch(same + same)

    assert [len(call) for call in db.calls] == [1]


def test_a_full_batch_is_written_before_the_rest_of_the_outcomes_arrive():
    db = FakeDynamoDB()
    executor = InlineExecutor()
    batcher = RecordBatcher(records(db), executor)

    for attempt in attempts(60)[:26]:
        batcher.add(attempt)
    assert executor.submitted == 1
    assert len(db.stored) == 25

    for attempt in attempts(60)[26:]:
        batcher.add(attempt)
    batcher.finish()

    assert [len(call) for call in db.calls] == [25, 25, 10]
    assert len(db.stored) == 60


def test_finish_names_how_many_records_were_lost_and_still_writes_the_others():
    db = FakeDynamoDB(unprocess=2, rounds=5)  # the first batch never gets its last two in
    batcher = RecordBatcher(records(db), InlineExecutor())
    for attempt in attempts(30):
        batcher.add(attempt)

    with pytest.raises(UpstreamError, match="25 delivery records were not written"):
        batcher.finish()

    assert len(db.stored) == 23 + 5
