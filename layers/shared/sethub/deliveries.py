"""Every recorded delivery attempt of one event (``sethub deliveries JTI``): did subscriber X
get event Y, and what did it answer?

Attempts of one event (its ``jti``, the ``x-hub-messageId`` header subscribers receive),
oldest first, one tab-separated line per attempt: time (UTC), topic, subscription id,
callback host, attempt, status, HTTP code, duration, error. Records name a callback by
host and subscription id, never by its URL (its path or query may carry a token);
``callback`` keeps that URL's attempts. Attempts are kept 30 days.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sethub.records import Attempt, DeliveryRecords
from sethub.subscriptions import subscription_id

COLUMNS = (
    "time",
    "topic",
    "subscription",
    "callback_host",
    "attempt",
    "status",
    "http",
    "duration_ms",
    "error",
)


def attempts_of(records: DeliveryRecords, jti: str, *, callback: str | None = None) -> list[Attempt]:
    """The event's attempts, oldest first, only those to ``callback`` (a URL) when it is given."""
    found = [
        a
        for a in records.for_event(jti)
        if callback is None or a.subscription_id == subscription_id(a.topic, callback)
    ]
    return sorted(found, key=lambda a: (a.at, a.topic, a.subscription_id, a.attempt))


def line(attempt: Attempt) -> str:
    at = datetime.fromtimestamp(attempt.at, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    fields = (
        at,
        attempt.topic,
        attempt.subscription_id,
        attempt.callback_host,
        str(attempt.attempt),
        attempt.status,
        "-" if attempt.status_code is None else str(attempt.status_code),
        str(attempt.duration_ms),
        # Fields are tab-separated: keep each one on its line and in its column.
        " ".join(attempt.error.split()) or "-",
    )
    return "\t".join(fields)
