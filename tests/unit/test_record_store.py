"""What the hub table remembers about events (``sethub.records``), against a table in in-process
moto: ``jti`` markers (duplicates, scopes, expiry, release) and delivery records written and
read back as an operator reads them.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from lean_aws import LeanHub, build_lean_hub, in_process_aws

from sethub.clients import AwsClients
from sethub.errors import ConfigurationError, UpstreamError
from sethub.records import (
    DELIVERY_RECORD_TTL_SECONDS,
    EVENT_MARKER_TTL_SECONDS,
    MAX_ERROR_LENGTH,
    RECORD_ITEM_BYTES,
    Attempt,
    DeliveryRecords,
    EventMarkers,
    RecordBatcher,
    delivery_key,
    event_key,
    item_size,
    pack,
)
from sethub.settings import Settings
from sethub.subscriptions import subscription_id

NOW = 1_764_190_000.0
PUBLISHER = "a1b2c3d4e5f6a7b8"


@pytest.fixture(scope="module")
def lean() -> Iterator[LeanHub]:
    with in_process_aws():
        yield build_lean_hub()


@pytest.fixture
def markers(lean: LeanHub) -> EventMarkers:
    return EventMarkers(lean.clients, lean.settings)


@pytest.fixture
def jti(request: pytest.FixtureRequest) -> str:
    """A jti of this test's own (the table is shared by the module)."""
    return f"jti-{request.node.name}"


