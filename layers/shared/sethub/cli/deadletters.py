"""``sethub dead-letters``: what is on the dead-letter queues, and replay of exhausted deliveries.

``list`` peeks (messages stay on the queue, visible again at once). ``replay`` moves
delivery records from the deliveries' dead-letter queue back onto the retry queue with
their attempts reset: each gets the whole retry schedule again, and leaves the
dead-letter queue only once its re-send succeeded. Events and verifications that
failed repeatedly are on their own dead-letter queues (``--queue events|verify``):
docs/operations.md says how to redrive those.
"""

from __future__ import annotations

import argparse
import io
from typing import Any

from sethub.cli.context import Context
from sethub.replay import peek, replay

QUEUES = {
    "deliveries": "dead_letter_queue_url",
    "events": "events_dead_letter_queue_url",
    "verify": "verify_dead_letter_queue_url",
}
COLUMNS = ["message_id", "kind", "jti", "topic", "callback", "attempts", "last_error"]


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    group = groups.add_parser("dead-letters", help="dead letters: list, replay", description=__doc__)
    commands = group.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", parents=[common], help="peek at dead-lettered messages")
    listing.add_argument("--queue", choices=sorted(QUEUES), default="deliveries")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.set_defaults(run=list_dead_letters)
    move = commands.add_parser(
        "replay", parents=[common], help="put dead-lettered deliveries back on the retry queue"
    )
    move.add_argument("--limit", type=int, default=None, help="move at most this many")
    move.add_argument("--dry-run", action="store_true", help="list what would move, change nothing")
    move.set_defaults(run=replay_dead_letters)


def list_dead_letters(context: Context) -> int:
    url = context.target.queue(QUEUES[context.args.queue])
    found = peek(context.clients.sqs, url, limit=context.args.limit)
    context.emit([dict(letter.__dict__) for letter in found], COLUMNS)
    return 0


def replay_dead_letters(context: Context) -> int:
    args = context.args
    lines = io.StringIO()
    report = replay(
        context.clients.sqs,
        source_url=context.target.queue("dead_letter_queue_url"),
        target_url=context.target.queue("retry_queue_url"),
        limit=args.limit,
        dry_run=args.dry_run,
        out=lines,
    )
    if not context.as_json:
        context.out.write(lines.getvalue())
    context.emit({"dry_run": args.dry_run, "moved": report.moved, "left_in_place": report.skipped})
    return 0
