"""Recovery: re-deliver a topic's kept events since a time to one subscription.

A recovery is a request kept in the hub table and run by dispatch (``sethub recover start``
writes it and puts a ``RecoverWindow`` message naming it on the events queue):

    RECOVERY#<id>  RECOVERY   topic, callback, window, status, counts, cursor, lease

Why dispatch runs it and not the operator's process: the subscription's secret and the
wrapped signing key are decrypted with DataKey, whose key policy lets only the dispatch
role decrypt them; dispatch also has the hub's network position, guard and settings.

``recover`` reads the topic's archive (``sethub.archive``) for the window, keeps the events
the subscription wants now (its ``events`` filter), and sends them to that one callback,
one after another in ``toe``/``iat`` order, each built for the subscription as it is now:
its format (``jwt`` signed with the hub's current key, or ``json``, or the published bytes)
and its signing (``X-Hub-Signature`` or Standard Webhooks, current secret) through
``sethub.delivery``, the dispatcher's own request builder. No other subscription is
contacted. Sent one by one, each waiting for its answer, they arrive in order (the retry
queue, a standard queue consumed concurrently, would not keep it).

Every attempt is written to the delivery records as it is made. The first delivery that
fails joins the normal path: it goes to the retry queue with the retry schedule (a dead
letter once exhausted), and so does every later event of the window, unsent and due with
it, so a callback that is down again costs one request timeout, not one per event. ``410``
removes the subscription and stops the recovery; an RFC 8935 ``400`` is final for that
event, as for any delivery.

Resumable, at least once: after each event the request's ``cursor`` (the event's place in
the order) and counts are saved. A run holds a lease on the request for as long as its
invocation may live; when its time is up it saves, lets go, and queues the same message
again, and the next run continues after the cursor. A run that crashes leaves its message
on the queue: SQS delivers it again once the visibility timeout (longer than any lease)
has passed, and that run continues after the cursor, so an event whose delivery was in
flight at the crash may be sent twice (receivers deduplicate on ``jti``). The window's end
is fixed when the request is made, so a long recovery does not chase new events (those are
delivered to the subscription the normal way).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from sethub import delivery, sets, webhooks
from sethub.archive import ArchivedEvent, EventArchive
from sethub.delivery import Http
from sethub.errors import UpstreamError, aws_error_code
from sethub.hygiene import callback_host, callback_label
from sethub.messages import ContentEvent, DeliveryRetry, PreparedPayload, RecoverWindow, SetEvent
from sethub.queues import Outgoing, QueueSender
from sethub.records import Attempt
from sethub.retry import RetryPolicy, sqs_delay
from sethub.subscriptions import Subscription, subscription_id, subscription_key, topic_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

BACKLOG_ERROR = "recovery: not sent, an earlier event of the window failed"
RECOVERY_PREFIX = "RECOVERY#"
RECOVERY_SORT_KEY = "RECOVERY"
KEEP_SECONDS = 30 * 86400
"""A recovery request (its status) is kept 30 days, as delivery records are."""
DEFAULT_LEASE_SECONDS = 300.0
"""A run's lease when its invocation has no time limit (tests, local runs)."""
LEASE_MARGIN_SECONDS = 5.0
FINISHED = ("done", "stopped", "failed")
OUTCOMES = ("ok", "retrying", "queued", "dead", "rejected")
"""A request in one of these states is never run again."""

Cursor = tuple[float, float, float, str]


class Subscriptions(Protocol):
    def get_active(self, topic: str, callback: str, *, now: float) -> Subscription | None: ...
    def remove(self, topic: str, callback: str) -> None: ...


class Signer(Protocol):
    def sign(self, claims: Mapping[str, Any]) -> str: ...


class Records(Protocol):
    def write(self, attempts: Sequence[Attempt]) -> None: ...


