"""``sethub deliveries JTI``: did subscriber X get event Y, and what did it answer?

Every recorded attempt of one event (its ``jti``, the ``x-hub-messageId`` subscribers
receive), oldest first. Records name a callback by host and subscription id, never by
its URL; ``--callback URL`` keeps that URL's attempts. Records are kept 30 days. Exit 1
when none were found.
"""

from __future__ import annotations

import argparse
from typing import Any

from sethub.cli.context import CommandFailedError, Context
from sethub.deliveries import COLUMNS, attempts_of, line
from sethub.records import Attempt, DeliveryRecords
from sethub.settings import Settings


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    command = groups.add_parser(
        "deliveries", parents=[common], help="every delivery attempt of one event", description=__doc__
    )
    command.add_argument("jti", help="the event's jti (the x-hub-messageId its subscribers received)")
    command.add_argument("--callback", help="only the attempts to this callback URL")
    command.set_defaults(run=show_deliveries)


def row(attempt: Attempt) -> dict[str, Any]:
    return {
        "time": attempt.at,
        "topic": attempt.topic,
        "subscription": attempt.subscription_id,
        "callback_host": attempt.callback_host,
        "attempt": attempt.attempt,
        "status": attempt.status,
        "http": attempt.status_code,
        "duration_ms": attempt.duration_ms,
        "error": attempt.error,
    }


def show_deliveries(context: Context) -> int:
    records = DeliveryRecords(context.clients, Settings(table_name=context.target.table()))
    attempts = attempts_of(records, context.args.jti, callback=context.args.callback)
    if not attempts:
        to = " to that callback" if context.args.callback else ""
        raise CommandFailedError(
            f"no delivery attempts recorded for {context.args.jti}{to} (records are kept 30 days)"
        )
    rows = [row(attempt) for attempt in attempts]
    if not context.as_json:
        # People read times, scripts get epoch seconds.
        rows = [dict(zip(COLUMNS, line(attempt).split("\t"), strict=True)) for attempt in attempts]
    context.emit(rows, list(COLUMNS))
    return 0
