"""The dispatch pipeline: prepare each event once, fan it out, classify, record, retry.

For one SQS batch (events queue and retry queue alike):

1. events are grouped by topic and each topic's live subscriptions are read with one
   query (``shard_size`` of them; the rest of a big topic becomes ``FanoutShard``
   messages, so no invocation serves more than a page per event);
2. each event is prepared once: its SET signed once (one KMS ``Sign``) and its claims
   JSON encoded once, shared by every delivery;
3. every (event, subscription) delivery runs on a bounded thread pool, so a slow
   subscriber holds one worker for at most one request timeout and nobody else;
4. outcomes: ok / rejected are final, gone removes the subscription, failed becomes a
   ``DeliveryRetry`` for that (event, subscription) only, carrying the exact body, or a
   dead letter once the schedule is exhausted; every attempt is recorded: an event's
   outcomes of the invocation in one record item (``sethub.records``: one write unit per
   event of 10 subscribers), items written 25 per ``BatchWriteItem`` on threads of their
   own, a big fan-out's full items while the remaining deliveries are in flight.

Logs: one INFO line per event and invocation (its outcome counts and slowest delivery);
per delivery only what needs attention (retrying, gone, rejected, dead, deferred), with
successes at DEBUG.

A message succeeds when all its deliveries are settled (done, final, or handed to
the retry queue); if anything on the way fails it is reported as a batch item
failure and SQS delivers it again: at least once, nothing lost.

Given the invocation's remaining time, no delivery starts once there is no longer
time for it to finish (one request timeout, which bounds a request from resolving the
host to the last byte of the answer) and for the follow-ups to be queued:
those not started are handed to the retry queue without counting as an attempt, so a
batch full of hanging subscribers makes progress instead of timing out whole.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import queue
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from sethub import delivery, sets, webhooks
from sethub.archive import EventArchive
from sethub.clients import AwsClients
from sethub.delivery import DeliveryRequest, Http, Outcome
from sethub.errors import SethubError
from sethub.hygiene import callback_host
from sethub.messages import (
    ContentEvent,
    DeliveryRetry,
    DenySubscription,
    FanoutShard,
    Message,
    MessageFormatError,
    PreparedPayload,
    RecoverWindow,
    SetEvent,
    StreamTask,
    parse_message,
)
from sethub.queues import Outgoing, QueueSender
from sethub.records import Attempt, DeliveryRecords, RecordBatcher
from sethub.retry import RetryPolicy, sqs_delay
from sethub.settings import Settings
from sethub.ssf.topics import is_stream_topic  # not ssf.routing: it loads with the first stream
from sethub.subscriptions import Subscription, subscription_id

if TYPE_CHECKING:
    from sethub.recovery import RecoveryWorker
    from sethub.ssf.routing import FlushStep, StreamRouter
    from sethub.store import OutcomeWrite

logger = logging.getLogger(__name__)

FOLLOWUP_RESERVE_SECONDS = 5.0
"""Time kept back, after the last delivery could finish, to queue retries and write records."""
RECORD_WRITERS = 4
DISABLED_ERROR = "subscription disabled: no successful delivery for SETHUB_DISABLE_AFTER_SECONDS"
"""Threads writing delivery records (one ``BatchWriteItem`` of 25 items each) while deliveries run."""


class Subscriptions(Protocol):
    """The part of ``sethub.store.SubscriptionStore`` the dispatcher uses."""

    def list_active(
        self, topic: str, *, now: float, start_after: str | None = None, limit: int | None = None
    ) -> tuple[list[Subscription], str | None]: ...
    def get_active(self, topic: str, callback: str, *, now: float) -> Subscription | None: ...
    def remove(self, topic: str, callback: str) -> None: ...
    def mark_failing(self, topic: str, callback: str, *, requested_at: int, now: float) -> int: ...
    def clear_failing(self, topic: str, callback: str, *, requested_at: int) -> None: ...
    def disable(self, topic: str, callback: str, *, requested_at: int) -> bool: ...
    def is_disabled(self, topic: str, callback: str) -> bool: ...
    def due_outcomes(self, attempts: Sequence[Attempt]) -> list[OutcomeWrite]: ...
    def write_outcome(self, write: OutcomeWrite) -> bool: ...


class Signer(Protocol):
    def sign(self, claims: Mapping[str, Any]) -> str: ...


@dataclass
class BatchResult:
    """What a batch came to: the message ids to report as failures, and counts for metrics."""

    failed: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    jtis: list[str] = field(default_factory=list)
    disabled: int = 0
    """Subscriptions this batch disabled (no success for SETHUB_DISABLE_AFTER_SECONDS)."""
    durations_ms: list[int] = field(default_factory=list)
    """How long each delivery request of the batch took (the DeliveryLatency metric)."""


@dataclass
class _Work:
    """One queue message's share of the batch."""

    message_id: str
    message: Message
    requests: list[DeliveryRequest] = field(default_factory=list)
    followups: list[tuple[str, Outgoing]] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    deferred: int = 0
    failed: bool = False
    disabled: int = 0
    flush: FlushStep | None = None
    """A page of an SSF stream's held SETs, settled once its pushes are (``sethub.ssf.routing``)."""