@dataclass
class RecoveryReport:
    found: int = 0
    """Events of the topic kept for the window."""
    wanted: int = 0
    """Those the subscription's event filter lets through: what recovery sends."""
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    """Per event, in the order sent: ``jti``, ``toe``, ``status`` (ok, rejected, gone, retrying,
    dead, queued: handed to the retry queue unsent, would-send: a dry run)."""
    attempts: list[Attempt] = field(default_factory=list)
    """The delivery attempts made (as recorded)."""
    complete: bool = True
    """False when ``stop`` said to stop before the window was through."""
    gone: bool = False
    """The subscriber answered 410: its subscription is removed."""

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
    records: Records | None,
    sender: QueueSender,
    retry_queue_url: str,
    dead_letter_queue_url: str = "",
    policy: RetryPolicy,
    dry_run: bool = False,
    after: Cursor | None = None,
    stop: Callable[[], bool] | None = None,
    on_progress: Callable[[Cursor, list[dict[str, Any]]], None] | None = None,
    on_window: Callable[[RecoveryReport], None] | None = None,
    now: Callable[[], float] = time.time,
) -> RecoveryReport:
    """Re-deliver ``topic``'s events kept since ``since`` (to ``until``) to ``callback`` only.

    ``after``: continue after this place in the order (a saved cursor); ``stop``: asked
    before each request, True ends the run early (``complete`` False); ``on_progress``:
    called with the cursor and the new outcomes once they are settled; ``on_window``: with
    the report once the window is read (``found``, ``wanted``).
    """
    subscription = subscriptions.get_active(topic, callback, now=now())
    if subscription is None:
        raise NoSubscriptionError(f"no live subscription of {callback_label(topic, callback)} to that topic")
    kept = archive.events(topic, since=since, until=until, now=now())
    report = RecoveryReport(found=len(kept))
    wanted = [e for e in kept if webhooks.wanted(subscription.events, _types(e.message))]
    report.wanted = len(wanted)
    if on_window is not None:
        on_window(report)
    if after is not None:
        wanted = [e for e in wanted if e.order() > tuple(after)]
    sending = _Sending(
        subscription,
        signer,
        http,
        sender,
        retry_queue_url,
        dead_letter_queue_url or retry_queue_url,
        policy,
        now,
    )
    for index, event in enumerate(wanted):
        if dry_run:
            report.outcomes.append(_outcome(event, "would-send"))
            continue
        if stop is not None and stop():
            report.complete = False
            break
        attempt, due = sending.send(event)
        report.attempts.append(attempt)
        if records is not None:
            # Written as made: a run that crashes later keeps the record of what it sent.
            records.write([attempt])
        new = [_outcome(event, attempt.status, attempt.status_code)]
        rest = wanted[index + 1 :] if due is not None else []
        if rest:
            sending.queue(rest, due=due or 0.0)
            new += [_outcome(later, "queued") for later in rest]
        report.outcomes.extend(new)
        if on_progress is not None:
            on_progress((rest or [event])[-1].order(), new)
        if attempt.status == "gone":
            # 410: the subscriber asked to be removed, as for any delivery.
            subscriptions.remove(topic, callback)
            report.gone = True
            break
        if due is not None:
            break
    return report


@dataclass
class _Sending:
    """One recovery's deliveries: the subscription as it is now, and where failures go."""

    subscription: Subscription
    signer: Signer
    http: Http
    sender: QueueSender
    retry_queue_url: str
    dead_letter_queue_url: str
    policy: RetryPolicy
    now: Callable[[], float]

    def send(self, event: ArchivedEvent) -> tuple[Attempt, float | None]:
        """Deliver one event; a failure is handed to the retry queue (or dead letters), and
        the time it is due comes back with the attempt (None: no failure)."""
        subscription, message = self.subscription, event.message
        body, content_type = delivery.body_for(
            payload_for(message, subscription.format, self.signer), subscription.format
        )
        at = self.now()
        request = delivery.request_for(
            subscription,
            jti=message.jti,
            hub_url=message.hub_url,
            body=body,
            content_type=content_type,
            attempt=1,
            now=at,
        )
        outcome = delivery.send(self.http, request)
        status: Any = outcome.status
        due = None
        if outcome.status == "failed":
            delay = self.policy.next_delay(1, retry_after=outcome.retry_after, throttled=outcome.throttled)
            due = at + (delay or 0.0)
            retry = _retry(
                subscription, message, body, content_type, attempts=1, due=due, error=outcome.error
            )
            if delay is None:
                self.sender.send(self.dead_letter_queue_url, [Outgoing(retry.to_json())])
                status = "dead"
            else:
                self.sender.send(self.retry_queue_url, [Outgoing(retry.to_json(), sqs_delay(delay))])
                status = "retrying"
        attempt = Attempt(
            message.jti,
            subscription.topic,
            subscription.callback,
            1,
            status,
            at,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        )
        return attempt, due

    def queue(self, rest: list[ArchivedEvent], *, due: float) -> None:
        """The window's events after a failure: to the retry queue unsent, due with it."""
        at = self.now()
        backlog = [
            _queued(event, subscription=self.subscription, signer=self.signer, due=due, at=at)
            for event in rest
        ]
        self.sender.send(self.retry_queue_url, backlog)


