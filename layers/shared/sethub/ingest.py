"""The ingest pipeline: validate, check topics, deduplicate on ``jti``, enqueue in batches.

All or nothing per request: any invalid event refuses the whole request (400 with
the problems of each event) before anything is enqueued (markers claimed while the
topics were checked are released). A publisher's ``jti`` is an
idempotency key for 48 hours: a re-sent event is answered as accepted and not
enqueued again. If SQS does not take every new event, the markers of this request are
released and the caller gets ``UpstreamError`` (a 5xx), so a publisher's retry of
the same request is accepted.

Publishers are bounded by their key (``sethub.credentials.Principal``): ``jti`` markers
are scoped by the key id, so one publisher cannot pre-claim another's ``jti``; and a
publisher key's events carry its pinned ``iss`` (the hub's issuer for a key without one):
any other ``iss`` is refused with ``403``. Only an admin key sets any ``iss``.

Why not Powertools Idempotency: it completes a key when the wrapped call returns, one
call per key, while a request's events are enqueued together in SQS batches and a
marker must be released again if its batch fails; a conditional put per ``jti``
(``records.EventMarkers``) does exactly that.

The markers of a request are claimed concurrently, and its SQS batches of 10 are sent
concurrently, a few at a time (``INGEST_CONCURRENCY``): a request of 100 events waits
for about one round trip per eight calls instead of one per call.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sethub import api, events
from sethub.clients import AwsClients
from sethub.errors import (
    BadRequestError,
    ConfigurationError,
    ForbiddenError,
    PayloadTooLargeError,
    UpstreamError,
)
from sethub.limits import MAX_CONTENT_BYTES
from sethub.messages import ContentEvent, SetEvent
from sethub.queues import BATCH_MAX_ENTRIES, SQS_MAX_MESSAGE_BYTES, Outgoing, QueueSender
from sethub.records import EventMarkers
from sethub.settings import Settings

if TYPE_CHECKING:
    from sethub.credentials import Principal

logger = logging.getLogger(__name__)

INGEST_CONCURRENCY = 8
"""Marker claims and SQS batches in flight at once for one request."""

_T = TypeVar("_T")


class TopicDirectory(Protocol):
    """The part of ``sethub.store.SubscriptionStore`` the ingest uses."""

    def topic_exists(self, topic: str) -> bool: ...


class Ingestor:
    """Turns published events into messages on the events queue."""

    def __init__(
        self,
        clients: AwsClients,
        settings: Settings,
        *,
        topics: TopicDirectory | None = None,
        markers: EventMarkers | None = None,
        sender: QueueSender | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        if not settings.events_queue_url:
            raise ConfigurationError("SETHUB_EVENTS_QUEUE_URL is not set")
        self._clients = clients
        self._settings = settings
        self._topics = topics
        self._markers = markers or EventMarkers(clients, settings)
        self._sender = sender
        self._now = now
        self._pool: ThreadPoolExecutor | None = None

    @property
    def topics(self) -> TopicDirectory:
        if self._topics is None:
            from sethub.store import SubscriptionStore  # noqa: PLC0415 (only when topics are checked)

            self._topics = SubscriptionStore(self._clients, self._settings)
        return self._topics

    @property
    def sender(self) -> QueueSender:
        if self._sender is None:
            self._sender = QueueSender(self._clients.sqs)
        return self._sender

    def ingest(
        self, raw_events: list[Any], *, base_url: str, publisher: Principal | None = None
    ) -> list[dict[str, str]]:
        """Accept ``raw_events`` (all or none); returns ``[{"jti", "topic"}]`` in request order.

        ``publisher``: the key that sent them (None: an internal caller, trusted like an admin
        for ``iss``; its markers share one scope).
        """
        issuer = _issuer_for(publisher, default=api.issuer(base_url, self._settings))
        published = events.validate(raw_events, issuer=issuer, now=self._now)
        _check_issuers(published, publisher, issuer)
        scope = publisher.key_id if publisher is not None else ""
        hub_url = api.hub_url(base_url)
        now = self._now()
        # A jti named twice in one request is one event: the first occurrence is the one sent.
        keyed: dict[str, events.PublishedEvent] = {}
        for event in published:
            if event.jti_given:
                keyed.setdefault(event.jti, event)
        # The topic check and the jti claims are independent round trips: made side by side, so
        # an event waits for one of them, not both. A request refused for an unknown topic
        # releases the markers it claimed meanwhile, so nothing of it remains.
        topic_check = None
        if keyed and not self._settings.open_topics:
            topic_check = self._executor().submit(self._check_topics, published)
        else:
            self._check_topics(published)
        claims = self._all(
            lambda event: self._markers.claim(event.jti, event.topic, now=now, publisher=scope),
            list(keyed.values()),
        )
        claimed = [
            event.jti for event, outcome in zip(keyed.values(), claims, strict=True) if outcome is True
        ]
        try:
            if topic_check is not None:
                topic_check.result()
            failure = next((outcome for outcome in claims if isinstance(outcome, BaseException)), None)
            if failure is not None:
                raise failure
            new = set(claimed)
            outgoing = [
                Outgoing(SetEvent(topic=event.topic, claims=event.claims, hub_url=hub_url).to_json())
                for event in published
                if not event.jti_given or (event.jti in new and keyed[event.jti] is event)
            ]
            self._send(outgoing)
        except Exception:
            self._release(claimed, scope)
            raise
        return [{"jti": event.jti, "topic": event.topic} for event in published]

    def _send(self, outgoing: list[Outgoing]) -> None:
        """Every message on the events queue, SQS batches sent concurrently; else ``UpstreamError``."""
        queue_url = self._settings.events_queue_url
        groups = [
            outgoing[start : start + BATCH_MAX_ENTRIES]
            for start in range(0, len(outgoing), BATCH_MAX_ENTRIES)
        ]
        sender = self.sender
        results = self._all(lambda group: len(sender.send_all(queue_url, group)), groups)
        failure = next((result for result in results if isinstance(result, BaseException)), None)
        if failure is not None:
            raise failure
        unsent = sum(result for result in results if isinstance(result, int))
        if unsent:
            raise UpstreamError(f"SQS refused {unsent} of {len(outgoing)} messages")

    def _release(self, jtis: list[str], scope: str) -> None:
        """Forget the markers of a request that was not accepted, so that its retry is."""
        outcomes = self._all(lambda jti: self._markers.release(jti, publisher=scope), jtis)
        for jti, outcome in zip(jtis, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                # The marker expires in 48 hours; until then a retry of this event is taken for a duplicate.
                logger.error("could not release the marker of event %s: %s", jti, outcome)

    def _all(self, task: Callable[[_T], Any], inputs: Sequence[_T]) -> list[Any]:
        """``task`` of each input, a few at a time; each result is the value or the exception raised."""
        if len(inputs) <= 1:  # the common single event: no thread hop
            results: list[Any] = []
            for value in inputs:
                try:
                    results.append(task(value))
                except Exception as exc:
                    results.append(exc)
            return results
        pool = self._executor()
        futures: list[Future[Any]] = [pool.submit(task, value) for value in inputs]
        return [future.exception() or future.result() for future in futures]

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            # One more worker than the claims of a request: the topic check runs beside them.
            self._pool = ThreadPoolExecutor(
                max_workers=INGEST_CONCURRENCY + 1, thread_name_prefix="sethub-ingest"
            )
        return self._pool

    def enqueue_content(self, topic: str, body: bytes, content_type: str, *, base_url: str) -> str:
        """Enqueue non-SET content for delivery byte for byte; returns its new ``jti``.

        The caller (the hub's publish mode) has already checked that the topic exists.
        Raises ``PayloadTooLargeError`` for content over 256 KiB.
        """
        if len(body) > MAX_CONTENT_BYTES:
            raise PayloadTooLargeError(f"published content is over {MAX_CONTENT_BYTES} bytes")
        jti = str(uuid.uuid4())
        message = ContentEvent(
            topic=topic,
            jti=jti,
            content_type=content_type or "application/octet-stream",
            body_b64=base64.b64encode(body).decode("ascii"),
            hub_url=api.hub_url(base_url),
        )
        encoded = message.to_json()
        if len(encoded.encode()) > SQS_MAX_MESSAGE_BYTES:
            # Only an absurd Content-Type could get here: the content itself is capped.
            raise PayloadTooLargeError("published content and its Content-Type do not fit in a queue message")
        self.sender.send(self._settings.events_queue_url, [Outgoing(encoded)])
        return jti

    def _check_topics(self, published: list[events.PublishedEvent]) -> None:
        if self._settings.open_topics:
            return
        known = {topic: self.topics.topic_exists(topic) for topic in {event.topic for event in published}}
        invalid: list[dict[str, object]] = [
            {"index": index, "problems": [f"topic {event.topic[:256]!r} is not registered"]}
            for index, event in enumerate(published)
            if not known[event.topic]
        ]
        if invalid:
            noun = "event names an unknown topic" if len(invalid) == 1 else "events name unknown topics"
            raise BadRequestError(f"{len(invalid)} {noun}; nothing was accepted", problems=invalid)


def _issuer_for(publisher: Principal | None, *, default: str) -> str:
    """The ``iss`` an event gets when it names none: the key's pinned issuer, else the hub's."""
    if publisher is not None and publisher.issuer:
        return publisher.issuer
    return default


def _check_issuers(published: list[events.PublishedEvent], publisher: Principal | None, issuer: str) -> None:
    """A publisher key's events carry its issuer: another ``iss`` is ``ForbiddenError``, nothing accepted."""
    if publisher is None or publisher.is_admin:
        return
    invalid: list[dict[str, object]] = [
        {"index": index, "problems": [f"iss must be omitted or {issuer[:256]!r} for this key"]}
        for index, event in enumerate(published)
        if event.claims["iss"] != issuer
    ]
    if invalid:
        noun = "event names an issuer" if len(invalid) == 1 else "events name issuers"
        raise ForbiddenError(
            f"{len(invalid)} {noun} this key may not use; nothing was accepted", problems=invalid
        )


__all__ = ["Ingestor", "TopicDirectory"]
