"""Per-key rate limit and daily quota of ``POST /events`` on the HTTP API (``Ingress=http``).

The REST API's usage plan limits each key at the gateway; an HTTP API has no usage plans,
only a route throttle shared by every key. So with ``Ingress=http`` the ingest function
counts each key's requests itself, cheaply, in the hub table:

- **The limits.** ``KeyBurstLimit`` requests per window of ``ceil(KeyBurstLimit /
  KeyRateLimit)`` seconds (at least 1), so a key averages at most ``KeyRateLimit``
  requests a second and never gets more than ``KeyBurstLimit`` in one window; and
  ``KeyDailyQuota`` requests per UTC day. Over either: ``429`` with ``Retry-After`` (the
  end of the window, or of the day), checked before the body is read, nothing queued.
- **The counters.** One item per key and day holds the day's total and the current
  window's; a container adds its admitted requests with one ``UpdateItem ADD`` and the
  answer (``ALL_NEW``) tells it both totals. The item expires (TTL) a day after its day.
- **Batched.** A container counts a key's requests locally and adds them in batches: of
  ``cold_batch`` requests (``KeyBurstLimit // 4``, 1 to 25) while the key is far from its
  limits (under half its window's allowance and 90 % of its day's, as last learned), of
  ``hot_batch`` (``KeyBurstLimit // 20``, 1 to 5) near them; and at once for a key's first
  request of the day in that container (so it learns the totals). A request is refused
  when the last totals it learned plus its own unreported requests reach a limit.

Approximate, by design: what a container has not reported yet, the others do not see, so
a key can go over a limit by up to about two batches per warm ingest container (10 at the
defaults near the limit; up to 50 in the window where a quiet key suddenly bursts) and one
more per container that had not seen the key that day; requests a container reports after
their window ended count for the day only, after their day ended not at all; a container
that is recycled loses its unreported requests. A request refused is not counted. Cost:
one write unit per batch of a key per container (a key far from its limits, the usual
case: one per 25 requests at the defaults, $0.025 per million requests on demand; a key
at its limit one per 5), plus one per key, container and day.

A counter that cannot be written (DynamoDB trouble) does not refuse publishing: the
requests stay counted locally and are added with the next flush (fails open; the route
throttle still bounds the API).

Item (pk ``KEYLIMIT#<key id>``, sk ``DAY#<yyyy-mm-dd>``): ``requests`` (the day's), one
``w<window number>`` (that window's; the ones of past windows are removed by the next
flush that sees them), ``ttl``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from sethub.clients import AwsClients
from sethub.errors import BadRequestError, ConfigurationError, UpstreamError, aws_error_code
from sethub.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

PK_PREFIX: Final = "KEYLIMIT#"
DAY_SECONDS: Final = 86_400
MAX_COLD_BATCH: Final = 25
"""Requests of a key far from its limits a container counts before adding them (at most)."""
MAX_HOT_BATCH: Final = 5
"""The same, for a key near a limit: smaller batches, a smaller overshoot."""
MAX_STALE_REMOVED: Final = 10
"""Past windows' attributes one flush removes (more wait for the next flush)."""
RETRY_FLUSH_AFTER_SECONDS: Final = 1.0
"""After a failed flush, the next try waits this long (not one DynamoDB call per request)."""


class KeyRateLimitedError(BadRequestError):
    """A key is over its rate limit or daily quota (429); ``retry_after`` is in seconds."""

    status = 429

    def __init__(self, reason: str, *, retry_after: int) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True)
class KeyLimits:
    """Each key's allowance: ``KeyRateLimit``, ``KeyBurstLimit``, ``KeyDailyQuota``."""

    rate: int
    burst: int
    daily_quota: int

    def __post_init__(self) -> None:
        if self.rate < 1 or self.burst < 1 or self.daily_quota < 1:
            raise ConfigurationError("key limits must be at least 1")

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyLimits | None:
        """The limits ingest enforces, or None where the gateway does (no limits set)."""
        values = (settings.key_rate_limit, settings.key_burst_limit, settings.key_daily_quota)
        if not any(values):
            return None
        if not all(values):
            raise ConfigurationError(
                "SETHUB_KEY_RATE_LIMIT, SETHUB_KEY_BURST_LIMIT and SETHUB_KEY_DAILY_QUOTA go together"
            )
        return cls(*values)

    @property
    def window_seconds(self) -> int:
        """A window holds ``burst`` requests: at least ``burst / rate`` seconds long."""
        return max(1, math.ceil(self.burst / self.rate))

    @property
    def cold_batch(self) -> int:
        """The batch of a key far from its limits: a quarter of the window's allowance, 1 to 25."""
        return max(1, min(MAX_COLD_BATCH, self.burst // 4, self.daily_quota // 20))

    @property
    def hot_batch(self) -> int:
        """The batch of a key near a limit: a twentieth of the window's allowance, 1 to 5."""
        return max(1, min(MAX_HOT_BATCH, self.burst // 20, self.daily_quota // 20))


@dataclass(frozen=True)
class Totals:
    """A key's totals after a flush, as the table holds them."""

    window: int
    window_requests: int
    day: str
    day_requests: int
    stale: tuple[str, ...] = ()
    """Attributes of past windows still on the item (removed by the next flush)."""


class CounterStore(Protocol):
    """Where the counters live (``DynamoDBKeyCounters``; tests may pass another)."""

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
        """Add ``count`` requests to the day, ``in_window`` of them to ``window``; the totals."""
        ...


def window_attribute(window: int) -> str:
    return f"w{window}"


class DynamoDBKeyCounters:
    """The counter items in the hub table: one ``UpdateItem`` per flush, nothing else."""

    def __init__(self, clients: AwsClients, table_name: str) -> None:
        if not table_name:
            raise ConfigurationError("SETHUB_TABLE_NAME is not set")
        self._clients = clients
        self._table = table_name

    @property
    def _db(self) -> DynamoDBClient:
        return self._clients.dynamodb

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
        current = window_attribute(window)
        names = {"#day": "requests", "#win": current, "#ttl": "ttl"}
        expression = "ADD #day :n, #win :w SET #ttl = :ttl"
        stale = [name for name in remove if name != current][:MAX_STALE_REMOVED]
        if stale:
            names.update({f"#old{i}": name for i, name in enumerate(stale)})
            expression += " REMOVE " + ", ".join(f"#old{i}" for i in range(len(stale)))
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"{PK_PREFIX}{key_id}"}, "sk": {"S": f"DAY#{day}"}},
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    ":n": {"N": str(count)},
                    ":w": {"N": str(in_window)},
                    ":ttl": {"N": str(expires)},
                },
                ReturnValues="ALL_NEW",
            )
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"DynamoDB could not count a key's requests: {aws_error_code(exc)}") from exc
        item: dict[str, Any] = answer.get("Attributes", {})
        return Totals(
            window=window,
            window_requests=int(item.get(current, {}).get("N", in_window)),
            day=day,
            day_requests=int(item.get("requests", {}).get("N", count)),
            stale=tuple(name for name in item if name.startswith("w") and name != current),
        )