class Dispatcher:
    """Consumes events-queue and retry-queue messages; built once per container."""

    def __init__(
        self,
        clients: AwsClients,
        settings: Settings,
        *,
        http: Http | None = None,
        signer: Signer | None = None,
        store: Subscriptions | None = None,
        streams: StreamRouter | None = None,
        records: DeliveryRecords | None = None,
        sender: QueueSender | None = None,
        policy: RetryPolicy | None = None,
        archive: EventArchive | None = None,
        now: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._clients = clients
        self._settings = settings
        self._http = http
        self._signer = signer
        self._store = store
        self._streams = streams
        self._records = records
        self._sender = sender
        self._policy = policy or RetryPolicy.from_settings(settings)
        self._archive = archive
        self._recoveries: RecoveryWorker | None = None
        self._now = now
        self._rand = rand
        self._pool = ThreadPoolExecutor(
            max_workers=settings.delivery_concurrency, thread_name_prefix="sethub-delivery"
        )
        # Records get threads of their own so that their writes never wait behind deliveries.
        self._record_pool = ThreadPoolExecutor(
            max_workers=RECORD_WRITERS, thread_name_prefix="sethub-records"
        )

    # Dependencies are built on first use: the handler builds the dispatcher at import.

    @property
    def http(self) -> Http:
        if self._http is None:
            from sethub.outbound import GuardedHttp  # noqa: PLC0415

            self._http = GuardedHttp.from_settings(self._settings)
        return self._http

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            from sethub.keyring import signer_for  # noqa: PLC0415

            # SETHUB_SIGNING_MODE: the wrapped key (one Decrypt per container) or KMS Sign.
            self._signer = signer_for(self._clients, self._settings)
        return self._signer

    @property
    def store(self) -> Subscriptions:
        if self._store is None:
            from sethub.store import SubscriptionStore  # noqa: PLC0415

            self._store = SubscriptionStore(self._clients, self._settings)
        return self._store

    @property
    def streams(self) -> StreamRouter:
        """SSF streams (``sethub.ssf.routing``), signed with the SSF key (RS256)."""
        if self._streams is None:
            from sethub.ssf.keys import SsfKeys  # noqa: PLC0415
            from sethub.ssf.routing import StreamRouter  # noqa: PLC0415
            from sethub.ssf.store import SsfStore  # noqa: PLC0415

            keys = SsfKeys(
                self._clients.kms,
                self._clients.dynamodb,
                table_name=self._settings.table_name,
                data_key_id=self._settings.data_key_id,
            )
            self._streams = StreamRouter(
                SsfStore(self._clients.dynamodb, self._settings.table_name),
                keys,
                disable_after_seconds=self._settings.disable_after_seconds,
            )
        return self._streams

    @property
    def records(self) -> DeliveryRecords:
        if self._records is None:
            self._records = DeliveryRecords(self._clients, self._settings)
        return self._records

    @property
    def archive(self) -> EventArchive:
        """Accepted events kept for recovery (``sethub.archive``): one item per topic and batch."""
        if self._archive is None:
            self._archive = EventArchive(
                self._clients.dynamodb,
                self._settings.table_name,
                retention_days=self._settings.event_retention_days,
            )
        return self._archive

    @property
    def recoveries(self) -> RecoveryWorker:
        """Runs recovery requests with this dispatcher's signer, store, HTTP and queues."""
        if self._recoveries is None:
            from sethub.recovery import RecoveryStore, RecoveryWorker  # noqa: PLC0415

            settings = self._settings
            self._recoveries = RecoveryWorker(
                store=RecoveryStore(self._clients.dynamodb, settings.table_name),
                archive=self.archive,
                subscriptions=self.store,
                signer=self.signer,
                http=self.http,
                records=self.records,
                sender=self.sender,
                events_queue_url=settings.events_queue_url,
                retry_queue_url=settings.retry_queue_url,
                dead_letter_queue_url=settings.dead_letter_queue_url,
                policy=self._policy,
                now=self._now,
            )
        return self._recoveries

    @property
    def sender(self) -> QueueSender:
        if self._sender is None:
            self._sender = QueueSender(self._clients.sqs)
        return self._sender

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._record_pool.shutdown(wait=False, cancel_futures=True)

    # The pipeline

    def dispatch(self, messages: Sequence[tuple[str, str]], *, time_left: float | None = None) -> BatchResult:
        """Process ``(message_id, body)`` pairs; the result names the messages to retry.

        ``time_left``: seconds until the invocation is cut off (None: no limit).
        """
        now = self._now()
        start_by = None
        if time_left is not None:
            # One whole request: the delivery timeout is total (sethub.outbound).
            reserve = self._settings.delivery_timeout_seconds + FOLLOWUP_RESERVE_SECONDS
            start_by = time.monotonic() + time_left - reserve
        result = BatchResult()
        work: list[_Work] = []
        for message_id, body in messages:
            try:
                work.append(_Work(message_id, parse_message(body)))
            except MessageFormatError as exc:
                # Left to SQS: after maxReceiveCount it lands in the queue's dead-letter queue.
                logger.error("unreadable message %s: %s", message_id, exc)
                result.failed.add(message_id)
        kept = self._keep(work, now)
        self._plan_fanout(
            [w for w in work if isinstance(w.message, SetEvent | ContentEvent | FanoutShard)], now
        )
        self._plan_streams([w for w in work if isinstance(w.message, SetEvent | StreamTask)])
        for item in work:
            if isinstance(item.message, DeliveryRetry):
                self._plan_retry(item, item.message, now)
        busy = any(item.requests or item.attempts for item in work)
        recorder = RecordBatcher(self.records, self._record_pool) if busy else None
        if recorder is not None:
            for item in work:
                for attempt in item.attempts:  # retries found without a subscription
                    recorder.add(attempt)
        self._deliver(work, now, start_by, recorder)
        self._send_followups(work)
        self._finish_flushes(work)
        if recorder is not None:
            self._finish_records(recorder)
            self._record_outcomes(work)
        _kept(kept)
        self._recover(work, start_by)
        _log_summaries(work)
        for item in work:
            if item.failed:
                result.failed.add(item.message_id)
            jti = _jti(item.message)
            if jti:
                result.jtis.append(jti)
            result.counts.update(attempt.status for attempt in item.attempts)
            result.disabled += item.disabled
            # Skipped attempts sent nothing: no latency to report.
            result.durations_ms.extend(a.duration_ms for a in item.attempts if a.status != "skipped")
        return result

    def _recover(self, work: list[_Work], start_by: float | None) -> None:
        """The batch's recovery requests (``sethub.recovery``), once its deliveries are done:
        each sends in order until the invocation's time is up, then continues in another."""
        for item in work:
            if not isinstance(item.message, RecoverWindow):
                continue
            # The lease lasts as long as this invocation may: the deadline plus one request.
            lease = None
            if start_by is not None:
                lease = max(0.0, start_by - time.monotonic()) + self._settings.delivery_timeout_seconds
                lease += FOLLOWUP_RESERVE_SECONDS
            try:
                report = self.recoveries.run(item.message.recovery_id, start_by=start_by, lease_seconds=lease)
            except SethubError as exc:
                logger.error("recovery %s stopped, SQS delivers it again: %s", item.message.recovery_id, exc)
                item.failed = True
                continue
            if report is not None:
                item.attempts.extend(report.attempts)  # counted and logged as the batch's

    def _keep(self, work: list[_Work], now: float) -> Future[None] | None:
        """Keep the batch's events for recovery, on a record thread while the batch is delivered."""
        events = [w.message for w in work if isinstance(w.message, SetEvent | ContentEvent)]
        return self._record_pool.submit(self.archive.keep, events, now=now) if events else None

    def _plan_fanout(self, work: list[_Work], now: float) -> None:
        # One query per distinct (topic, page) of the batch, however many events share it.
        pages: dict[tuple[str, str | None], list[_Work]] = {}
        for item in work:
            message = item.message
            assert isinstance(message, SetEvent | ContentEvent | FanoutShard)
            start = message.start_after if isinstance(message, FanoutShard) else None
            pages.setdefault((message.topic, start), []).append(item)
        limit = self._settings.shard_size
        for (topic, start_after), items in pages.items():
            try:
                subscriptions, cursor = self.store.list_active(
                    topic, now=now, start_after=start_after, limit=limit
                )
            except SethubError as exc:
                logger.error("could not list subscriptions of a topic: %s", exc)
                for item in items:
                    item.failed = True
                continue
            for item in items:
                try:
                    self._plan_event(item, subscriptions, cursor)
                except SethubError as exc:
                    logger.error("could not prepare event %s: %s", _jti(item.message), exc)
                    item.failed = True

    def _plan_event(self, item: _Work, subscriptions: list[Subscription], cursor: str | None) -> None:
        message = item.message
        assert isinstance(message, SetEvent | ContentEvent | FanoutShard)
        # Event-type filters (sethub.webhooks) before anything is signed: from the items
        # already read, so no AWS call; an event nobody wants is not signed at all.
        types = _event_types(message)
        subscriptions = [s for s in subscriptions if webhooks.wanted(s.events, types)]
        if not subscriptions and cursor is None:
            return
        payload = (
            message.payload
            if isinstance(message, FanoutShard)
            else self._prepare(message, subscriptions, cursor)
        )
        # One body per format, shared by its subscriptions (decoded or encoded once, not per
        # subscriber): the bytes are the same for all of them.
        bodies: dict[str, tuple[bytes, str]] = {}
        for subscription in subscriptions:
            if subscription.format not in bodies:
                bodies[subscription.format] = delivery.body_for(payload, subscription.format)
            body, content_type = bodies[subscription.format]
            item.requests.append(
                delivery.request_for(
                    subscription,
                    jti=payload.jti,
                    hub_url=message.hub_url,
                    body=body,
                    content_type=content_type,
                    attempt=1,
                )
            )
        if cursor is not None:
            shard = FanoutShard(
                topic=message.topic,
                hub_url=message.hub_url,
                payload=payload,
                start_after=cursor,
                limit=self._settings.shard_size,
            )
            item.followups.append((self._settings.events_queue_url, Outgoing(shard.to_json())))

    def _prepare(
        self, message: SetEvent | ContentEvent, subscriptions: list[Subscription], cursor: str | None
    ) -> PreparedPayload:
        """Build what each format receives, signing only if some subscription (or shard) needs it."""
        if isinstance(message, ContentEvent):
            return PreparedPayload(
                jti=message.jti, content_type=message.content_type, content_b64=message.body_b64
            )
        formats = {subscription.format for subscription in subscriptions}
        # Signed for this topic's subscribers only: aud names the topic (sethub.sets.bind_audience).
        signed = sets.bind_audience(message.claims, message.topic)
        jws = self.signer.sign(signed) if "jwt" in formats or cursor is not None else None
        claims_b64 = base64.b64encode(sets.claims_json(message.claims)).decode("ascii")
        return PreparedPayload(jti=message.jti, jwt=jws, json_b64=claims_b64)

    def _plan_streams(self, work: list[_Work]) -> None:
        """SSF streams of the batch's events (one index query per event type) and stream tasks."""
        if not work:
            return
        for item, plan in zip(work, self.streams.plan([w.message for w in work]), strict=True):  # type: ignore[misc]
            if isinstance(plan, SethubError):
                logger.error("could not route event %s to SSF streams: %s", _jti(item.message), plan)
                item.failed = True
                continue
            item.requests.extend(plan.requests)
            item.followups.extend((self._settings.events_queue_url, outgoing) for outgoing in plan.followups)
            item.flush = plan.flush

    def _finish_flushes(self, work: list[_Work]) -> None:
        """Held SETs of a page all settled (pushed or queued for retry): drop them, then queue
        the next page. A failure leaves the page held; SQS brings the task back for it."""
        for item in work:
            if item.flush is None or item.failed:
                continue
            try:
                following = self.streams.finish_flush(item.flush)
                if following is not None and self.sender.send_all(
                    self._settings.events_queue_url, [following]
                ):
                    item.failed = True
            except SethubError as exc:
                logger.error("could not finish a page of an SSF stream's held SETs: %s", exc)
                item.failed = True

    def _plan_retry(self, item: _Work, message: DeliveryRetry, now: float) -> None:
        if message.not_before > now:
            # SQS delays at most 900 s: longer waits take several hops.
            delay = sqs_delay(message.not_before - now)
            item.followups.append((self._settings.retry_queue_url, Outgoing(message.to_json(), delay)))
            return
        if is_stream_topic(message.topic):
            self._plan_stream_retry(item, message, now)
            return
        try:
            subscription = self.store.get_active(message.topic, message.callback, now=now)
        except SethubError as exc:
            logger.error("could not read a subscription: %s", exc)
            item.failed = True
            return
        attempt = message.attempts + 1
        if subscription is None and self._disabled(message.topic, message.callback, item):
            # DESIGN.md: a disabled subscription's pending retries become dead letters.
            dead = replace(message, attempts=attempt, last_error=DISABLED_ERROR)
            item.followups.append((self._settings.dead_letter_queue_url, Outgoing(dead.to_json())))
            item.attempts.append(
                Attempt(
                    message.jti, message.topic, message.callback, attempt, "dead", now, error=DISABLED_ERROR
                )
            )
            return
        if subscription is None:
            # Unsubscribed, removed or expired since: a retry must not resurrect it.
            item.attempts.append(
                Attempt(
                    message.jti,
                    message.topic,
                    message.callback,
                    attempt,
                    "skipped",
                    now,
                    error="no subscription",
                )
            )
            return
        item.requests.append(
            delivery.request_for(
                subscription,
                jti=message.jti,
                hub_url=message.hub_url,
                body=base64.b64decode(message.body_b64),
                content_type=message.content_type,
                attempt=attempt,
            )
        )

    def _plan_stream_retry(self, item: _Work, message: DeliveryRetry, now: float) -> None:
        try:
            request, why = self.streams.retry_request(message)
        except SethubError as exc:
            logger.error("could not read an SSF stream: %s", exc)
            item.failed = True
            return
        if request is None:
            attempt = message.attempts + 1
            item.attempts.append(
                Attempt(message.jti, message.topic, message.callback, attempt, "skipped", now, error=why)
            )
            return
        item.requests.append(request)

    def _deliver(
        self, work: list[_Work], now: float, start_by: float | None, recorder: RecordBatcher | None
    ) -> None:
        jobs = [(item, request) for item in work for request in item.requests]
        if not jobs:
            return
        http = self.http
        # A few workers take deliveries off one shared list, rather than a pool task (a
        # Future, its lock and a hand-off) per delivery: at 1000 subscribers those cost the
        # submitting thread more than the deliveries' own bookkeeping. Outcomes are settled
        # in the order they arrive, so that each full batch of records starts writing while
        # the slower deliveries are still in flight.
        todo = collections.deque(enumerate(request for _, request in jobs))
        done: queue.SimpleQueue[tuple[int, Outcome | BaseException]] = queue.SimpleQueue()
        for _ in range(min(self._settings.delivery_concurrency, len(jobs))):
            self._pool.submit(_drain, todo, done, http, start_by)
        for _ in range(len(jobs)):
            index, result = done.get()
            item, request = jobs[index]
            if isinstance(result, BaseException):  # a bug in a delivery must not lose the others
                logger.error("delivery crashed", exc_info=result)
                outcome = Outcome("failed", None, type(result).__name__, 0)
            else:
                outcome = result
            attempt = self._settle(item, request, outcome, now)
            if attempt is not None and recorder is not None:
                recorder.add(attempt)

    def _settle(self, item: _Work, request: DeliveryRequest, outcome: Outcome, now: float) -> Attempt | None:
        """Act on one outcome; returns the attempt to record (None: deferred, not an attempt)."""
        status: Any = outcome.status
        if outcome.status == "gone" and not is_stream_topic(request.topic):
            try:
                self.store.remove(request.topic, request.callback)
            except SethubError as exc:
                logger.warning("could not remove a gone subscription: %s", exc)
        elif outcome.status == "failed":
            if is_stream_topic(request.topic):
                status = self._stream_failed(item, request, outcome, now)
            elif self._failing(item, request, now):
                status = self._dead_letter(item, request, replace(outcome, error=DISABLED_ERROR))
            else:
                status = self._schedule(item, request, outcome, now)
        elif outcome.status == "deferred":
            # Not an attempt: nothing is recorded under the attempt number it will still use.
            self._defer(item, request, outcome)
            item.deferred += 1
            logger.info("delivery deferred", extra={"jti": request.jti, "topic": request.topic})
            return None
        if outcome.status == "ok" and request.failing_since and is_stream_topic(request.topic):
            try:
                self.streams.push_succeeded(request)
            except SethubError as exc:
                logger.warning("could not clear an SSF stream's failures: %s", exc)
        elif outcome.status == "ok" and request.failing_since:
            try:
                self.store.clear_failing(request.topic, request.callback, requested_at=request.subscribed_at)
            except SethubError as exc:
                logger.warning("could not clear a subscription's failures: %s", exc)
        # A line per success costs the settling thread more than the delivery's own
        # bookkeeping: successes are DEBUG (the summary counts them), the rest INFO/WARNING.
        level = logging.DEBUG if status == "ok" else logging.WARNING if status == "dead" else logging.INFO
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "delivery %s",
                status,
                extra={
                    "jti": request.jti,
                    "topic": request.topic,
                    "attempt": request.attempt,
                    "status_code": outcome.status_code,
                    "duration_ms": outcome.duration_ms,
                },
            )
        attempt = Attempt(
            jti=request.jti,
            topic=request.topic,
            callback=request.callback,
            attempt=request.attempt,
            status=status,
            at=now,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        )
        item.attempts.append(attempt)
        return attempt

    def _schedule(self, item: _Work, request: DeliveryRequest, outcome: Outcome, now: float) -> str:
        retry = _retry_message(request, outcome, attempts=request.attempt, not_before=now)
        delay = self._policy.next_delay(
            request.attempt, retry_after=outcome.retry_after, throttled=outcome.throttled, rand=self._rand
        )
        if delay is None:
            # The dead-letter record is the retry message itself: event, subscription key,
            # attempts and last error; the secret stays in the table.
            item.followups.append((self._settings.dead_letter_queue_url, Outgoing(retry.to_json())))
            return "dead"
        retry = replace(retry, not_before=now + delay)
        item.followups.append((self._settings.retry_queue_url, Outgoing(retry.to_json(), sqs_delay(delay))))
        return "retrying"

    def _stream_failed(self, item: _Work, request: DeliveryRequest, outcome: Outcome, now: float) -> str:
        """A failed push to an SSF stream: retried, unless it got the stream disabled (then dropped,
        and the stream-updated SET queued to tell the receiver)."""
        try:
            notice = self.streams.push_failed(request, now)
        except SethubError as exc:
            logger.warning("could not track a failing SSF stream: %s", exc)
            notice = None
        if notice is None:
            return self._schedule(item, request, outcome, now)
        item.followups.append((self._settings.events_queue_url, Outgoing(notice.to_json())))
        return "skipped"

    def _disabled(self, topic: str, callback: str, item: _Work) -> bool:
        try:
            return self.store.is_disabled(topic, callback)
        except SethubError as exc:
            logger.error("could not read a subscription: %s", exc)
            item.failed = True
            return False

    def _failing(self, item: _Work, request: DeliveryRequest, now: float) -> bool:
        """Track a failed delivery; True when its subscription is (now) disabled.

        One write when a subscription starts failing (the first failure since a success);
        while it keeps failing the time is in the item the dispatcher reads anyway.
        """
        try:
            since = request.failing_since or self.store.mark_failing(
                request.topic, request.callback, requested_at=request.subscribed_at, now=now
            )
            if not since or now - since < self._settings.disable_after_seconds:
                return False
            if not self.store.disable(request.topic, request.callback, requested_at=request.subscribed_at):
                # Another invocation disabled it (or it changed meanwhile): nothing to tell twice.
                return self.store.is_disabled(request.topic, request.callback)
        except SethubError as exc:
            logger.warning("could not track a failing subscription: %s", exc)
            return False
        item.disabled += 1
        reason = f"disabled: no successful delivery for {int(now - since)} seconds"
        # The alarm-able line: a metric filter on "subscription disabled" (and SubscriptionsDisabled).
        logger.warning(
            "subscription disabled",
            extra={
                "topic": request.topic,
                "subscription_id": subscription_id(request.topic, request.callback),
                "callback_host": callback_host(request.callback),
                "failing_since": since,
            },
        )
        # The callback is told as W3C WebSub tells a refusal: a GET with hub.mode=denied.
        deny = DenySubscription(topic=request.topic, callback=request.callback, reason=reason)
        item.followups.append((self._settings.verify_queue_url, Outgoing(deny.to_json())))
        return True

    def _dead_letter(self, item: _Work, request: DeliveryRequest, outcome: Outcome) -> str:
        retry = _retry_message(request, outcome, attempts=request.attempt, not_before=0.0)
        item.followups.append((self._settings.dead_letter_queue_url, Outgoing(retry.to_json())))
        return "dead"

    def _defer(self, item: _Work, request: DeliveryRequest, outcome: Outcome) -> None:
        """Hand a delivery that was never sent to the retry queue, due at once, attempts unchanged."""
        retry = _retry_message(request, outcome, attempts=request.attempt - 1, not_before=0.0)
        item.followups.append((self._settings.retry_queue_url, Outgoing(retry.to_json())))

    def _send_followups(self, work: list[_Work]) -> None:
        by_queue: dict[str, list[tuple[_Work, Outgoing]]] = {}
        for item in work:
            for queue_url, outgoing in item.followups:
                by_queue.setdefault(queue_url, []).append((item, outgoing))
        for queue_url, entries in by_queue.items():
            try:
                failed = self.sender.send_all(queue_url, [outgoing for _, outgoing in entries])
            except SethubError as exc:
                logger.error("could not queue follow-up messages: %s", exc)
                failed = list(range(len(entries)))
            for index in failed:
                # The source message comes back from SQS and is delivered again.
                entries[index][0].failed = True

    def _record_outcomes(self, work: list[_Work]) -> None:
        """Subscriptions' last outcomes (``sethub.outcomes``), after the deliveries: written only
        when one changes kind or is stale, on the record threads."""
        try:
            due = self.store.due_outcomes([a for item in work for a in item.attempts])
            if due:  # none on the success path but once per HEARTBEAT_SECONDS
                list(self._record_pool.map(self.store.write_outcome, due))
        except SethubError as exc:
            logger.warning("could not record subscriptions' last outcomes: %s", exc)

    def _finish_records(self, recorder: RecordBatcher) -> None:
        try:
            recorder.finish()
        except SethubError as exc:
            # Records are for operators; losing some is no reason to deliver again.
            logger.warning("could not record delivery attempts: %s", exc)


