"""A clock of our own and the key counter items in memory, for the tests of
sethub.credentials.ratelimit's limiter (one ``KeyRateLimiter`` per "container")."""

from __future__ import annotations

from dataclasses import dataclass, field

from sethub.credentials.ratelimit import KeyRateLimitedError, KeyRateLimiter, Totals, window_attribute
from sethub.errors import UpstreamError

MIDNIGHT = 1_796_169_600.0  # 2026-12-02T00:00:00Z


@dataclass
class Clock:
    now: float = MIDNIGHT + 0.25

    def __call__(self) -> float:
        return self.now


@dataclass
class MemoryCounters:
    """The counter items as DynamoDBKeyCounters keeps them: ADD, REMOVE, ALL_NEW."""

    items: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)
    """The flushes written: (key id, requests added to the day)."""
    attempts: int = 0
    """Every flush tried, failed ones too: what DynamoDB would be called."""
    failing: bool = False

    def add(
        self,
        key_id: str,
        count: int,
        *,
        window: int,
        in_window: int,
        day: str,
        expires: int,
        remove: tuple[str, ...],
    ) -> Totals:
        self.attempts += 1
        if self.failing:
            raise UpstreamError("DynamoDB could not count a key's requests: ThrottlingException")
        self.calls.append((key_id, count))
        item = self.items.setdefault((key_id, day), {})
        for name in remove:
            item.pop(name, None)
        current = window_attribute(window)
        item["requests"] = item.get("requests", 0) + count
        item[current] = item.get(current, 0) + in_window
        item["ttl"] = expires
        return Totals(
            window=window,
            window_requests=item[current],
            day=day,
            day_requests=item["requests"],
            stale=tuple(name for name in item if name.startswith("w") and name != current),
        )


def admitted(limiter: KeyRateLimiter, key: str, times: int) -> int:
    """How many of ``times`` requests of ``key`` the limiter admits."""
    count = 0
    for _ in range(times):
        try:
            limiter.admit(key)
        except KeyRateLimitedError:
            continue
        count += 1
    return count
