"""Delivery records: an event's outcomes packed into one item (one write unit for 10
subscribers), items batch-written 25 at a time, UnprocessedItems sent again a bounded
number of times, and full items written while the rest of the outcomes are still coming
in. No network."""

from __future__ import annotations

import math
from concurrent.futures import Executor, Future
from typing import Any

import pytest

from sethub.clients import AwsClients
from sethub.errors import UpstreamError
from sethub.records import RECORD_ITEM_BYTES, Attempt, DeliveryRecords, RecordBatcher, item_size, pack
from sethub.settings import Settings

SETTINGS = Settings(table_name="hub")


class FakeDynamoDB:
    """BatchWriteItem that leaves the last ``unprocess`` items of the first ``rounds`` calls
    unprocessed, and a Query over what it stored."""

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

    def query(self, **kwargs: Any) -> dict[str, Any]:
        pk = kwargs["ExpressionAttributeValues"][":pk"]["S"]
        return {"Items": [item for (key, _), item in sorted(self.stored.items()) if key == pk]}

    def write_units(self) -> int:
        """What the stored items cost on demand: one unit per KB of each item, rounded up."""
        return sum(math.ceil(item_size(item) / 1024) for item in self.stored.values())


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


def attempts(count: int, *, jti: str = "e1", status: Any = "ok", code: int = 202) -> list[Attempt]:
    return [
        Attempt(jti, "acme.login", f"https://sub{n}.example/hook", 1, status, 1_764_190_000.0, code, "", 3)
        for n in range(count)
    ]


def records(db: FakeDynamoDB, sleeps: list[float] | None = None) -> DeliveryRecords:
    waits = sleeps if sleeps is not None else []
    return DeliveryRecords(AwsClients(dynamodb=db), SETTINGS, sleep=waits.append)


def test_ten_successful_deliveries_of_an_event_are_one_item_of_one_write_unit():
    db = FakeDynamoDB()

    records(db).write(attempts(10))

    assert len(db.calls) == 1
    assert len(db.stored) == 1
    assert db.write_units() == 1
    # Read back, each delivery is there with what its subscriber answered.
    found = records(db).for_event("e1")
    assert sorted(found, key=lambda a: a.subscription_id) == sorted(
        attempts(10), key=lambda a: a.subscription_id
    )
    assert {a.callback_host for a in found} == {f"sub{n}.example" for n in range(10)}


def test_outcomes_of_a_big_fan_out_fill_items_of_at_most_the_item_budget():
    items = pack(attempts(1000))

    assert all(item_size(item) <= RECORD_ITEM_BYTES for item in items)
    assert sum(item["o"]["S"].count("\n") + 1 for item in items) == 1000
    # About one write unit per 15 deliveries, never one per delivery.
    assert sum(math.ceil(item_size(item) / 1024) for item in items) <= 1000 / 15
    assert len({item["sk"]["S"] for item in items}) == len(items)


def test_failures_keep_their_error_on_one_line_and_may_cost_more():
    failed = [
        Attempt(
            "e1",
            "acme.login",
            "https://down.example/h",
            1,
            "retrying",
            1.0,
            None,
            "timed\tout\nafter 10 s",
            10_000,
        )
    ]
    db = FakeDynamoDB()

    records(db).write(failed + attempts(9))

    (found,) = [a for a in records(db).for_event("e1") if a.status == "retrying"]
    assert found.error == "timed out after 10 s"
    assert found.status_code is None
    assert found.callback_host == "down.example"


def test_events_and_their_retries_get_items_of_their_own():
    db = FakeDynamoDB()
    first = attempts(3, status="retrying", code=503)
    again = [
        Attempt(a.jti, a.topic, f"https://sub{n}.example/hook", 2, "ok", a.at + 60, 200)
        for n, a in enumerate(first)
    ]

    records(db).write(first + attempts(2, jti="e2"))
    records(db).write(again)

    assert len(db.stored) == 3
    assert (
        sorted((a.attempt, a.status) for a in records(db).for_event("e1"))
        == [(1, "retrying")] * 3 + [(2, "ok")] * 3
    )


