"""Per-key limits of the HTTP ingress (sethub.credentials.ratelimit), with a clock of our own.

GIVEN limiters (one per "container") sharing an in-memory counter store that answers as the
DynamoDB item does: WHEN a key publishes, THEN it is refused with 429 and a Retry-After once
over its window's allowance or its day's quota, other keys are not, the counters are added in
batches, and the overshoot across containers stays within the documented margin.
"""

from __future__ import annotations

import pytest
from key_counters import MIDNIGHT, Clock, MemoryCounters, admitted

from sethub.credentials.ratelimit import DAY_SECONDS, KeyLimits, KeyRateLimitedError, KeyRateLimiter
from sethub.errors import ConfigurationError
from sethub.settings import Settings


def test_the_window_and_the_batch_follow_the_parameters() -> None:
    defaults = KeyLimits(rate=50, burst=100, daily_quota=1_000_000)
    assert (defaults.window_seconds, defaults.cold_batch, defaults.hot_batch) == (2, 25, 5)
    # A burst under the rate: one-second windows of the burst, counted one by one.
    assert (
        KeyLimits(rate=50, burst=5, daily_quota=100).window_seconds,
        KeyLimits(50, 5, 100).cold_batch,
    ) == (1, 1)
    assert KeyLimits(rate=3, burst=10, daily_quota=1000).window_seconds == 4
    with pytest.raises(ConfigurationError):
        KeyLimits(rate=0, burst=1, daily_quota=1)


def test_limits_come_from_the_settings_only_when_all_three_are_set() -> None:
    assert KeyLimits.from_settings(Settings.from_env({})) is None
    settings = Settings.from_env(
        {"SETHUB_KEY_RATE_LIMIT": "5", "SETHUB_KEY_BURST_LIMIT": "10", "SETHUB_KEY_DAILY_QUOTA": "100"}
    )
    assert KeyLimits.from_settings(settings) == KeyLimits(rate=5, burst=10, daily_quota=100)
    with pytest.raises(ConfigurationError, match="go together"):
        KeyLimits.from_settings(Settings.from_env({"SETHUB_KEY_RATE_LIMIT": "5"}))


def test_a_key_over_its_window_is_refused_until_the_next_window_and_another_key_is_not() -> None:
    clock, store = Clock(), MemoryCounters()
    limiter = KeyRateLimiter(KeyLimits(rate=10, burst=20, daily_quota=1000), store, clock)

    assert admitted(limiter, "noisy", 20) == 20
    with pytest.raises(KeyRateLimitedError) as refused:
        limiter.admit("noisy")
    limiter.admit("quiet")

    assert refused.value.status == 429
    assert refused.value.reason == "this API key is over its rate limit of 10 requests per second"
    # 2 s windows: the window of MIDNIGHT + 0.25 ends at MIDNIGHT + 2.
    assert refused.value.retry_after == 2
    clock.now = MIDNIGHT + 2.0
    assert admitted(limiter, "noisy", 20) == 20
    assert admitted(limiter, "noisy", 1) == 0


def test_counts_are_added_in_batches_and_the_first_request_of_the_day_at_once() -> None:
    store = MemoryCounters()
    limiter = KeyRateLimiter(KeyLimits(rate=50, burst=100, daily_quota=10_000), store, Clock())

    admitted(limiter, "k", 60)

    # The first request (learn the totals), then batches of 25 while the key is under half
    # its window's 100, then of 5.
    assert store.calls == [("k", 1), ("k", 25), ("k", 24), ("k", 5), ("k", 5)]
    assert store.items[("k", "2026-12-02")]["requests"] == 60


def test_containers_share_the_window_and_overshoot_it_by_about_two_batches_each() -> None:
    clock, store = Clock(), MemoryCounters()
    limits = KeyLimits(rate=50, burst=100, daily_quota=1_000_000)
    containers = [KeyRateLimiter(limits, store, clock) for _ in range(3)]

    served = 0
    for _ in range(100):  # round robin, as Lambda spreads requests over warm containers
        served += sum(admitted(container, "k", 1) for container in containers)

    assert limits.burst <= served <= limits.burst + 2 * len(containers) * limits.hot_batch
    # Later in the window every container refuses, having learned the total.
    assert sum(admitted(container, "k", 20) for container in containers) == 0


def test_the_daily_quota_refuses_until_midnight_utc() -> None:
    clock, store = Clock(), MemoryCounters()
    limiter = KeyRateLimiter(KeyLimits(rate=100, burst=100, daily_quota=30), store, clock)

    served = 0
    for second in range(10):
        clock.now = MIDNIGHT + 3600 + second * 2
        served += admitted(limiter, "k", 5)
    clock.now = MIDNIGHT + 3600 + 30.5
    with pytest.raises(KeyRateLimitedError) as refused:
        limiter.admit("k")

    assert served == 30
    assert refused.value.reason == "this API key used its daily quota of 30 requests (UTC day)"
    assert refused.value.retry_after == DAY_SECONDS - 3630
    clock.now = MIDNIGHT + DAY_SECONDS
    limiter.admit("k")
    assert store.items[("k", "2026-12-03")]["requests"] == 1


def test_past_windows_are_removed_from_the_item() -> None:
    clock, store = Clock(), MemoryCounters()
    limiter = KeyRateLimiter(KeyLimits(rate=1, burst=1, daily_quota=100), store, clock)

    for second in range(5):
        clock.now = MIDNIGHT + second
        limiter.admit("k")

    item = store.items[("k", "2026-12-02")]
    assert item["requests"] == 5
    # The current window and at most the one before it (removed by the next flush).
    assert len([name for name in item if name.startswith("w")]) <= 2


def test_a_counter_that_cannot_be_written_neither_refuses_nor_loses_the_requests() -> None:
    clock, store = Clock(), MemoryCounters(failing=True)
    limiter = KeyRateLimiter(KeyLimits(rate=50, burst=100, daily_quota=1000), store, clock)

    assert admitted(limiter, "k", 5) == 5
    store.failing = False
    clock.now += 1.0
    limiter.admit("k")

    assert store.calls == [("k", 6)]


def test_blank_limits_are_no_limits() -> None:
    # The REST ingress deploys them as AWS::NoValue, which sam local passes as blank values.
    settings = Settings.from_env(
        {"SETHUB_KEY_RATE_LIMIT": "", "SETHUB_KEY_BURST_LIMIT": "", "SETHUB_KEY_DAILY_QUOTA": ""}
    )

    assert (settings.key_rate_limit, settings.key_burst_limit, settings.key_daily_quota) == (0, 0, 0)
    with pytest.raises(ConfigurationError, match="SETHUB_KEY_RATE_LIMIT must be a whole number"):
        Settings.from_env({"SETHUB_KEY_RATE_LIMIT": "fast"})