def _kept(kept: Future[None] | None) -> None:
    if kept is None:
        return
    try:
        kept.result()
    except Exception as exc:
        # Keeping never fails a delivery: delivering again to every subscriber would be worse.
        logger.error("could not keep events for recovery: %s", exc)


def _send_unless_late(http: Http, request: DeliveryRequest, start_by: float | None) -> Outcome:
    if start_by is not None and time.monotonic() >= start_by:
        return delivery.DEFERRED
    return delivery.send(http, request)


def _drain(
    todo: collections.deque[tuple[int, DeliveryRequest]],
    done: queue.SimpleQueue[tuple[int, Outcome | BaseException]],
    http: Http,
    start_by: float | None,
) -> None:
    """Send deliveries off ``todo`` until it is empty; every one taken is put on ``done``,
    its outcome or what it raised, so the settling thread never waits for one that is lost."""
    while True:
        try:
            index, request = todo.popleft()  # atomic: the workers share the deque
        except IndexError:
            return
        try:
            outcome = _send_unless_late(http, request, start_by)
        except BaseException as exc:
            done.put((index, exc))
            if not isinstance(exc, Exception):
                raise
            continue
        done.put((index, outcome))


MAX_SUMMARY_JTIS = 100
"""The ``jtis`` of one summary line (a batch has at most 10 events; shards and retries fewer)."""


