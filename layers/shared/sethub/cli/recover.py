"""``sethub recover``: re-deliver a topic's events accepted since a time to ONE subscription.

``start`` keeps a recovery request in the hub table and queues it for dispatch, which
sends the window's events (kept ``SETHUB_EVENT_RETENTION_DAYS``, 14 by default) to that
one subscription as it is now (its format, event filter, secret and signing scheme), one
after another in ``toe``/``iat`` order, from the hub, with the hub's network guard and
timeout; every attempt is in the delivery records. The first delivery that fails goes to
the retry queue with the retry schedule, and the rest of the window with it, unsent. No
other subscriber receives anything. It prints the recovery's id; ``status ID`` shows how
far it got, ``--wait`` waits for it to finish. A recovery that stops midway (a crash)
continues where it stopped; an event in flight then may be sent twice (at least once).
``--dry-run`` lists the window from here and sends nothing.

The subscription is named by its topic and callback URL (``sethub subscriptions list``).
Exit codes: 0 done (or queued, without ``--wait``), 1 failed, stopped (410 Gone), not
found, or still running when ``--wait`` gave up.
"""

from __future__ import annotations

import argparse
from typing import Any

from sethub.archive import EventArchive
from sethub.cli.context import CommandFailedError, Context
from sethub.cli.output import when
from sethub.queues import QueueSender
from sethub.recovery import (
    FINISHED,
    RecoveryRequest,
    RecoveryStore,
    SubscriptionPeek,
    parse_time,
    recover,
    request_recovery,
)
from sethub.retry import RetryPolicy
from sethub.settings import Settings

COLUMNS = ["jti", "toe", "status", "status_code"]
POLL_SECONDS = 1.0


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    group = groups.add_parser(
        "recover",
        help="re-deliver a topic's kept events since a time to one subscription",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = group.add_subparsers(dest="command", required=True, metavar="COMMAND")
    start = commands.add_parser("start", parents=[common], help="queue a recovery; prints its id")
    start.add_argument("--topic", required=True, help="the topic whose events are re-delivered")
    start.add_argument("--callback", required=True, help="the one subscription's callback URL")
    start.add_argument(
        "--since", required=True, help="events accepted since: ISO 8601 (UTC), Unix seconds, or 6h / 2d ago"
    )
    start.add_argument("--until", default=None, help="and up to (default: now)")
    start.add_argument("--dry-run", action="store_true", help="list what would be sent, send nothing")
    _wait_options(start)
    start.set_defaults(run=start_recovery)
    status = commands.add_parser("status", parents=[common], help="how far a recovery got")
    status.add_argument("recovery_id", help="the id recover start printed")
    _wait_options(status)
    status.set_defaults(run=show_recovery)


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action="store_true", help="wait until it has finished")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="with --wait: give up after this many seconds (900)"
    )


def _store(context: Context) -> RecoveryStore:
    return RecoveryStore(context.clients.dynamodb, context.target.table())


def start_recovery(context: Context) -> int:
    args = context.args
    now = context.now()
    since = parse_time(args.since, now=now)
    until = parse_time(args.until, now=now) if args.until else None
    table = context.target.table()
    peek = SubscriptionPeek(context.clients.dynamodb, table)
    if args.dry_run:
        return _dry_run(context, peek, since=since, until=until)
    request = request_recovery(
        store=_store(context),
        peek=peek,
        sender=QueueSender(context.clients.sqs),
        events_queue_url=context.target.queue("events_queue_url"),
        topic=args.topic,
        callback=args.callback,
        since=since,
        until=until,
        now=now,
    )
    context.note(f"recovery {request.recovery_id} queued: sethub recover status {request.recovery_id}")
    return _report(context, request)


def show_recovery(context: Context) -> int:
    request = _store(context).get(context.args.recovery_id)
    if request is None:
        raise CommandFailedError(f"no recovery {context.args.recovery_id} (kept 30 days)")
    return _report(context, request)


def _report(context: Context, request: RecoveryRequest) -> int:
    if context.args.wait:
        deadline = context.now() + context.args.timeout
        store = _store(context)
        while request.status not in FINISHED and context.now() < deadline:
            context.sleep(POLL_SECONDS)
            request = store.get(request.recovery_id) or request
    view = request.view()
    if not context.as_json:
        for name in ("since", "until", "requested_at", "updated_at", "finished_at"):
            view[name] = when(view[name])
    context.emit(view)
    if request.status in ("failed", "stopped"):
        raise CommandFailedError(f"recovery {request.recovery_id} {request.status}: {request.error}")
    if context.args.wait and request.status not in FINISHED:
        raise CommandFailedError(
            f"recovery {request.recovery_id} still {request.status} after {context.args.timeout:g} s"
        )
    return 0


def _dry_run(context: Context, peek: SubscriptionPeek, *, since: float, until: float | None) -> int:
    """The window as dispatch would send it, read from here (nothing is decrypted or sent)."""
    args = context.args
    settings = Settings.from_env(context.env)
    report = recover(
        archive=EventArchive(
            context.clients.dynamodb, context.target.table(), retention_days=settings.event_retention_days
        ),
        subscriptions=peek,
        topic=args.topic,
        callback=args.callback,
        since=since,
        until=until,
        signer=_NoSigner(),
        http=_NoHttp(),
        records=None,
        sender=QueueSender(context.clients.sqs),
        retry_queue_url="",
        policy=RetryPolicy.from_settings(settings),
        dry_run=True,
        now=context.now,
    )
    context.note(
        f"{report.found} event(s) kept for the window, {report.wanted} wanted by the subscription; "
        f"would send {len(report.outcomes)}"
    )
    context.emit(report.outcomes, COLUMNS)
    return 0


class _NoSigner:
    def sign(self, claims: Any) -> str:
        raise AssertionError("a dry run signs nothing")


class _NoHttp:
    def request(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a dry run sends nothing")
