"""The retry schedule: pure."""

from __future__ import annotations

import pytest

from sethub.retry import RetryPolicy, parse_retry_after, sqs_delay
from sethub.settings import Settings

POLICY = RetryPolicy(schedule=(5, 30, 120), jitter=0.2, throttle_floor=10, max_retry_after=600)


def test_follows_the_schedule_then_gives_up():
    middle = lambda: 0.5  # noqa: E731 - no jitter at the midpoint
    assert [POLICY.next_delay(n, rand=middle) for n in (1, 2, 3, 4)] == [5, 30, 120, None]
    assert POLICY.max_attempts == 4


@pytest.mark.parametrize(("rand", "expected"), [(0.0, 24.0), (1.0, 36.0)])
def test_jitter_stays_within_its_bounds(rand, expected):
    assert POLICY.next_delay(2, rand=lambda: rand) == pytest.approx(expected)


def test_throttling_has_a_floor_and_retry_after_is_honoured_within_bounds():
    middle = lambda: 0.5  # noqa: E731
    assert POLICY.next_delay(1, throttled=True, rand=middle) == 10
    assert POLICY.next_delay(1, retry_after=90, rand=middle) == 90
    assert POLICY.next_delay(1, retry_after=10**6, rand=middle) == 600
    assert POLICY.next_delay(3, retry_after=1, rand=middle) == 120


def test_an_empty_schedule_means_no_retry():
    assert RetryPolicy(schedule=()).next_delay(1) is None


def test_retry_after_forms():
    assert parse_retry_after("120", now=0) == 120
    assert parse_retry_after("Thu, 01 Jan 1970 00:02:00 GMT", now=60) == 60
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after(None, now=0) is None


def test_sqs_delays_are_capped():
    assert sqs_delay(0) == 0
    assert sqs_delay(0.2) == 1
    assert sqs_delay(86400) == 900


@pytest.mark.parametrize(("rand", "expected"), [(0.0, 80.0), (0.25, 90.0), (0.5, 100.0), (1.0, 120.0)])
def test_the_default_jitter_spreads_each_delay_over_plus_or_minus_20_percent(rand, expected):
    # The deployed policy: built from settings, jitter left at its default.
    policy = RetryPolicy.from_settings(Settings(retry_schedule=(100, 3600)))

    assert policy.next_delay(1, rand=lambda: rand) == pytest.approx(expected)
    assert policy.next_delay(2, rand=lambda: rand) == pytest.approx(expected * 36)


def test_the_default_schedule_is_the_documented_one():
    # README: 5,30,120,600,1800,3600,7200,14400,28800,28800 (11 attempts over about 23.7 h).
    policy = RetryPolicy.from_settings(Settings())

    assert policy.schedule == (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800)
    assert policy.max_attempts == 11