def _log_summaries(work: list[_Work]) -> None:
    """One INFO line per batch: how its deliveries came out in this invocation.

    Per batch, not per event: with one line per event the logs were the biggest line of the
    cost table after the API. Every event's ``jti`` is in ``jtis`` (a search for a ``jti``
    finds the line); each failed delivery has its own line (``delivery <status>``).
    """
    counts: Counter[str] = Counter()
    jtis: dict[str, None] = {}
    topics: dict[str, None] = {}
    longest = 0
    for item in work:
        if not item.attempts and not item.deferred:
            continue
        jtis[_jti(item.message)] = None
        topics[getattr(item.message, "topic", "")] = None
        for attempt in item.attempts:
            counts[attempt.status] += 1
            longest = max(longest, attempt.duration_ms)
        if item.deferred:
            counts["deferred"] += item.deferred
    if not jtis:
        return
    logger.info(
        "batch deliveries",
        extra={
            "events": len(jtis),
            "jtis": list(jtis)[:MAX_SUMMARY_JTIS],
            "topics": list(topics)[:MAX_SUMMARY_JTIS],
            "deliveries": dict(counts),
            "max_duration_ms": longest,
        },
    )


def _retry_message(
    request: DeliveryRequest, outcome: Outcome, *, attempts: int, not_before: float
) -> DeliveryRetry:
    return DeliveryRetry(
        topic=request.topic,
        callback=request.callback,
        jti=request.jti,
        hub_url=request.hub_url,
        content_type=request.content_type,
        body_b64=base64.b64encode(request.body).decode("ascii"),
        attempts=attempts,
        not_before=not_before,
        last_error=outcome.error,
        subscribed_at=request.subscribed_at,
    )


def _event_types(message: SetEvent | ContentEvent | FanoutShard) -> frozenset[str] | None:
    """The event type URIs of a SET (None: published content, which has no types)."""
    if isinstance(message, SetEvent):
        events = message.claims.get("events")
        return frozenset(events) if isinstance(events, dict) else frozenset()
    if isinstance(message, FanoutShard) and message.payload.json_b64 is not None:
        claims = json.loads(base64.b64decode(message.payload.json_b64))
        events = claims.get("events") if isinstance(claims, dict) else None
        return frozenset(events) if isinstance(events, dict) else frozenset()
    return None


def _jti(message: Message) -> str:
    if isinstance(message, SetEvent | ContentEvent | DeliveryRetry):
        return message.jti
    if isinstance(message, FanoutShard):
        return message.payload.jti
    return ""


__all__ = ["BatchResult", "Dispatcher", "Signer", "Subscriptions"]
