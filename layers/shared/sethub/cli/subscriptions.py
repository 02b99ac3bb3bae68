"""``sethub subscriptions``: every subscription, its state, owner and last delivery outcome.

The last outcome is the newest attempt among the delivery records of the last
``--hours`` (default 24); ``-`` when the subscription got nothing in that time.
"""

from __future__ import annotations

import argparse
from typing import Any

from sethub import inventory
from sethub.cli.context import Context
from sethub.cli.output import when

COLUMNS = ["topic", "subscription", "callback_host", "state", "owner", "format", "expires", "last", "last_at"]


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    group = groups.add_parser(
        "subscriptions", help="subscriptions: state, owner, last outcome", description=__doc__
    )
    commands = group.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser(
        "list", parents=[common], help="every subscription (active, expired, disabled, unsubscribed)"
    )
    listing.add_argument("--topic", help="only this topic's")
    listing.add_argument("--state", help="only those in this state (active, expired, disabled, unsubscribed)")
    listing.add_argument(
        "--hours", type=float, default=24.0, help="how far back to look for the last outcome (default 24)"
    )
    listing.set_defaults(run=list_subscriptions)


def list_subscriptions(context: Context) -> int:
    args = context.args
    table = context.target.table()
    now = context.now()
    found = inventory.subscriptions(context.clients.dynamodb, table, now=now, topic=args.topic)
    if args.state:
        found = [info for info in found if info.state == args.state]
    attempts = inventory.recent_attempts(context.clients.dynamodb, table, since=now - args.hours * 3600)
    rows = []
    for info in inventory.with_last_outcomes(found, attempts):
        last = info.last_outcome
        outcome = None
        if last is not None:
            code = "" if last.status_code is None else f" {last.status_code}"
            outcome = f"{last.status}{code}"
        rows.append(
            {
                "topic": info.topic,
                "subscription": info.subscription_id,
                "callback_host": info.callback_host,
                "state": info.state,
                "owner": info.owner,
                "format": info.format,
                "expires": when(info.expires_at),
                "last": outcome,
                "last_at": when(last.at) if last else None,
            }
        )
    context.emit(rows, COLUMNS)
    return 0
