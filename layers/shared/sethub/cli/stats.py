"""``sethub stats``: the last hour (``--minutes``) in numbers, from what the hub stores.

Deliveries by outcome, latency p50/p99 and retries: on a deployed stack (``--stack``) from
CloudWatch, the metrics dispatch publishes (one ``GetMetricData``); on ``make local`` (no
CloudWatch) from the delivery records in the hub table (every attempt recorded in the
window; latency is an attempt's duration, from resolving the callback's host to the end of
its answer; records have no index by time, so this reads the local table whole). Dead
letters and queued work from the queues' ``ApproximateNumberOfMessages`` now; disabled
subscriptions from the table's ``ByState`` index now (a count of index entries).
``--json`` includes where each number comes from. The CloudWatch dashboard (stack output
``DashboardUrl``) shows the same over time.
"""

from __future__ import annotations

import argparse
from typing import Any

from sethub import hubstats, inventory
from sethub.cli.context import Context
from sethub.cli.output import when

QUEUES = {
    "events": "events_queue_url",
    "retry": "retry_queue_url",
    "dead_letters": "dead_letter_queue_url",
    "events_dead_letters": "events_dead_letter_queue_url",
    "verify_dead_letters": "verify_dead_letter_queue_url",
}


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    command = groups.add_parser(
        "stats",
        parents=[common],
        help="deliveries, latency, retries, dead letters: the last hour",
        description=__doc__,
    )
    command.add_argument("--minutes", type=float, default=60.0, help="the window (default 60)")
    command.set_defaults(run=show_stats)


def show_stats(context: Context) -> int:
    now = context.now()
    since = now - context.args.minutes * 60
    table = context.target.table()
    db = context.clients.dynamodb
    disabled = inventory.count(db, table, "disabled")
    depths = hubstats.queue_depths(
        context.clients.sqs, {name: context.target.queues.get(attr, "") for name, attr in QUEUES.items()}
    )
    if context.target.kind == "stack":
        # Deployed: CloudWatch has the delivery numbers; the records would need a scan.
        stats = hubstats.cloudwatch_summary(
            context.clients.cloudwatch, since=since, until=now, queues=depths, disabled_subscriptions=disabled
        )
    else:
        # make local has no CloudWatch: its (small) table's delivery records.
        attempts = inventory.recent_attempts(db, table, since=since)
        stats = hubstats.summarise(
            attempts, since=since, until=now, queues=depths, disabled_subscriptions=disabled
        )
    if context.as_json:
        context.emit(hubstats.as_dict(stats))
        return 0
    lines: dict[str, Any] = {"window": f"{when(since)} .. {when(now)}", "attempts": stats.attempts}
    lines |= {f"  {outcome}": count for outcome, count in stats.outcomes.items()}
    lines |= {
        "latency p50 ms": stats.latency_p50_ms,
        "latency p99 ms": stats.latency_p99_ms,
        "retries": stats.retries,
        "dead (in window)": stats.dead_in_window,
        **{f"queued {name.replace('_', ' ')}": depth for name, depth in stats.queues.items()},
        "disabled subscriptions": stats.disabled_subscriptions,
    }
    context.emit(lines)
    return 0