def test_unprocessed_items_are_sent_again_after_a_backoff_until_written():
    db = FakeDynamoDB(unprocess=5, rounds=2)
    sleeps: list[float] = []
    items = pack([a for n in range(25) for a in attempts(2, jti=f"e{n}")])

    records(db, sleeps).write_items(items)

    assert [len(call) for call in db.calls] == [25, 5, 5]
    assert len(db.stored) == 25
    assert len(sleeps) == 2
    assert all(wait > 0 for wait in sleeps)


def test_items_still_unprocessed_after_the_last_round_are_an_upstream_error():
    db = FakeDynamoDB(unprocess=3, rounds=100)

    with pytest.raises(UpstreamError, match="3 delivery record items unprocessed"):
        records(db).write_items(pack([a for n in range(10) for a in attempts(1, jti=f"e{n}")]))

    assert len(db.calls) == 5  # bounded
    assert len(db.stored) == 7


def test_one_attempt_made_twice_in_a_batch_is_written_once():
    db = FakeDynamoDB()
    same = attempts(1)

    records(db).write(same + same)

    assert len(records(db).for_event("e1")) == 1


class HoldingExecutor(Executor):
    """Keeps every task pending until ``run_all`` (writes still in flight); inline after it."""

    def __init__(self) -> None:
        self.tasks: list[tuple[Future[Any], Any, tuple[Any, ...]]] = []
        self.holding = True

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.tasks.append((future, fn, args))
        if not self.holding:
            self.run_all()
        return future

    def run_all(self) -> None:
        self.holding = False
        for future, fn, args in self.tasks:
            if not future.done():
                future.set_result(fn(*args))


def test_a_full_item_is_written_at_once_while_the_rest_of_the_outcomes_arrive():
    db = FakeDynamoDB()
    executor = InlineExecutor()
    batcher = RecordBatcher(records(db), executor)
    outcomes = attempts(2000)

    added = 0
    while executor.submitted == 0:
        batcher.add(outcomes[added])
        added += 1
    # The first item filled is written while (in the dispatcher) deliveries are still in flight.
    assert len(db.stored) == 1
    assert added < 100

    for attempt in outcomes[added:]:
        batcher.add(attempt)
    batcher.finish()

    assert sum(len(call) for call in db.calls) == len(db.stored)
    assert len(records(db).for_event("e1")) == 2000


def test_while_a_write_is_in_flight_full_items_wait_for_a_batch_of_25():
    db = FakeDynamoDB()
    executor = HoldingExecutor()
    batcher = RecordBatcher(records(db), executor)

    for attempt in attempts(3000):
        batcher.add(attempt)
    executor.run_all()
    batcher.finish()

    # The first full item alone, then (its write never done meanwhile) 25 items per call.
    assert [len(call) for call in db.calls][:2] == [1, 25]
    assert len(records(db).for_event("e1")) == 3000


def test_with_no_write_in_flight_each_write_takes_twice_the_items_of_the_last_up_to_25():
    db = FakeDynamoDB()
    batcher = RecordBatcher(records(db), InlineExecutor())  # every write done at once

    for attempt in attempts(5000):
        batcher.add(attempt)
    batcher.finish()

    # Not a call per full item: 1, 2, 4, 8, 16, then full batches, and what is left at the end.
    sizes = [len(call) for call in db.calls]
    assert sizes[:6] == [1, 2, 4, 8, 16, 25]
    assert all(size == 25 for size in sizes[5:-1])
    assert len(records(db).for_event("e1")) == 5000


def test_finish_names_how_many_records_were_lost_and_still_writes_the_others():
    db = FakeDynamoDB(unprocess=2, rounds=5)  # the first batch never gets its last two items in
    batcher = RecordBatcher(records(db), InlineExecutor())
    for n in range(30):
        for attempt in attempts(3, jti=f"e{n}"):
            batcher.add(attempt)

    with pytest.raises(UpstreamError, match="75 delivery records were not written"):
        batcher.finish()

    assert len(db.stored) == 23 + 5
