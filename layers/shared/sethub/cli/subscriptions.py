"""``sethub subscriptions``: subscriptions, their state, owner and last delivery outcome.

Reads only what is asked: one topic's subscriptions (``--topic``, a Query of its
partition) or those in a state (``--state``, a Query of the table's ``ByState`` index),
``--limit`` at a time; a listing cut short says on stderr how to go on (``--next TOKEN``).
``show TOPIC SUBSCRIPTION`` is one of them, named by its id or callback URL.
``last_outcome`` is its last delivery's (``delivered (200)``, ``failed (503)``, ``failed
(timeout)``) and ``last_outcome_at`` when: dispatch stores it when it changes kind, or at
most every 5 minutes while it stays the same (so a time may be that old).
``failing_since`` is when the subscription's deliveries started failing (no success
since): it is disabled after ``SETHUB_DISABLE_AFTER_SECONDS`` of that. The outcome of each
delivery of an event is ``sethub deliveries JTI``.
"""

from __future__ import annotations

import argparse
from typing import Any

from sethub import inventory
from sethub.cli.context import CommandFailedError, Context
from sethub.cli.output import when
from sethub.cli.target import UsageError

COLUMNS = [
    "topic",
    "subscription",
    "callback_host",
    "state",
    "owner",
    "format",
    "expires",
    "failing_since",
    "last_outcome",
    "last_outcome_at",
]


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    group = groups.add_parser(
        "subscriptions", help="subscriptions: state, owner, last outcome", description=__doc__
    )
    commands = group.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser(
        "list", parents=[common], help="subscriptions (active, expired, disabled, unsubscribed)"
    )
    listing.add_argument("--topic", help="only this topic's")
    listing.add_argument("--state", choices=inventory.STATES, help="only those in this state")
    listing.add_argument("--limit", type=_positive, default=None, help="at most this many (default: all)")
    listing.add_argument(
        "--next", default=None, metavar="TOKEN", help="go on where a --limit listing stopped"
    )
    listing.set_defaults(run=list_subscriptions)
    show = commands.add_parser(
        "show", parents=[common], help="one subscription: state, owner, lease, last outcome"
    )
    show.add_argument("topic")
    show.add_argument("subscription", help="its id (as listings print it) or its callback URL")
    show.set_defaults(run=show_subscription)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def list_subscriptions(context: Context) -> int:
    args = context.args
    try:
        page = inventory.subscriptions(
            context.clients.dynamodb,
            context.target.table(),
            now=context.now(),
            topic=args.topic,
            state=args.state,
            limit=args.limit,
            start=args.next,
        )
    except inventory.BadPageTokenError as exc:
        raise UsageError(str(exc)) from None
    context.emit([_row(info) for info in page.items], COLUMNS)
    if page.next is not None:
        context.note(f"more: sethub subscriptions list ... --next {page.next}")
    return 0


def show_subscription(context: Context) -> int:
    args = context.args
    info = inventory.subscription(
        context.clients.dynamodb,
        context.target.table(),
        now=context.now(),
        topic=args.topic,
        name=args.subscription,
    )
    if info is None:
        raise CommandFailedError(f"no subscription {args.subscription} of topic {args.topic}")
    context.emit(_row(info))
    return 0


def _row(info: inventory.SubscriptionInfo) -> dict[str, Any]:
    last = info.last_outcome
    return {
        "topic": info.topic,
        "subscription": info.subscription_id,
        "callback_host": info.callback_host,
        "state": info.state,
        "owner": info.owner,
        "format": info.format,
        "expires": when(info.expires_at),
        "failing_since": when(info.failing_since) if info.failing_since else None,
        "last_outcome": last.describe() if last else None,
        "last_outcome_at": when(last.at) if last else None,
    }
