"""``python -m sethub.deliveries``: did subscriber X get event Y, and what did it answer?

Prints every recorded delivery attempt of one event (its ``jti``, the
``x-hub-messageId`` header subscribers receive), oldest first, one tab-separated line
per attempt: time (UTC), topic, subscription id, callback host, attempt, status, HTTP
code, duration, error. Records name a callback by host and subscription id, never by its
URL (its path or query may carry a token); ``--callback URL`` finds that URL's attempts.
Reads the hub table (``SETHUB_TABLE_NAME`` or ``--table``); attempts are kept 30 days.
Exits 0 when attempts were found, 1 when none were (or the table could not be read).

    python -m sethub.deliveries 8f14e45f-ceea-467f-a0e6-2b0e5d3f1a91 --callback https://crm.example/hook
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TextIO

from sethub.clients import AwsClients
from sethub.errors import UpstreamError
from sethub.records import Attempt, DeliveryRecords
from sethub.settings import Settings
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


def show(attempts: Iterable[Attempt], out: TextIO) -> None:
    print("\t".join(COLUMNS), file=out)
    for attempt in attempts:
        print(line(attempt), file=out)


def main(argv: Sequence[str] | None = None, *, clients: AwsClients | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sethub.deliveries", description=__doc__.split("\n\n")[0])
    parser.add_argument("jti", help="the event's jti (the x-hub-messageId its subscribers received)")
    parser.add_argument("--callback", default=None, help="only the attempts to this callback URL")
    parser.add_argument("--table", default=os.environ.get("SETHUB_TABLE_NAME", ""), help="the hub table")
    args = parser.parse_args(argv)
    if not args.table:
        parser.error("set SETHUB_TABLE_NAME or pass --table")
    records = DeliveryRecords(clients or AwsClients(), Settings(table_name=args.table))
    try:
        attempts = attempts_of(records, args.jti, callback=args.callback)
    except UpstreamError as exc:
        print(f"deliveries: {exc}", file=sys.stderr)
        return 1
    if not attempts:
        to = " to that callback" if args.callback else ""
        print(f"no delivery attempts recorded for {args.jti}{to} (records are kept 30 days)", file=sys.stderr)
        return 1
    show(attempts, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