@dataclass
class _KeyState:
    pending: int = 0
    """Requests admitted here and not yet added to the table."""
    pending_day: str = ""
    """The day of ``pending``: those of a day that ended no longer matter to any limit."""
    pending_window: int = -1
    pending_in_window: int = 0
    """How many of ``pending`` were admitted in window ``pending_window`` (the others are
    older: they are added to the table's current window, but do not hold this one back)."""
    totals: Totals | None = None
    """What the last flush answered."""
    retry_flush_at: float = 0.0


@dataclass
class KeyRateLimiter:
    """One container's view of every key's counters (see the module docstring)."""

    limits: KeyLimits
    store: CounterStore
    clock: Callable[[], float] | None = None
    """Seconds since the epoch; None: ``time.time`` (looked up per call)."""
    _keys: dict[str, _KeyState] = field(default_factory=dict, init=False, repr=False)

    def admit(self, key_id: str) -> None:
        """Count one request of ``key_id``, or raise ``KeyRateLimitedError`` (nothing counted)."""
        now = self.clock() if self.clock is not None else time.time()
        window_seconds = self.limits.window_seconds
        window = int(now // window_seconds)
        day_number = int(now // DAY_SECONDS)
        day = datetime.fromtimestamp(day_number * DAY_SECONDS, UTC).strftime("%Y-%m-%d")
        state = self._keys.setdefault(key_id, _KeyState())
        if state.pending_day != day:
            state.pending, state.pending_day = 0, day
        totals = state.totals
        known_day = totals.day_requests if totals is not None and totals.day == day else 0
        known_window = totals.window_requests if totals is not None and totals.window == window else 0
        if known_day + state.pending >= self.limits.daily_quota:
            raise KeyRateLimitedError(
                f"this API key used its daily quota of {self.limits.daily_quota} requests (UTC day)",
                retry_after=max(1, math.ceil((day_number + 1) * DAY_SECONDS - now)),
            )
        in_window = state.pending_in_window if state.pending_window == window else 0
        if known_window + in_window >= self.limits.burst:
            raise KeyRateLimitedError(
                f"this API key is over its rate limit of {self.limits.rate} requests per second",
                retry_after=max(1, math.ceil((window + 1) * window_seconds - now)),
            )
        state.pending += 1
        state.pending_window, state.pending_in_window = window, in_window + 1
        first_today = totals is None or totals.day != day
        near = (
            2 * (known_window + in_window + 1) >= self.limits.burst
            or 10 * (known_day + state.pending) >= 9 * self.limits.daily_quota
        )
        batch = self.limits.hot_batch if near else self.limits.cold_batch
        if (state.pending >= batch or first_today) and now >= state.retry_flush_at:
            self._flush(key_id, state, window=window, day=day, day_number=day_number, now=now)

    def _flush(
        self, key_id: str, state: _KeyState, *, window: int, day: str, day_number: int, now: float
    ) -> None:
        stale = state.totals.stale if state.totals is not None else ()
        try:
            state.totals = self.store.add(
                key_id,
                state.pending,
                window=window,
                in_window=state.pending_in_window if state.pending_window == window else 0,
                day=day,
                # A day after the day ends: nothing reads it then (TTL deletion is late anyway).
                expires=(day_number + 2) * DAY_SECONDS,
                remove=stale,
            )
        except UpstreamError as exc:
            # Fail open: keep the requests counted here, add them with a later flush.
            state.retry_flush_at = now + RETRY_FLUSH_AFTER_SECONDS
            logger.warning("key counters not written (key %s): %s", key_id, exc)
            return
        state.pending = state.pending_in_window = 0


__all__ = [
    "DAY_SECONDS",
    "MAX_COLD_BATCH",
    "MAX_HOT_BATCH",
    "PK_PREFIX",
    "CounterStore",
    "DynamoDBKeyCounters",
    "KeyLimits",
    "KeyRateLimitedError",
    "KeyRateLimiter",
    "Totals",
    "window_attribute",
]
