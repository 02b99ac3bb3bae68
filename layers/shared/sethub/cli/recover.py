"""``sethub recover``: re-deliver a topic's events accepted since a time to ONE subscription.

Events are kept ``SETHUB_EVENT_RETENTION_DAYS`` (14 by default). Each is sent as the
subscription is now (its format, event filter, secret and signing scheme), one after
another in ``toe``/``iat`` order, from where this command runs, with the hub's network
guard and timeout; every attempt is in the delivery records. The first delivery that fails
goes to the retry queue with the retry schedule, and the rest of the window with it, unsent.
No other subscriber receives anything. ``--dry-run`` lists the window and sends nothing.

The subscription is named by its topic and callback URL (``sethub subscriptions list``).
Deployed, the callback must be reachable from this machine; in kms signing mode set
``SETHUB_SIGNING_KEY_IDS`` to the stack's ``SigningKeyIds`` output. Known limit: the secret
and the wrapped signing key are decrypted with DataKey, whose key policy lets only the
dispatch role decrypt (docs/operations.md, "Recovering what a subscriber missed").
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from sethub.archive import EventArchive
from sethub.cli.context import Context
from sethub.cli.target import UsageError
from sethub.keyring import signer_for
from sethub.outbound import GuardedHttp
from sethub.queues import QueueSender
from sethub.records import DeliveryRecords
from sethub.recovery import add_arguments, parse_time, recover
from sethub.retry import RetryPolicy
from sethub.settings import Settings
from sethub.store import SubscriptionStore

COLUMNS = ["jti", "toe", "status", "status_code"]


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    command = groups.add_parser(
        "recover",
        parents=[common],
        help="re-deliver a topic's kept events since a time to one subscription",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(command)
    command.set_defaults(run=recover_window)


def settings_for(context: Context) -> Settings:
    """The hub's settings as its functions have them: resources from the target, the rest from
    the environment (a deployed stack's defaults), and make local's own callback rules."""
    target = context.target
    base = Settings.from_env(context.env)
    local = target.kind == "local"
    settings = dataclasses.replace(
        base,
        table_name=target.table(),
        retry_queue_url=target.queue("retry_queue_url"),
        dead_letter_queue_url=target.queue("dead_letter_queue_url"),
        data_key_id=target.data_key_id or base.data_key_id,
        signing_mode=target.signing_mode or base.signing_mode,
        # make local lets callbacks be private and plain http (README, Settings).
        allow_private_callbacks=base.allow_private_callbacks or local,
        allow_http_callbacks=base.allow_http_callbacks or local,
    )
    if settings.signing_mode == "kms" and not settings.signing_key_ids:
        raise UsageError("kms signing mode: set SETHUB_SIGNING_KEY_IDS to the stack's SigningKeyIds output")
    return settings


def recover_window(context: Context) -> int:
    args = context.args
    settings = settings_for(context)
    clients = context.clients
    now = context.now()
    report = recover(
        archive=EventArchive(
            clients.dynamodb, settings.table_name, retention_days=settings.event_retention_days
        ),
        subscriptions=SubscriptionStore(clients, settings),
        topic=args.topic,
        callback=args.callback,
        since=parse_time(args.since, now=now),
        until=parse_time(args.until, now=now) if args.until else None,
        signer=signer_for(clients, settings),
        http=GuardedHttp.from_settings(settings),
        records=DeliveryRecords(clients, settings),
        sender=QueueSender(clients.sqs),
        retry_queue_url=settings.retry_queue_url,
        dead_letter_queue_url=settings.dead_letter_queue_url,
        policy=RetryPolicy.from_settings(settings),
        dry_run=args.dry_run,
        now=context.now,
    )
    queued = report.count("retrying") + report.count("queued")
    verb = "would send" if args.dry_run else "sent"
    context.note(
        f"{report.found} event(s) kept for the window, {report.wanted} wanted by the subscription; "
        f"{verb} {len(report.outcomes) - report.count('queued')}, {report.count('ok')} ok, "
        f"{queued} on the retry queue"
    )
    context.emit(report.outcomes, COLUMNS)
    return 0
