"""The retry schedule at its edges: zero delays, sub-second and past ``Retry-After`` values."""

from __future__ import annotations

from sethub.retry import RetryPolicy, parse_retry_after

MIDDLE = 0.5  # rand() at the midpoint: no jitter


def test_a_zero_delay_in_the_schedule_retries_at_once() -> None:
    assert RetryPolicy(schedule=(0,)).next_delay(1, rand=lambda: MIDDLE) == 0.0


def test_a_retry_after_under_a_second_is_still_honoured() -> None:
    policy = RetryPolicy(schedule=(0,))

    assert policy.next_delay(1, retry_after=0.5, rand=lambda: MIDDLE) == 0.5


def test_a_retry_after_date_in_the_past_asks_for_no_wait() -> None:
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", now=3600.0) == 0.0
