"""Recovery: re-deliver a topic's kept events since a time to one subscription.

``recover`` reads the topic's archive (``sethub.archive``) for the window, keeps the events
the subscription wants now (its ``events`` filter), and sends them to that one callback,
one after another in ``toe``/``iat`` order, each built for the subscription as it is now:
its format (``jwt`` signed with the hub's current key, or ``json``, or the published bytes)
and its signing (``X-Hub-Signature`` or Standard Webhooks, current secret) through
``sethub.delivery``, the dispatcher's own request builder, over the guarded HTTP client
(network guard, timeout, response cap). No other subscription is contacted.

Why direct delivery and not retry-queue messages: the retry queue is an SQS standard queue
and dispatch sends a batch concurrently, so queued events would arrive in any order; sent
one by one, each waiting for its answer, they arrive in order. Every attempt is written to
the delivery records (``sethub deliveries show`` sees it). The first delivery that fails
joins the normal path: it goes to the retry queue with the retry schedule (a dead letter once
exhausted), and so does every later event of the window, unsent and due with it, so a
callback that is down again costs one request timeout, not one per event. ``410`` removes the
subscription and stops; an RFC 8935 ``400`` is final for that event, as for any delivery.

    python -m sethub.recovery --topic acme.login --callback https://crm.example/hook \\
        --since 2026-11-30T08:00:00Z
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from sethub import delivery, sets, webhooks
from sethub.archive import ArchivedEvent, EventArchive
from sethub.delivery import Http
from sethub.errors import SethubError
from sethub.hygiene import callback_label
from sethub.messages import ContentEvent, DeliveryRetry, PreparedPayload, SetEvent
from sethub.queues import Outgoing, QueueSender
from sethub.records import Attempt, DeliveryRecords
from sethub.retry import RetryPolicy, sqs_delay
from sethub.subscriptions import Subscription

BACKLOG_ERROR = "recovery: not sent, an earlier event of the window failed"


class Subscriptions(Protocol):
    def get_active(self, topic: str, callback: str, *, now: float) -> Subscription | None: ...
    def remove(self, topic: str, callback: str) -> None: ...


class Signer(Protocol):
    def sign(self, claims: Mapping[str, Any]) -> str: ...


@dataclass
class RecoveryReport:
    found: int = 0
    """Events of the topic kept for the window."""
    wanted: int = 0
    """Those the subscription's event filter lets through: what recovery sends."""
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    """Per event, in the order sent: ``jti``, ``toe``, ``status`` (ok, rejected, gone, retrying,
    dead, queued: handed to the retry queue unsent, would-send: a dry run)."""

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome["status"] == status)


class NoSubscriptionError(LookupError):
    """The topic has no live subscription for that callback."""


def payload_for(message: SetEvent | ContentEvent, fmt: str, signer: Signer) -> PreparedPayload:
    """What dispatch prepares for the event, for one format only (signed only for ``jwt``)."""
    if isinstance(message, ContentEvent):
        return PreparedPayload(
            jti=message.jti, content_type=message.content_type, content_b64=message.body_b64
        )
    claims_b64 = base64.b64encode(sets.claims_json(message.claims)).decode("ascii")
    # Signed as dispatch signs it: for this topic's subscribers (aud names the topic).
    jws = signer.sign(sets.bind_audience(message.claims, message.topic)) if fmt == "jwt" else None
    return PreparedPayload(jti=message.jti, jwt=jws, json_b64=claims_b64)


def _types(message: SetEvent | ContentEvent) -> frozenset[str] | None:
    if isinstance(message, ContentEvent):
        return None
    events = message.claims.get("events")
    return frozenset(events) if isinstance(events, dict) else frozenset()


def recover(
    *,
    archive: EventArchive,
    subscriptions: Subscriptions,
    topic: str,
    callback: str,
    since: float,
    until: float | None = None,
    signer: Signer,
    http: Http,
    records: DeliveryRecords | None,
    sender: QueueSender,
    retry_queue_url: str,
    dead_letter_queue_url: str = "",
    policy: RetryPolicy,
    dry_run: bool = False,
    now: Callable[[], float] = time.time,
) -> RecoveryReport:
    """Re-deliver ``topic``'s events kept since ``since`` (to ``until``) to ``callback`` only."""
    subscription = subscriptions.get_active(topic, callback, now=now())
    if subscription is None:
        raise NoSubscriptionError(f"no live subscription of {callback_label(topic, callback)} to that topic")
    kept = archive.events(topic, since=since, until=until, now=now())
    report = RecoveryReport(found=len(kept))
    wanted = [e for e in kept if webhooks.wanted(subscription.events, _types(e.message))]
    report.wanted = len(wanted)
    attempts: list[Attempt] = []
    backlog: list[Outgoing] = []
    due = 0.0
    try:
        for index, event in enumerate(wanted):
            message = event.message
            if dry_run:
                report.outcomes.append(_outcome(event, "would-send"))
                continue
            body, content_type = delivery.body_for(
                payload_for(message, subscription.format, signer), subscription.format
            )
            at = now()
            request = delivery.request_for(
                subscription,
                jti=message.jti,
                hub_url=message.hub_url,
                body=body,
                content_type=content_type,
                attempt=1,
                now=at,
            )
            outcome = delivery.send(http, request)
            status: Any = outcome.status
            if outcome.status == "failed":
                delay = policy.next_delay(1, retry_after=outcome.retry_after, throttled=outcome.throttled)
                retry = DeliveryRetry(
                    topic=topic,
                    callback=callback,
                    jti=message.jti,
                    hub_url=message.hub_url,
                    content_type=content_type,
                    body_b64=base64.b64encode(body).decode("ascii"),
                    attempts=1,
                    not_before=at + (delay or 0.0),
                    last_error=outcome.error,
                    subscribed_at=subscription.requested_at,
                )
                if delay is None:
                    sender.send(dead_letter_queue_url or retry_queue_url, [Outgoing(retry.to_json())])
                    status = "dead"
                else:
                    sender.send(retry_queue_url, [Outgoing(retry.to_json(), sqs_delay(delay))])
                    status = "retrying"
                due = at + (delay or 0.0)
            attempts.append(
                Attempt(
                    message.jti,
                    topic,
                    callback,
                    1,
                    status,
                    at,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    duration_ms=outcome.duration_ms,
                )
            )
            report.outcomes.append(_outcome(event, status, outcome.status_code))
            if outcome.status == "gone":
                # 410: the subscriber asked to be removed, as for any delivery.
                subscriptions.remove(topic, callback)
                break
            if outcome.status == "failed":
                backlog = [
                    _queued(later, subscription=subscription, signer=signer, due=due, at=now(), report=report)
                    for later in wanted[index + 1 :]
                ]
                break
    finally:
        if records is not None and attempts:
            records.write(attempts)
    if backlog:
        sender.send(retry_queue_url, backlog)
    return report


