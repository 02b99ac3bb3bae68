"""What an operator and a publisher see of the HTTP ingress's per-key limits
(sethub.credentials.ratelimit) at their edges: the configuration each limit needs, the day
a request counts for (UTC, with or without a clock of our own), the last second of a window
or a day, the 90 % of the daily quota where counts are added in small batches, requests
carried over a window's or a day's end, and a counter that cannot be written (a pause
before the next try, one warning per failure).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from key_counters import MIDNIGHT, Clock, MemoryCounters, admitted

from sethub.credentials.ratelimit import DAY_SECONDS, KeyLimits, KeyRateLimitedError, KeyRateLimiter
from sethub.errors import ConfigurationError
from sethub.settings import Settings

DAY = "2026-12-02"
NEXT_DAY = "2026-12-03"


@pytest.mark.parametrize(
    "limits",
    [{"rate": 0}, {"burst": 0}, {"daily_quota": 0}, {"rate": -1}, {"daily_quota": -5}],
    ids=["rate-0", "burst-0", "quota-0", "rate-negative", "quota-negative"],
)
def test_each_limit_below_1_is_refused_on_its_own(limits: dict[str, int]) -> None:
    with pytest.raises(ConfigurationError, match=r"^key limits must be at least 1$"):
        KeyLimits(**{"rate": 1, "burst": 1, "daily_quota": 1, **limits})


def test_limits_of_1_are_enough() -> None:
    limits = KeyLimits(rate=1, burst=1, daily_quota=1)

    assert (limits.window_seconds, limits.cold_batch, limits.hot_batch) == (1, 1, 1)


@pytest.mark.parametrize(
    "environment",
    [
        {"SETHUB_KEY_RATE_LIMIT": "5"},
        {"SETHUB_KEY_BURST_LIMIT": "10", "SETHUB_KEY_DAILY_QUOTA": "100"},
        {"SETHUB_KEY_RATE_LIMIT": "5", "SETHUB_KEY_BURST_LIMIT": "10"},
    ],
    ids=["rate-only", "no-rate", "no-quota"],
)
def test_limits_set_in_part_are_refused_naming_the_three_settings(environment: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError) as refused:
        KeyLimits.from_settings(Settings.from_env(environment))

    assert str(refused.value) == (
        "SETHUB_KEY_RATE_LIMIT, SETHUB_KEY_BURST_LIMIT and SETHUB_KEY_DAILY_QUOTA go together"
    )


def test_a_limiter_without_a_clock_counts_in_the_current_utc_day() -> None:
    store = MemoryCounters()
    limiter = KeyRateLimiter(KeyLimits(rate=10, burst=20, daily_quota=1000), store)

    before = datetime.now(UTC).strftime("%Y-%m-%d")
    limiter.admit("k")
    after = datetime.now(UTC).strftime("%Y-%m-%d")

    ((key, day),) = store.items
    assert key == "k"
    assert day in {before, after}  # the two differ only when the test runs across midnight
    assert store.items[(key, day)]["requests"] == 1


@pytest.fixture
def local_time_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone 8 hours behind UTC (Lambda's TZ can be set too)."""
    monkeypatch.setenv("TZ", "PST8PDT")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_time_zone")
def test_the_day_is_the_utc_day_whatever_the_local_time_zone() -> None:
    # 00:30 UTC on the 2nd is 16:30 on the 1st in California.
    store = MemoryCounters()
    limiter = KeyRateLimiter(KeyLimits(rate=10, burst=20, daily_quota=1000), store, Clock(MIDNIGHT + 1800))

    limiter.admit("k")

    assert list(store.items) == [("k", DAY)]


def test_the_counter_item_expires_a_day_after_its_day_ends() -> None:
    store, clock = MemoryCounters(), Clock(MIDNIGHT + 3600)
    limiter = KeyRateLimiter(KeyLimits(rate=10, burst=20, daily_quota=1000), store, clock)

    limiter.admit("k")
    clock.now = MIDNIGHT + DAY_SECONDS + 3600
    limiter.admit("k")

    assert store.items[("k", DAY)]["ttl"] == MIDNIGHT + 2 * DAY_SECONDS
    assert store.items[("k", NEXT_DAY)]["ttl"] == MIDNIGHT + 3 * DAY_SECONDS


def test_a_daily_quota_of_1_admits_one_request_a_day() -> None:
    clock = Clock()
    limiter = KeyRateLimiter(KeyLimits(rate=1, burst=1, daily_quota=1), MemoryCounters(), clock)

    assert admitted(limiter, "k", 3) == 1
    clock.now = MIDNIGHT + DAY_SECONDS
    assert admitted(limiter, "k", 3) == 1


