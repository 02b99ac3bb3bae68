"""sethub.credentials.ratelimit's counter items in a DynamoDB table (in-process moto): what one
flush writes, the totals it answers, past windows removed, and the one-line failures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from lean_aws import LeanHub, build_lean_hub, in_process_aws

from sethub.credentials.ratelimit import DynamoDBKeyCounters, Totals
from sethub.errors import ConfigurationError, UpstreamError

DAY = "2026-12-02"
EXPIRES = 1_796_256_000


@pytest.fixture(scope="module")
def hub() -> Iterator[LeanHub]:
    with in_process_aws():
        yield build_lean_hub()


@pytest.fixture
def counters(hub: LeanHub) -> DynamoDBKeyCounters:
    return DynamoDBKeyCounters(hub.clients, hub.settings.table_name)


def numbers(item: dict[str, Any] | None) -> dict[str, int | str]:
    assert item is not None
    return {name: int(value["N"]) if "N" in value else value["S"] for name, value in item.items()}


def test_a_flush_adds_to_the_days_and_the_windows_counts_and_answers_the_totals(hub, counters):
    first = counters.add("k1", 3, window=100, in_window=2, day=DAY, expires=EXPIRES, remove=())
    second = counters.add("k1", 4, window=100, in_window=4, day=DAY, expires=EXPIRES, remove=())

    assert first == Totals(window=100, window_requests=2, day=DAY, day_requests=3)
    assert second == Totals(window=100, window_requests=6, day=DAY, day_requests=7)
    assert numbers(hub.item("KEYLIMIT#k1", f"DAY#{DAY}")) == {
        "pk": "KEYLIMIT#k1",
        "sk": f"DAY#{DAY}",
        "requests": 7,
        "w100": 6,
        "ttl": EXPIRES,
    }


def test_past_windows_are_named_in_the_totals_and_removed_by_the_next_flush_but_never_the_current(
    hub, counters
):
    counters.add("k2", 1, window=7, in_window=1, day=DAY, expires=EXPIRES, remove=())
    moved = counters.add("k2", 1, window=8, in_window=1, day=DAY, expires=EXPIRES, remove=())
    cleaned = counters.add(
        "k2", 1, window=8, in_window=0, day=DAY, expires=EXPIRES, remove=(*moved.stale, "w8")
    )

    assert moved == Totals(window=8, window_requests=1, day=DAY, day_requests=2, stale=("w7",))
    assert cleaned == Totals(window=8, window_requests=1, day=DAY, day_requests=3)
    assert set(numbers(hub.item("KEYLIMIT#k2", f"DAY#{DAY}"))) == {"pk", "sk", "requests", "w8", "ttl"}


def test_a_flush_removes_at_most_ten_past_windows(hub, counters):
    for window in range(12):
        counters.add("k3", 1, window=window, in_window=1, day=DAY, expires=EXPIRES, remove=())
    before = counters.add("k3", 1, window=12, in_window=1, day=DAY, expires=EXPIRES, remove=())

    after = counters.add("k3", 1, window=12, in_window=1, day=DAY, expires=EXPIRES, remove=before.stale)

    assert len(before.stale) == 12
    assert len(after.stale) == 2
    assert set(after.stale) < set(before.stale)


def test_a_counter_store_needs_a_table_name(hub):
    with pytest.raises(ConfigurationError, match=r"^SETHUB_TABLE_NAME is not set$"):
        DynamoDBKeyCounters(hub.clients, "")


def test_a_table_that_cannot_be_written_is_an_upstream_error_naming_the_code(hub):
    counters = DynamoDBKeyCounters(hub.clients, "no-such-table")

    with pytest.raises(UpstreamError) as caught:
        counters.add("k4", 1, window=1, in_window=1, day=DAY, expires=EXPIRES, remove=())

    assert str(caught.value) == "DynamoDB could not count a key's requests: ResourceNotFoundException"