def _queued(
    event: ArchivedEvent, *, subscription: Subscription, signer: Signer, due: float, at: float
) -> Outgoing:
    """An event not sent after a failure: a retry with no attempt made yet, due with the failed one."""
    message = event.message
    body, content_type = delivery.body_for(
        payload_for(message, subscription.format, signer), subscription.format
    )
    retry = _retry(subscription, message, body, content_type, attempts=0, due=due, error=BACKLOG_ERROR)
    return Outgoing(retry.to_json(), sqs_delay(due - at))


def _retry(
    subscription: Subscription,
    message: SetEvent | ContentEvent,
    body: bytes,
    content_type: str,
    *,
    attempts: int,
    due: float,
    error: str,
) -> DeliveryRetry:
    """``message`` for the retry queue, with the bytes built for ``subscription``: a failed
    send (``attempts=1``) and the events queued unsent behind it (``attempts=0``) alike."""
    return DeliveryRetry(
        topic=subscription.topic,
        callback=subscription.callback,
        jti=message.jti,
        hub_url=message.hub_url,
        content_type=content_type,
        body_b64=base64.b64encode(body).decode("ascii"),
        attempts=attempts,
        not_before=due,
        last_error=error,
        subscribed_at=subscription.requested_at,
    )


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


# -- the request, as kept in the hub table --------------------------------------------


@dataclass(frozen=True)
class RecoveryRequest:
    """A recovery and how far it got."""

    recovery_id: str
    topic: str
    callback: str
    since: float
    until: float
    requested_at: float
    status: str = "queued"
    """queued, running, done, stopped (410: the subscription is gone), failed (see ``error``)."""
    found: int | None = None
    wanted: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    """Outcomes so far, by status (ok, rejected, retrying, dead, queued, gone)."""
    cursor: Cursor | None = None
    last_jti: str = ""
    error: str = ""
    updated_at: float = 0.0
    finished_at: float = 0.0
    runs: int = 0
    """Runs that claimed it (one per dispatch invocation it took)."""

    def view(self) -> dict[str, Any]:
        """What an operator sees: the callback by host and subscription id, never its URL."""
        sent = sum(n for status, n in self.counts.items() if status != "queued")
        return {
            "recovery": self.recovery_id,
            "status": self.status,
            "topic": self.topic,
            "subscription": subscription_id(self.topic, self.callback),
            "callback_host": callback_host(self.callback),
            "since": self.since,
            "until": self.until,
            "found": self.found,
            "wanted": self.wanted,
            "sent": sent,
            **{
                status: self.counts.get(status, 0)
                for status in ("ok", "retrying", "queued", "dead", "rejected")
            },
            "last_jti": self.last_jti or None,
            "error": self.error or None,
            "requested_at": self.requested_at,
            "updated_at": self.updated_at or None,
            "finished_at": self.finished_at or None,
            "runs": self.runs,
        }


def new_recovery_id() -> str:
    return secrets.token_hex(8)


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": f"{value:.6f}" if isinstance(value, float) else str(value)}


def _key(recovery_id: str) -> dict[str, dict[str, str]]:
    return {"pk": _s(f"{RECOVERY_PREFIX}{recovery_id}"), "sk": _s(RECOVERY_SORT_KEY)}