def test_in_the_last_second_of_a_window_or_a_day_retry_after_is_1() -> None:
    # A refusal answers Retry-After in whole seconds, rounded up: half a second left is 1.
    clock = Clock(MIDNIGHT + 1.5)  # 2 s windows: this one ends at MIDNIGHT + 2
    limiter = KeyRateLimiter(KeyLimits(rate=10, burst=20, daily_quota=1000), MemoryCounters(), clock)
    assert admitted(limiter, "k", 20) == 20
    with pytest.raises(KeyRateLimitedError) as over_window:
        limiter.admit("k")

    clock.now = MIDNIGHT + DAY_SECONDS - 0.5
    limiter = KeyRateLimiter(KeyLimits(rate=10, burst=20, daily_quota=1), MemoryCounters(), clock)
    limiter.admit("k")
    with pytest.raises(KeyRateLimitedError) as over_day:
        limiter.admit("k")

    assert (over_window.value.status, over_window.value.retry_after) == (429, 1)
    assert over_day.value.reason == "this API key used its daily quota of 1 requests (UTC day)"
    assert (over_day.value.status, over_day.value.retry_after) == (429, 1)


def test_from_90_percent_of_the_daily_quota_counts_are_added_in_small_batches() -> None:
    # Batches of 10 far from the limits (a twentieth of the quota), of 5 near them; a window
    # of 1000 is never near: the daily quota alone decides.
    store, clock = MemoryCounters(), Clock()
    limiter = KeyRateLimiter(KeyLimits(rate=1000, burst=1000, daily_quota=210), store, clock)

    served = 0
    for request in range(210):
        clock.now = MIDNIGHT + 0.25 + request // 10  # 10 requests a second
        served += admitted(limiter, "k", 1)
    with pytest.raises(KeyRateLimitedError) as refused:
        limiter.admit("k")

    # The first request at once (to learn the totals), 18 batches of 10, then request 189,
    # 90 % of 210, adds the 8 held back and batches of 5 follow.
    assert store.calls == [("k", 1)] + [("k", 10)] * 18 + [("k", 8)] + [("k", 5)] * 4
    assert served == 210
    # Request 210 is not added yet, but this container counts it: the 211th is refused.
    assert store.items[("k", DAY)]["requests"] == 209
    assert refused.value.reason == "this API key used its daily quota of 210 requests (UTC day)"


def test_a_window_refusal_counts_what_this_container_has_not_added_yet() -> None:
    store = MemoryCounters()
    limiter = KeyRateLimiter(KeyLimits(rate=42, burst=42, daily_quota=100_000), store, Clock())

    served = admitted(limiter, "k", 43)

    # Near the window's limit the batches are of 2: 41 added, the 42nd still counted here.
    assert served == 42
    assert store.calls == [("k", 1), ("k", 10), ("k", 10)] + [("k", 2)] * 10
    assert store.items[("k", DAY)]["requests"] == 41


def test_requests_of_an_earlier_window_count_for_the_day_not_for_the_window_they_are_added_in() -> None:
    store, clock = MemoryCounters(), Clock()
    limiter = KeyRateLimiter(KeyLimits(rate=50, burst=100, daily_quota=10_000), store, clock)
    first_window = int(clock.now // 2)

    assert admitted(limiter, "k", 10) == 10  # the first added at once, 9 held back
    clock.now += 2.0
    assert admitted(limiter, "k", 16) == 16  # 25 held back: added as one batch

    assert store.calls == [("k", 1), ("k", 25)]
    assert store.items[("k", DAY)] == {
        "requests": 26,
        f"w{first_window}": 1,
        f"w{first_window + 1}": 16,
        "ttl": MIDNIGHT + 2 * DAY_SECONDS,
    }


def test_requests_not_added_when_the_day_ends_count_for_no_day() -> None:
    store, clock = MemoryCounters(), Clock(MIDNIGHT + DAY_SECONDS - 10)
    limiter = KeyRateLimiter(KeyLimits(rate=50, burst=100, daily_quota=10_000), store, clock)

    assert admitted(limiter, "k", 10) == 10  # the first added at once, 9 held back
    clock.now = MIDNIGHT + DAY_SECONDS + 0.25
    limiter.admit("k")

    # The next day starts from its own first request, added at once.
    assert store.calls == [("k", 1), ("k", 1)]
    assert store.items[("k", DAY)]["requests"] == 1
    assert store.items[("k", NEXT_DAY)]["requests"] == 1


def test_after_a_failed_flush_the_next_try_waits_a_second_and_each_failure_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, clock = MemoryCounters(failing=True), Clock()
    limiter = KeyRateLimiter(KeyLimits(rate=50, burst=100, daily_quota=1000), store, clock)
    start = clock.now

    with caplog.at_level(logging.WARNING, logger="sethub.credentials.ratelimit"):
        assert admitted(limiter, "publisher-1", 5) == 5  # tried once, then held back
        clock.now = start + 0.5
        assert admitted(limiter, "publisher-1", 1) == 1
        clock.now = start + 1.0  # a second after the failure: tried again, failing again
        assert admitted(limiter, "publisher-1", 1) == 1
        store.failing = False
        clock.now = start + 2.0
        assert admitted(limiter, "publisher-1", 1) == 1

    assert store.attempts == 3
    assert store.calls == [("publisher-1", 8)]
    warning = (
        "key counters not written (key publisher-1): "
        "DynamoDB could not count a key's requests: ThrottlingException"
    )
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("sethub.credentials.ratelimit", logging.WARNING, warning)
    ] * 2