class Failing:
    """A DynamoDB client whose every call raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        def fail(**kwargs: Any) -> Any:
            raise self.error

        return fail


def failing(error: Exception) -> AwsClients:
    return AwsClients(dynamodb=Failing(error))


# jti markers


def test_an_event_is_accepted_once_per_publisher(markers, jti):
    assert markers.claim(jti, "acme.login", now=NOW, publisher=PUBLISHER)
    assert not markers.claim(jti, "acme.login", now=NOW + 1, publisher=PUBLISHER)
    # Another publisher's event with the same jti is its own.
    assert markers.claim(jti, "acme.login", now=NOW, publisher="ffff0000ffff0000")
    # So is one published without a key.
    assert markers.claim(jti, "acme.login", now=NOW)
    assert not markers.claim(jti, "acme.login", now=NOW)


def test_a_marker_holds_its_topic_and_expires_48_hours_after_the_event(lean, markers, jti):
    markers.claim(jti, "acme.login", now=NOW + 0.9, publisher=PUBLISHER)

    item = lean.item(f"EVENT#{PUBLISHER}#{jti}", "EVENT")

    assert item is not None
    assert item["topic"] == {"S": "acme.login"}
    assert item["ttl"] == {"N": str(int(NOW) + 48 * 3600)}
    assert EVENT_MARKER_TTL_SECONDS == 48 * 3600


def test_an_expired_marker_no_longer_blocks_the_event(markers, jti):
    markers.claim(jti, "acme.login", now=NOW)
    expires = int(NOW) + EVENT_MARKER_TTL_SECONDS

    # DynamoDB deletes expired items late: until then the marker is there, but past its ttl.
    assert not markers.claim(jti, "acme.login", now=expires)
    assert markers.claim(jti, "acme.login", now=expires + 1)
    assert not markers.claim(jti, "acme.login", now=expires + 2)


def test_a_released_event_is_accepted_again(markers, jti):
    assert markers.claim(jti, "acme.login", now=NOW, publisher=PUBLISHER)

    markers.release(jti, publisher=PUBLISHER)

    assert markers.claim(jti, "acme.login", now=NOW, publisher=PUBLISHER)


def test_releasing_one_publishers_event_leaves_anothers(markers, jti):
    markers.claim(jti, "acme.login", now=NOW, publisher=PUBLISHER)
    markers.claim(jti, "acme.login", now=NOW)

    markers.release(jti)

    assert not markers.claim(jti, "acme.login", now=NOW, publisher=PUBLISHER)
    assert markers.claim(jti, "acme.login", now=NOW)


def test_a_long_jti_is_claimed_under_its_hash(lean, markers):
    long_jti = "j" * 769
    assert markers.claim(long_jti, "acme.login", now=NOW, publisher=PUBLISHER)
    assert not markers.claim(long_jti, "acme.login", now=NOW, publisher=PUBLISHER)
    # One character less or different is another event.
    assert markers.claim(long_jti[:-1] + "k", "acme.login", now=NOW, publisher=PUBLISHER)

    digest = hashlib.sha256(long_jti.encode()).hexdigest()
    assert lean.item(f"EVENT#{PUBLISHER}H#{digest}", "EVENT") is not None


def test_event_keys_scope_the_jti_by_publisher_and_hash_only_what_is_too_long() -> None:
    assert event_key("e1", PUBLISHER) == f"EVENT#{PUBLISHER}#e1"
    assert event_key("e1") == "EVENT#-#e1"
    assert event_key("\u00e9" * 384, PUBLISHER) == f"EVENT#{PUBLISHER}#{'\u00e9' * 384}"  # 768 bytes
    long_jti = "\u00e9" * 385
    assert event_key(long_jti) == f"EVENT#-H#{hashlib.sha256(long_jti.encode()).hexdigest()}"


def test_delivery_keys_hash_only_a_jti_over_1024_bytes() -> None:
    assert delivery_key("e1") == "DELIVERY#e1"
    assert delivery_key("j" * 1024) == f"DELIVERY#{'j' * 1024}"
    assert delivery_key("j" * 1025) == f"DELIVERYH#{hashlib.sha256(b'j' * 1025).hexdigest()}"


def test_a_topic_too_long_for_one_write_unit_is_left_off_the_marker(lean, markers, jti):
    markers.claim(jti, "t" * 1000, now=NOW, publisher=PUBLISHER)

    item = lean.item(f"EVENT#{PUBLISHER}#{jti}", "EVENT")

    assert item is not None
    assert "topic" not in item


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "PutItem"),
            "ProvisionedThroughputExceededException",
        ),
        (ClientError({}, "PutItem"), "ClientError"),
        (EndpointConnectionError(endpoint_url="https://dynamodb"), "EndpointConnectionError"),
    ],
)
def test_a_marker_dynamodb_could_not_write_is_an_upstream_error(error, reason):
    markers = EventMarkers(failing(error), Settings(table_name="hub"))

    with pytest.raises(UpstreamError) as claimed:
        markers.claim("e1", "acme.login", now=NOW)
    with pytest.raises(UpstreamError) as released:
        markers.release("e1")

    assert str(claimed.value) == f"DynamoDB could not record an event: {reason}"
    assert str(released.value) == f"DynamoDB could not release an event: {reason}"


def test_a_missing_table_is_an_upstream_error(lean):
    missing = EventMarkers(lean.clients, Settings(table_name="no-such-table"))

    with pytest.raises(UpstreamError, match="ResourceNotFoundException"):
        missing.claim("e1", "acme.login", now=NOW)


def test_markers_and_records_need_a_table():
    for cls in (EventMarkers, DeliveryRecords):
        with pytest.raises(ConfigurationError) as raised:
            cls(AwsClients(), Settings())
        assert str(raised.value) == "SETHUB_TABLE_NAME is not set"


# Delivery records


def attempt(jti: str, n: int = 0, **changes: Any) -> Attempt:
    fields: dict[str, Any] = {
        "jti": jti,
        "topic": "acme.login",
        "callback": f"https://sub{n}.example:8443/hook?token=s3cr3t",
        "attempt": 1,
        "status": "ok",
        "at": NOW + 0.25,
        "status_code": 202,
        "error": "",
        "duration_ms": 12,
    }
    fields.update(changes)
    return Attempt(**fields)


def test_an_attempt_keeps_a_subscription_id_and_host_it_was_given():
    given = attempt("e1", subscription_id="sub-1", callback_host="rp.example")

    assert (given.subscription_id, given.callback_host) == ("sub-1", "rp.example")
    derived = attempt("e1")
    assert derived.subscription_id == subscription_id("acme.login", derived.callback)
    assert derived.callback_host == "sub0.example:8443"


def test_recorded_attempts_read_back_as_an_operator_sees_them(lean, jti):
    records = DeliveryRecords(lean.clients, lean.settings)
    made = [
        attempt(jti, 0),
        attempt(jti, 1, status="retrying", status_code=None, error="connection\trefused\n(twice)", attempt=2),
        attempt(jti, 2, status="rejected", status_code=400, error="400 invalid_key", duration_ms=0),
    ]

    records.write(made)
    found = records.for_event(jti)

    assert found == [
        Attempt(
            jti=jti,
            topic="acme.login",
            callback="",
            attempt=a.attempt,
            status=a.status,
            at=NOW + 0.25,
            status_code=a.status_code,
            error=" ".join(a.error.split()),
            duration_ms=a.duration_ms,
            subscription_id=subscription_id("acme.login", a.callback),
            callback_host=f"sub{n}.example:8443",
        )
        for n, a in enumerate(made)
    ]
    assert [a.error for a in found] == ["", "connection refused (twice)", "400 invalid_key"]
    # Read back, an attempt names its callback by subscription id and host only.
    assert [a.callback for a in found] == ["", "", ""]
    assert [a.status_code for a in found] == [202, None, 400]


def test_a_record_never_holds_the_callback_url_and_expires_after_30_days(lean, jti):
    DeliveryRecords(lean.clients, lean.settings).write([attempt(jti, 0), attempt(jti, 1)])

    (item,) = lean.items(delivery_key(jti))

    assert "token" not in str(item)
    assert "/hook" not in str(item)
    assert item["ttl"] == {"N": str(int(NOW) + 30 * 24 * 3600)}
    assert DELIVERY_RECORD_TTL_SECONDS == 30 * 24 * 3600
    assert item["at"] == {"N": f"{NOW + 0.25:.3f}"}
    assert item["topic"] == {"S": "acme.login"}
    assert item["sk"]["S"].startswith(f"{int((NOW + 0.25) * 1000):013d}#")
    assert item["sk"]["S"].endswith("#0")


def test_an_error_is_recorded_up_to_512_characters(lean, jti):
    records = DeliveryRecords(lean.clients, lean.settings)

    records.write([attempt(jti, status="dead", status_code=500, error="e" * (MAX_ERROR_LENGTH + 100))])

    (found,) = records.for_event(jti)
    assert found.error == "e" * MAX_ERROR_LENGTH


def test_attempts_of_many_events_are_written_25_items_per_call_and_all_read_back(lean, jti):
    calls: list[int] = []
    db = lean.clients.dynamodb

    class Counting:
        def batch_write_item(self, **kwargs: Any) -> Any:
            calls.append(sum(len(v) for v in kwargs["RequestItems"].values()))
            return db.batch_write_item(**kwargs)

    records = DeliveryRecords(AwsClients(dynamodb=Counting()), lean.settings)
    events = [f"{jti}-{n}" for n in range(30)]

    records.write([attempt(e, n) for n, e in enumerate(events)])

    assert calls == [25, 5]
    reader = DeliveryRecords(lean.clients, lean.settings)
    assert [len(reader.for_event(e)) for e in events] == [1] * 30


def test_a_long_record_is_read_back_across_pages(lean, jti):
    db = lean.clients.dynamodb

    class SmallPages:
        """Query pages of one item: what DynamoDB does past 1 MB."""

        def batch_write_item(self, **kwargs: Any) -> Any:
            return db.batch_write_item(**kwargs)

        def query(self, **kwargs: Any) -> Any:
            return db.query(**kwargs, Limit=1)

    records = DeliveryRecords(AwsClients(dynamodb=SmallPages()), lean.settings)
    # Three invocations of the same event: three items.
    made = [attempt(jti, 0, at=NOW + k, attempt=k + 1) for k in range(3)]
    records.write(made)

    assert [a.attempt for a in records.for_event(jti)] == [1, 2, 3]


def test_an_event_without_records_reads_back_empty(lean):
    assert DeliveryRecords(lean.clients, lean.settings).for_event("never-delivered") == []


def test_a_batch_of_more_than_25_items_is_refused_and_an_empty_one_costs_nothing(lean):
    records = DeliveryRecords(failing(AssertionError("no call expected")), lean.settings)

    with pytest.raises(ValueError, match="at most 25 items per batch"):
        records.write_items([{}] * 26)
    records.write_items([])
    records.write([])


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ClientError({"Error": {"Code": "ThrottlingException"}}, "BatchWriteItem"), "ThrottlingException"),
        (EndpointConnectionError(endpoint_url="https://dynamodb"), "EndpointConnectionError"),
    ],
)
def test_records_dynamodb_could_not_write_are_an_upstream_error(error, reason):
    records = DeliveryRecords(failing(error), Settings(table_name="hub"))

    with pytest.raises(UpstreamError) as raised:
        records.write([attempt("e1")])

    assert str(raised.value) == f"DynamoDB could not record deliveries: {reason}"


def test_items_left_unprocessed_are_sent_again_with_a_growing_backoff(lean, jti):
    db = lean.clients.dynamodb
    table = lean.settings.table_name
    rounds: list[int] = []

    class Throttled:
        """Leaves everything unprocessed in the first three calls, as a throttled table does."""

        def batch_write_item(self, **kwargs: Any) -> Any:
            rounds.append(len(kwargs["RequestItems"][table]))
            if len(rounds) <= 3:
                return {"UnprocessedItems": kwargs["RequestItems"]}
            return db.batch_write_item(**kwargs)

    sleeps: list[float] = []
    records = DeliveryRecords(AwsClients(dynamodb=Throttled()), lean.settings, sleep=sleeps.append)

    records.write([attempt(jti, 0)])

    assert rounds == [1, 1, 1, 1]
    assert len(sleeps) == 3
    # 50, 100, 200 ms, each jittered down by at most half.
    for wait, base in zip(sleeps, (0.05, 0.1, 0.2), strict=True):
        assert base / 2 <= wait <= base
    assert len(DeliveryRecords(lean.clients, lean.settings).for_event(jti)) == 1


def test_items_still_unprocessed_after_five_rounds_are_counted_in_the_error(lean):
    calls: list[int] = []

    class Throttled:
        def batch_write_item(self, **kwargs: Any) -> Any:
            calls.append(1)
            return {"UnprocessedItems": kwargs["RequestItems"]}

    records = DeliveryRecords(AwsClients(dynamodb=Throttled()), lean.settings, sleep=lambda _: None)

    with pytest.raises(UpstreamError) as raised:
        records.write([attempt(f"e{n}") for n in range(3)])

    assert str(raised.value) == "DynamoDB left 3 delivery record items unprocessed"
    assert len(calls) == 5


def test_a_failed_read_names_dynamodbs_answer(lean):
    records = DeliveryRecords(lean.clients, Settings(table_name="no-such-table"))

    with pytest.raises(UpstreamError) as raised:
        records.for_event("e1")

    assert str(raised.value) == "DynamoDB could not read delivery records: ResourceNotFoundException"


# Packing and sizes


def test_pack_names_items_by_time_token_and_counter():
    items = pack(
        [attempt("e1", n, error="x" * 400, status="dead", status_code=500) for n in range(20)], token="t0k3n"
    )

    assert len(items) >= 2
    stamp = f"{int((NOW + 0.25) * 1000):013d}"
    assert [item["sk"]["S"] for item in items] == [f"{stamp}#t0k3n#{n}" for n in range(len(items))]
    assert all(item_size(item) <= 4096 for item in items)
    assert sum(item["o"]["S"].count("\n") + 1 for item in items) == 20


def test_pack_keeps_each_event_topic_and_time_apart():
    items = pack(
        [
            attempt("e1"),
            attempt("e2"),
            attempt("e1", topic="acme.logout"),
            attempt("e1", at=NOW + 5),
            attempt("e1", 1),
        ],
        token="t",
    )

    assert sorted(
        (i["pk"]["S"], i["topic"]["S"], i["at"]["N"], i["o"]["S"].count("\n") + 1) for i in items
    ) == [
        (delivery_key("e1"), "acme.login", f"{NOW + 0.25:.3f}", 2),
        (delivery_key("e1"), "acme.login", f"{NOW + 5:.3f}", 1),
        (delivery_key("e1"), "acme.logout", f"{NOW + 0.25:.3f}", 1),
        (delivery_key("e2"), "acme.login", f"{NOW + 0.25:.3f}", 1),
    ]


def test_without_a_token_each_pack_gets_a_fresh_one():
    first, second = pack([attempt("e1")]), pack([attempt("e1")])

    assert first[0]["sk"]["S"] != second[0]["sk"]["S"]
    assert first[0]["sk"]["S"].endswith("#0")


@pytest.mark.parametrize(
    ("item", "size"),
    [
        ({"pk": {"S": "abc"}}, 5),
        ({"pk": {"S": "\u00e9"}}, 4),  # names and strings count UTF-8 bytes
        ({"n": {"N": "12345"}}, 1 + 4),
        ({"n": {"N": "-1.5"}}, 1 + 2),
        ({"n": {"N": "1" * 60}}, 1 + 21),
        ({"b": {"BOOL": True}}, 1 + len(repr({"BOOL": True}))),
        ({"a": {"S": ""}, "bb": {"S": "xy"}}, 1 + 2 + 2),
    ],
)
def test_item_size_counts_as_dynamodb_bills(item: dict[str, Any], size: int) -> None:
    assert item_size(item) == size


def test_an_item_takes_outcomes_until_it_is_nine_bytes_short_of_4_kb():
    # Six outcomes with the longest error fill about 3.5 KB; a seventh fits or starts a new item.
    fill = [attempt("e1", n, status="dead", status_code=500, error="a" * MAX_ERROR_LENGTH) for n in range(6)]

    def packed(error_length: int, repeats: int = 0) -> list[dict[str, Any]]:
        last = attempt("e1", 99, status="dead", status_code=500, error="b" * error_length)
        # An attempt recorded again (redelivered in one batch) replaces its line: no room taken.
        return pack([*fill, *[fill[0]] * repeats, last], token="t")

    assert (len(packed(0)), len(packed(MAX_ERROR_LENGTH))) == (1, 2)
    # The longest last error that still shares the item.
    low, high = 0, MAX_ERROR_LENGTH
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if len(packed(middle)) == 1 else (low, middle)
    (full,) = packed(low)

    # 8 bytes are kept for the item counter to grow; the packer's tally counts one more byte.
    assert item_size(full) == RECORD_ITEM_BYTES - 9
    assert [item["o"]["S"].count("\n") + 1 for item in packed(low + 1)] == [6, 1]
    assert len(packed(low, repeats=50)) == 1
    assert len(packed(low + 1, repeats=50)) == 2


def test_the_same_attempt_recorded_again_replaces_its_line_without_filling_the_item():
    same = attempt("e1", 0, status="retrying", status_code=503, error="e" * 400)

    (item,) = pack([same] * 50 + [attempt("e1", 1)], token="t")

    assert item["o"]["S"].count("\n") == 1


def test_retries_back_off_50_to_100_ms_then_doubling(lean, jti, monkeypatch):
    db = lean.clients.dynamodb
    calls: list[int] = []

    class Throttled:
        def batch_write_item(self, **kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) <= 4:
                return {"UnprocessedItems": kwargs["RequestItems"]}
            return db.batch_write_item(**kwargs)

    for jitter, factor in ((0.0, 0.5), (1.0, 1.0)):
        calls.clear()
        sleeps: list[float] = []
        monkeypatch.setattr(random, "random", lambda jitter=jitter: jitter)
        records = DeliveryRecords(AwsClients(dynamodb=Throttled()), lean.settings, sleep=sleeps.append)

        records.write([attempt(f"{jti}-{jitter}")])

        assert sleeps == pytest.approx([0.05 * factor, 0.1 * factor, 0.2 * factor, 0.4 * factor])


def test_a_marker_keeps_a_topic_that_fits_exactly_in_one_write_unit(lean, markers, jti):
    markers.claim(f"{jti}-a", "t" * 2000, now=NOW)
    bare = lean.item(event_key(f"{jti}-a"), "EVENT")
    assert bare is not None
    room = 1024 - item_size(bare) - len("topic")

    markers.claim(f"{jti}-b", "t" * room, now=NOW)
    markers.claim(f"{jti}-c", "t" * (room + 1), now=NOW)

    kept = lean.item(event_key(f"{jti}-b"), "EVENT")
    assert kept is not None
    assert kept["topic"] == {"S": "t" * room}
    assert item_size(kept) == 1024
    dropped = lean.item(event_key(f"{jti}-c"), "EVENT")
    assert dropped is not None
    assert "topic" not in dropped


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            ClientError({"Error": {"Code": "ThrottlingException"}}, "BatchWriteItem"),
            "DynamoDB could not record deliveries: ThrottlingException",
        ),
        (RuntimeError("bug"), "RuntimeError"),
    ],
)
def test_records_a_batcher_could_not_write_are_counted_across_batches(lean, error, reason, caplog):
    class Failing:
        def batch_write_item(self, **kwargs: Any) -> Any:
            raise error

    records = DeliveryRecords(AwsClients(dynamodb=Failing()), lean.settings)
    batcher = RecordBatcher(records, ThreadPoolExecutor(max_workers=1))
    # 30 events of 2 outcomes each: 30 items, two batches (25 and 5), 60 outcomes lost.
    for n in range(30):
        batcher.add(attempt(f"e{n}", 0))
        batcher.add(attempt(f"e{n}", 1))

    with caplog.at_level(logging.ERROR, logger="sethub.records"), pytest.raises(UpstreamError) as raised:
        batcher.finish()

    assert str(raised.value) == f"60 delivery records were not written: {reason}"
    crashes = [r for r in caplog.records if r.getMessage() == "writing delivery records crashed"]
    # A bug (not DynamoDB's refusal) is logged with its traceback, once per batch.
    assert len(crashes) == (2 if isinstance(error, RuntimeError) else 0)
    assert all(r.exc_info for r in crashes)


def test_two_invocations_recording_the_same_moment_keep_both_records(lean, jti):
    records = DeliveryRecords(lean.clients, lean.settings)
    with ThreadPoolExecutor(max_workers=1) as pool:
        for n in range(2):
            batcher = RecordBatcher(records, pool)
            batcher.add(attempt(jti, n))
            batcher.finish()

    assert len(lean.items(delivery_key(jti))) == 2
    assert sorted(a.callback_host for a in records.for_event(jti)) == [
        "sub0.example:8443",
        "sub1.example:8443",
    ]