def _queued(
    event: ArchivedEvent,
    *,
    subscription: Subscription,
    signer: Signer,
    due: float,
    at: float,
    report: RecoveryReport,
) -> Outgoing:
    """An event not sent after a failure: a retry with no attempt made yet, due with the failed one."""
    message = event.message
    body, content_type = delivery.body_for(
        payload_for(message, subscription.format, signer), subscription.format
    )
    retry = DeliveryRetry(
        topic=subscription.topic,
        callback=subscription.callback,
        jti=message.jti,
        hub_url=message.hub_url,
        content_type=content_type,
        body_b64=base64.b64encode(body).decode("ascii"),
        attempts=0,
        not_before=due,
        last_error=BACKLOG_ERROR,
        subscribed_at=subscription.requested_at,
    )
    report.outcomes.append(_outcome(event, "queued"))
    return Outgoing(retry.to_json(), sqs_delay(due - at))


def _outcome(event: ArchivedEvent, status: str, status_code: int | None = None) -> dict[str, Any]:
    message = event.message
    toe = message.claims.get("toe") if isinstance(message, SetEvent) else None
    return {"jti": message.jti, "toe": toe, "status": status, "status_code": status_code}


def parse_time(text: str, *, now: float) -> float:
    """``2026-11-30T08:00:00Z`` (ISO 8601, UTC unless it says), Unix seconds, or ``6h``/``2d``/``30m`` ago."""
    value = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].replace(".", "", 1).isdigit():
        return now - float(value[:-1]) * units[value[-1]]
    if value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r} (ISO 8601, Unix seconds, or 6h / 2d ago)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """``python -m sethub.recovery``: the settings a function has (``SETHUB_*``), from the environment."""
    from sethub.clients import AwsClients  # noqa: PLC0415
    from sethub.keyring import signer_for  # noqa: PLC0415
    from sethub.outbound import GuardedHttp  # noqa: PLC0415
    from sethub.settings import Settings  # noqa: PLC0415
    from sethub.store import SubscriptionStore  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m sethub.recovery", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    out = out or sys.stdout
    settings = Settings.from_env()
    if not settings.table_name or not settings.retry_queue_url:
        parser.error(
            "set SETHUB_TABLE_NAME and SETHUB_RETRY_QUEUE_URL (and the hub's other SETHUB_* settings)"
        )
    clients = AwsClients()
    try:
        report = recover(
            archive=EventArchive(
                clients.dynamodb, settings.table_name, retention_days=settings.event_retention_days
            ),
            subscriptions=SubscriptionStore(clients, settings),
            topic=args.topic,
            callback=args.callback,
            since=parse_time(args.since, now=time.time()),
            until=parse_time(args.until, now=time.time()) if args.until else None,
            signer=signer_for(clients, settings),
            http=GuardedHttp.from_settings(settings),
            records=DeliveryRecords(clients, settings),
            sender=QueueSender(clients.sqs),
            retry_queue_url=settings.retry_queue_url,
            dead_letter_queue_url=settings.dead_letter_queue_url,
            policy=RetryPolicy.from_settings(settings),
            dry_run=args.dry_run,
        )
    except (SethubError, LookupError, ValueError) as exc:
        print(f"recovery stopped: {exc}", file=sys.stderr)
        return 1
    print_report(report, out, dry_run=args.dry_run)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", required=True, help="the topic whose events are re-delivered")
    parser.add_argument("--callback", required=True, help="the one subscription's callback URL")
    parser.add_argument(
        "--since", required=True, help="events accepted since: ISO 8601 (UTC), Unix seconds, or 6h / 2d ago"
    )
    parser.add_argument("--until", default=None, help="and up to (default: now)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be sent, send nothing")


def print_report(report: RecoveryReport, out: TextIO, *, dry_run: bool) -> None:
    for outcome in report.outcomes:
        code = f" {outcome['status_code']}" if outcome["status_code"] is not None else ""
        print(f"{outcome['status']}{code} {outcome['jti']}", file=out)
    sent = "would send" if dry_run else "sent"
    print(
        f"{report.found} event(s) kept, {report.wanted} wanted by the subscription; {sent} "
        f"{len(report.outcomes) - report.count('queued')}, {report.count('ok')} ok, "
        f"{report.count('retrying') + report.count('queued')} on the retry queue",
        file=out,
    )


if __name__ == "__main__":
    raise SystemExit(main())
