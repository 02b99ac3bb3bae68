"""The retry schedule of failed deliveries: pure, so it is tested without any I/O.

``SETHUB_RETRY_SCHEDULE`` lists the seconds between attempts. Each delay gets jitter
(so a subscriber that comes back is not hit by every retry at once), a floor after a
``429`` or a timeout (the subscriber is overloaded: do not come back at once), and a
``Retry-After`` within bounds (honoured, but a subscriber cannot park a delivery for
ever). When the schedule is used up, ``next_delay`` answers None: dead letter.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from sethub.settings import Settings

DEFAULT_JITTER = 0.2
"""Each delay is spread uniformly over ±20 % of itself."""
THROTTLE_FLOOR_SECONDS = 5.0
"""The least delay after a 429 or a timeout."""
MAX_RETRY_AFTER_SECONDS = 6 * 3600.0
"""The most a ``Retry-After`` can postpone one attempt."""
SQS_MAX_DELAY_SECONDS = 900
"""SQS ``DelaySeconds`` limit: longer delays are reached by re-delaying the message."""


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a failed delivery again."""

    schedule: tuple[int, ...]
    jitter: float = DEFAULT_JITTER
    throttle_floor: float = THROTTLE_FLOOR_SECONDS
    max_retry_after: float = MAX_RETRY_AFTER_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(schedule=settings.retry_schedule)

    @property
    def max_attempts(self) -> int:
        """The first attempt plus one per scheduled delay."""
        return len(self.schedule) + 1

    def next_delay(
        self,
        attempts: int,
        *,
        retry_after: float | None = None,
        throttled: bool = False,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds until the next attempt after ``attempts`` failed ones, or None when exhausted."""
        if attempts < 1 or attempts > len(self.schedule):
            return None
        base = float(self.schedule[attempts - 1])
        delay = base * (1 + self.jitter * (2 * rand() - 1))
        if throttled:
            delay = max(delay, self.throttle_floor)
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return max(delay, 0.0)


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP-date), if any."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(when.timestamp() - now, 0.0)


def sqs_delay(seconds: float) -> int:
    """A delay as SQS ``DelaySeconds``: whole seconds, 0..900."""
    return min(max(int(seconds + 0.999), 0), SQS_MAX_DELAY_SECONDS)


__all__ = [
    "MAX_RETRY_AFTER_SECONDS",
    "SQS_MAX_DELAY_SECONDS",
    "THROTTLE_FLOOR_SECONDS",
    "RetryPolicy",
    "parse_retry_after",
    "sqs_delay",
]