def _request(item: Mapping[str, Any]) -> RecoveryRequest:
    def number(name: str) -> float | None:
        return float(item[name]["N"]) if name in item else None

    cursor = json.loads(item["cursor"]["S"]) if "cursor" in item else None
    found, wanted = number("found"), number("wanted")
    return RecoveryRequest(
        recovery_id=item["pk"]["S"].removeprefix(RECOVERY_PREFIX),
        topic=item["topic"]["S"],
        callback=item["callback"]["S"],
        since=float(item["since"]["N"]),
        until=float(item["until"]["N"]),
        requested_at=float(item["requested_at"]["N"]),
        status=item.get("status", {}).get("S", "queued"),
        found=None if found is None else int(found),
        wanted=None if wanted is None else int(wanted),
        counts={k: int(v["N"]) for k, v in item.get("counts", {}).get("M", {}).items()},
        cursor=tuple(cursor) if cursor else None,  # type: ignore[arg-type]
        last_jti=item.get("last_jti", {}).get("S", ""),
        error=item.get("error", {}).get("S", ""),
        updated_at=number("updated_at") or 0.0,
        finished_at=number("finished_at") or 0.0,
        runs=int(number("runs") or 0),
    )


class RecoveryStore:
    """Recovery requests in the hub table. Every change a run makes is conditioned on its
    lease, so two runs of one request (an SQS duplicate) never both send."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    def create(self, request: RecoveryRequest) -> None:
        item = {
            **_key(request.recovery_id),
            "topic": _s(request.topic),
            "callback": _s(request.callback),
            "since": _n(request.since),
            "until": _n(request.until),
            "requested_at": _n(request.requested_at),
            "status": _s("queued"),
            "counts": {"M": {}},
            "runs": _n(0),
            "ttl": _n(int(request.requested_at) + KEEP_SECONDS),
        }
        self._call(
            "keep a recovery request",
            self._db.put_item,
            TableName=self._table,
            Item=item,
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get(self, recovery_id: str) -> RecoveryRequest | None:
        result = self._call(
            "read a recovery request",
            self._db.get_item,
            TableName=self._table,
            Key=_key(recovery_id),
            ConsistentRead=True,
        )
        item = result.get("Item")
        return _request(item) if item else None

    def claim(
        self, recovery_id: str, owner: str, *, now: float, lease_seconds: float
    ) -> RecoveryRequest | None:
        """Take the request to run it; None if it is finished, unknown, or another run holds it."""
        try:
            result = self._db.update_item(
                TableName=self._table,
                Key=_key(recovery_id),
                UpdateExpression="SET #status = :running, lease_owner = :owner, lease_until = :until, "
                "updated_at = :now ADD runs :one",
                ConditionExpression="attribute_exists(pk) AND #status IN (:queued, :running) AND "
                "(attribute_not_exists(lease_until) OR lease_until < :now)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":running": _s("running"),
                    ":queued": _s("queued"),
                    ":owner": _s(owner),
                    ":until": _n(now + lease_seconds),
                    ":now": _n(now),
                    ":one": _n(1),
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise UpstreamError(f"DynamoDB could not claim a recovery: {aws_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise UpstreamError(f"DynamoDB could not claim a recovery: {aws_error_code(exc)}") from exc
        return _request(result["Attributes"])

    def save(
        self,
        request: RecoveryRequest,
        owner: str,
        *,
        now: float,
        status: str | None = None,
        error: str = "",
        release: bool = False,
    ) -> None:
        """Save ``request``'s progress (cursor, counts, window size); finish or let go of it."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {
            ":owner": _s(owner),
            ":now": _n(now),
            ":counts": {"M": {k: _n(v) for k, v in request.counts.items()}},
        }
        sets_ = ["counts = :counts", "updated_at = :now"]
        removes: list[str] = []
        if request.cursor is not None:
            sets_.append("#cursor = :cursor")
            names["#cursor"] = "cursor"
            values[":cursor"] = _s(json.dumps(list(request.cursor)))
        for name in ("found", "wanted"):
            value = getattr(request, name)
            if value is not None:
                # Reserved words ("found"): by name.
                sets_.append(f"#{name} = :{name}")
                names[f"#{name}"] = name
                values[f":{name}"] = _n(value)
        if request.last_jti:
            sets_.append("last_jti = :jti")
            values[":jti"] = _s(request.last_jti)
        if status is not None:
            sets_ += ["#status = :status"]
            names["#status"] = "status"
            values[":status"] = _s(status)
            if status in FINISHED:
                sets_.append("finished_at = :now")
        if error:
            sets_.append("#error = :error")
            names["#error"] = "error"
            values[":error"] = _s(error)
        if release or status in FINISHED:
            removes = ["lease_owner", "lease_until"]
        expression = "SET " + ", ".join(sets_) + (" REMOVE " + ", ".join(removes) if removes else "")
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": _key(request.recovery_id),
            "UpdateExpression": expression,
            "ConditionExpression": "lease_owner = :owner",
            "ExpressionAttributeValues": values,
        }
        if names:  # DynamoDB refuses names the expression does not use
            kwargs["ExpressionAttributeNames"] = names
        try:
            self._db.update_item(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            # Lost the lease (ConditionalCheckFailed) or DynamoDB failed: stop this run; the
            # message comes back and the request continues from what was saved.
            raise UpstreamError(
                f"DynamoDB could not save a recovery's progress: {aws_error_code(exc)}"
            ) from exc

    def _call(self, what: str, call: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return call(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"DynamoDB could not {what}: {aws_error_code(exc)}") from exc


class SubscriptionPeek:
    """A subscription read without its secret (no KMS call): whether it is live and which
    events it wants. The operator's process checks a request and lists a dry run with it."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    def get_active(self, topic: str, callback: str, *, now: float) -> Subscription | None:
        try:
            item = self._db.get_item(
                TableName=self._table,
                Key={"pk": _s(topic_key(topic)), "sk": _s(subscription_key(callback))},
                ProjectionExpression="#state, expires_at, events, #format, requested_at, lease_seconds",
                ExpressionAttributeNames={"#state": "state", "#format": "format"},
                ConsistentRead=True,
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"DynamoDB could not read a subscription: {aws_error_code(exc)}") from exc
        if item is None or item.get("state", {}).get("S") != "active":
            return None
        expires_at = int(item.get("expires_at", {}).get("N", "0"))
        if expires_at <= now:
            return None
        return Subscription(
            topic=topic,
            callback=callback,
            format="json" if item.get("format", {}).get("S") == "json" else "jwt",
            secret=None,
            lease_seconds=int(item.get("lease_seconds", {}).get("N", "0")),
            expires_at=expires_at,
            requested_at=int(item.get("requested_at", {}).get("N", "0")),
            sort_key=subscription_key(callback),
            events=frozenset(item.get("events", {}).get("SS", ())),
        )

    def remove(self, topic: str, callback: str) -> None:  # a dry run sends nothing
        raise NotImplementedError


def request_recovery(
    *,
    store: RecoveryStore,
    peek: Subscriptions,
    sender: QueueSender,
    events_queue_url: str,
    topic: str,
    callback: str,
    since: float,
    until: float | None,
    now: float,
) -> RecoveryRequest:
    """Keep a recovery request and queue it for dispatch (the operator's ``sethub recover start``)."""
    if peek.get_active(topic, callback, now=now) is None:
        raise NoSubscriptionError(f"no live subscription of {callback_label(topic, callback)} to that topic")
    end = now if until is None else until
    if end < since:
        raise ValueError("the window ends before it starts (--until before --since)")
    request = RecoveryRequest(
        recovery_id=new_recovery_id(),
        topic=topic,
        callback=callback,
        since=since,
        # Fixed now: a long recovery does not chase events that are delivered anyway.
        until=end,
        requested_at=now,
    )
    store.create(request)
    sender.send(events_queue_url, [Outgoing(RecoverWindow(recovery_id=request.recovery_id).to_json())])
    return request


@dataclass
class RecoveryWorker:
    """Runs recovery requests in dispatch, with dispatch's clients, signer and settings."""

    store: RecoveryStore
    archive: EventArchive
    subscriptions: Subscriptions
    signer: Signer
    http: Http
    records: Records | None
    sender: QueueSender
    events_queue_url: str
    retry_queue_url: str
    dead_letter_queue_url: str
    policy: RetryPolicy
    now: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic

    def run(
        self, recovery_id: str, *, start_by: float | None, lease_seconds: float | None
    ) -> RecoveryReport | None:
        """One run: send from the cursor until done or ``start_by`` (monotonic) has passed.

        None when there was nothing to run (finished, unknown, or held by another run).
        """
        owner = secrets.token_hex(8)
        lease = (lease_seconds if lease_seconds is not None else DEFAULT_LEASE_SECONDS) + LEASE_MARGIN_SECONDS
        request = self.store.claim(recovery_id, owner, now=self.now(), lease_seconds=lease)
        if request is None:
            logger.info("recovery %s not run: finished, unknown, or running elsewhere", recovery_id)
            return None
        progress = _Progress(request)

        def saved(cursor: Cursor, outcomes: list[dict[str, Any]]) -> None:
            progress.add(cursor, outcomes)
            self.store.save(progress.request, owner, now=self.now())

        try:
            report = recover(
                archive=self.archive,
                subscriptions=self.subscriptions,
                topic=request.topic,
                callback=request.callback,
                since=request.since,
                until=request.until,
                signer=self.signer,
                http=self.http,
                records=self.records,
                sender=self.sender,
                retry_queue_url=self.retry_queue_url,
                dead_letter_queue_url=self.dead_letter_queue_url,
                policy=self.policy,
                after=request.cursor,
                stop=None if start_by is None else lambda: self.monotonic() >= start_by,
                on_progress=saved,
                on_window=progress.window,
                now=self.now,
            )
        except NoSubscriptionError as exc:
            self.store.save(progress.request, owner, now=self.now(), status="failed", error=str(exc))
            logger.warning("recovery %s failed: %s", recovery_id, exc)
            return RecoveryReport()
        except Exception:
            # Let go, so that the message SQS delivers again continues at once; if this fails
            # too, the lease runs out before the message is visible again.
            with contextlib.suppress(UpstreamError):
                self.store.save(progress.request, owner, now=self.now(), release=True)
            raise
        if report.gone:
            error = "the subscriber answered 410 Gone: its subscription is removed"
            self.store.save(progress.request, owner, now=self.now(), status="stopped", error=error)
        elif report.complete:
            self.store.save(progress.request, owner, now=self.now(), status="done")
        else:
            # Out of time: let go first, then queue the next run (queued first, it could find
            # the lease still held and end there).
            self.store.save(progress.request, owner, now=self.now(), release=True)
            self.sender.send(
                self.events_queue_url, [Outgoing(RecoverWindow(recovery_id=recovery_id).to_json())]
            )
        logger.info(
            "recovery %s: %s",
            recovery_id,
            "continues in another run" if not report.complete and not report.gone else "finished",
            extra={"recovery_sent": len(report.attempts)},
        )
        return report


@dataclass
class _Progress:
    request: RecoveryRequest

    def add(self, cursor: Cursor, outcomes: list[dict[str, Any]]) -> None:
        counts = dict(self.request.counts)
        for outcome in outcomes:
            counts[outcome["status"]] = counts.get(outcome["status"], 0) + 1
        self.request = RecoveryRequest(
            **{
                **self.request.__dict__,
                "counts": counts,
                "cursor": cursor,
                "last_jti": outcomes[-1]["jti"] if outcomes else self.request.last_jti,
            }
        )

    def window(self, report: RecoveryReport) -> None:
        self.request = RecoveryRequest(
            **{**self.request.__dict__, "found": report.found, "wanted": report.wanted}
        )


__all__ = [
    "BACKLOG_ERROR",
    "FINISHED",
    "NoSubscriptionError",
    "RecoveryReport",
    "RecoveryRequest",
    "RecoveryStore",
    "RecoveryWorker",
    "SubscriptionPeek",
    "parse_time",
    "payload_for",
    "recover",
    "request_recovery",
]
