"""The dispatcher's SSF side: which streams get an event, and the SETs they get.

For a batch of accepted events, the streams of each distinct routed event type are read
with one ``Query`` of the type index (``SSFTYPE#<type>``), whatever the events' topics.
Each (event, event type, stream) becomes one SET signed with the SSF key (RS256):

- an enabled push stream gets a ``DeliveryRequest`` that runs through the dispatcher's
  pool, outcomes and retry queue like any subscriber's;
- a poll stream gets the SET queued for its receiver's next poll;
- a paused stream holds it (the same queue: a poll stream's receiver sees it once the
  stream is enabled; a push stream's are pushed by a ``flush`` task on enable);
- a disabled stream, or one that removed the event's subject, gets nothing.

Flushing a push stream's held SETs is resumable and single-flight: a flush holds the
stream's lease (``SSFQ#<id>``/``FLUSH``) and pushes a page of the oldest held SETs (one
per subject: a page's pushes run side by side, a subject's go in order); only
once every push of the page is settled (sent, or handed to the retry queue) are they
deleted, and only then is the next page's task queued (``finish_flush``). A crash at any
point loses nothing: SQS delivers the task again, its owner takes the lease back and
pushes what is still held (some SETs twice: at least once, receivers deduplicate on
``jti``). A second flush of the same stream waits (re-queued, delayed) while the lease
is held; a stale copy of an earlier page's task finds the lease moved on and stops.

A push stream failing for ``SETHUB_DISABLE_AFTER_SECONDS`` (no success meanwhile) is
disabled by sethub, like a failing subscription: its held SETs are dropped and a
stream-updated SET (status ``disabled``, the reason) is sent to it (SSF 8.1.5).

A SET's ``jti`` is derived from the event's ``jti``, the stream and the type, so an event
dispatched twice (SQS is at least once) yields the same SETs, and receivers deduplicate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sethub import sets as jose
from sethub.delivery import USER_AGENT, DeliveryRequest
from sethub.errors import SethubError
from sethub.messages import DeliveryRetry, SetEvent, StreamTask
from sethub.queues import Outgoing
from sethub.ssf import model
from sethub.ssf.model import Stream
from sethub.ssf.sets import event_set, stream_event_set, stream_updated_payload, subject_of_event
from sethub.ssf.store import QueuedSet, SsfStore
from sethub.ssf.topics import TOPIC_PREFIX, is_stream_topic

logger = logging.getLogger(__name__)

FLUSH_PAGE = 25
"""Held SETs one flush task pushes; the rest go to the next task."""
FLUSH_LEASE_SECONDS = 120
"""How long a flush holds its stream: over a dispatch invocation (60 s) and its follow-ups, and
under the events queue's visibility timeout (360 s), so a crashed flush's task, delivered
again, still finds it (or it has expired and anyone may take over)."""
MAX_SQS_DELAY = 900


class Signer(Protocol):
    def sign(self, claims: Mapping[str, Any]) -> str: ...


def stream_topic(stream: Stream) -> str:
    return f"{TOPIC_PREFIX}{stream.stream_id}:{stream.client_id}"


def _parse_topic(topic: str) -> tuple[str, str]:
    stream_id, _, client_id = topic.removeprefix(TOPIC_PREFIX).partition(":")
    return stream_id, client_id


def set_jti(event_jti: str, stream_id: str, event_type: str, iat: float) -> str:
    """Time-ordered (the event's ``iat``) and the same every time the event is dispatched."""
    digest = hashlib.sha256(f"{event_jti}\n{stream_id}\n{event_type}".encode()).hexdigest()[:20]
    return f"{int(iat * 1000):013d}-{digest}"


def push_request(stream: Stream, jti: str, jws: str, *, attempt: int) -> DeliveryRequest:
    """RFC 8935: the SET as ``application/secevent+jwt``; ``Authorization`` exactly as configured."""
    headers = {"Content-Type": jose.SET_CONTENT_TYPE, "Accept": "application/json", "User-Agent": USER_AGENT}
    if stream.authorization_header is not None:
        headers["Authorization"] = stream.authorization_header
    return DeliveryRequest(
        topic=stream_topic(stream),
        callback=stream.endpoint_url,
        jti=jti,
        hub_url="",
        content_type=jose.SET_CONTENT_TYPE,
        body=jws.encode("ascii"),
        headers=headers,
        attempt=attempt,
        subscribed_at=0,
        failing_since=stream.failing_since,
    )


@dataclass(frozen=True)
class FlushStep:
    """A page of held SETs in flight: settled by ``StreamRouter.finish_flush`` after delivery."""

    task: StreamTask
    owner: str
    page: int
    jtis: tuple[str, ...]
    more: bool


@dataclass
class Plan:
    """What one queue message means for the streams: pushes to make, follow-up tasks."""

    requests: list[DeliveryRequest] = field(default_factory=list)
    followups: list[Outgoing] = field(default_factory=list)
    queued: int = 0
    flush: FlushStep | None = None


class StreamRouter:
    """Built once per dispatch container; its store and signer are the container's."""

    def __init__(
        self,
        store: SsfStore,
        signer: Signer,
        *,
        disable_after_seconds: int = 432000,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._signer = signer
        self._disable_after = disable_after_seconds
        self._now = now

    def plan(self, messages: Sequence[SetEvent | StreamTask]) -> list[Plan | SethubError]:
        """One plan (or the error that stopped it) per message, in order."""
        types = sorted(
            {
                event_type
                for message in messages
                if isinstance(message, SetEvent)
                for event_type in (message.claims.get("events") or {})
                if event_type in model.ROUTED_EVENTS
            }
        )
        by_type: dict[str, list[Stream] | SethubError] = {}
        for event_type in types:
            try:
                by_type[event_type] = self._store.streams_for_type(event_type)
            except SethubError as exc:
                by_type[event_type] = exc
        results: list[Plan | SethubError] = []
        for message in messages:
            try:
                if isinstance(message, SetEvent):
                    results.append(self._plan_event(message, by_type))
                else:
                    results.append(self._plan_task(message))
            except SethubError as exc:
                results.append(exc)
        return results

    def _plan_event(self, message: SetEvent, by_type: Mapping[str, list[Stream] | SethubError]) -> Plan:
        plan = Plan()
        claims = message.claims
        held: dict[str, tuple[Stream, list[QueuedSet]]] = {}
        for event_type, payload in (claims.get("events") or {}).items():
            streams = by_type.get(event_type)
            if streams is None:
                continue
            if isinstance(streams, SethubError):
                raise streams
            sub_id = subject_of_event(claims, payload)
            if sub_id is None:
                # SSF 3.1: every SSF SET names its subject; an event without one is not for streams.
                continue
            for stream in streams:
                if stream.status == "disabled" or model.removed(stream, sub_id):
                    continue
                set_claims = event_set(stream, claims, event_type, payload, now=self._now())
                iat = float(claims.get("iat", 0))
                set_claims["jti"] = set_jti(message.jti, stream.stream_id, event_type, iat)
                jws = self._signer.sign(set_claims)
                if stream.method == model.PUSH and stream.status == "enabled":
                    plan.requests.append(push_request(stream, set_claims["jti"], jws, attempt=1))
                else:
                    queue = held.setdefault(stream.stream_id, (stream, []))[1]
                    queue.append(QueuedSet(set_claims["jti"], jws))
        for stream, queued in held.values():
            self._store.enqueue(stream.stream_id, queued, now=int(self._now()))
            plan.queued += len(queued)
        return plan

    def _plan_task(self, task: StreamTask) -> Plan:
        plan = Plan()
        stream = self._store.get_stream(task.client_id, task.stream_id)
        if stream is None:
            return plan  # deleted meanwhile
        if task.action == "event":
            # Verification and stream-updated go out whatever the stream's status (SSF 8.1.5:
            # stream-updated is how a receiver learns that its stream was paused or disabled).
            claims = stream_event_set(stream, task.event_type, task.payload or {}, now=self._now())
            jws = self._signer.sign(claims)
            if stream.method == model.PUSH:
                plan.requests.append(push_request(stream, claims["jti"], jws, attempt=1))
            else:
                self._store.enqueue(stream.stream_id, [QueuedSet(claims["jti"], jws)], now=int(self._now()))
                plan.queued += 1
            return plan
        return self._plan_flush(task, stream)

    def _plan_flush(self, task: StreamTask, stream: Stream) -> Plan:
        """A page of the SETs held while the push stream was paused, oldest first."""
        plan = Plan()
        payload = task.payload or {}
        owner = str(payload.get("lease") or secrets.token_hex(16))
        page = payload.get("page", 0)
        page = page if isinstance(page, int) else 0
        if stream.method != model.PUSH or stream.status != "enabled":
            # Paused or disabled again meanwhile: the next enable starts a flush of its own.
            self._store.release_flush_lease(stream.stream_id, owner)
            return plan
        now = int(self._now())
        if not self._store.take_flush_lease(
            stream.stream_id, owner, page, now=now, seconds=FLUSH_LEASE_SECONDS
        ):
            if page > 0:
                return plan  # a stale copy of a page its flush has gone past
            # Another flush is running: this one waits its turn (it may find nothing left).
            wait = self._store.flush_lease_until(stream.stream_id) - now + 1
            plan.followups.append(Outgoing(task.to_json(), max(1, min(MAX_SQS_DELAY, wait))))
            return plan
        held, more = self._store.queued(stream.stream_id, limit=FLUSH_PAGE)
        # A page's pushes run side by side: it holds one SET per subject, so that a subject's
        # held events still reach the receiver in generation order (SSF 8.1.2.1).
        page_sets = _one_per_subject(held)
        more = more or len(page_sets) < len(held)
        held = page_sets
        plan.requests.extend(push_request(stream, queued.jti, queued.jws, attempt=1) for queued in held)
        plan.flush = FlushStep(task, owner, page, tuple(queued.jti for queued in held), more)
        return plan

    def finish_flush(self, step: FlushStep) -> Outgoing | None:
        """After the page's pushes are settled: drop them from the held queue, then the next
        page's task (to send), or the lease released when the queue is empty."""
        self._store.acknowledge(step.task.stream_id, step.jtis)
        if not step.more:
            self._store.release_flush_lease(step.task.stream_id, step.owner)
            return None
        following = StreamTask(
            client_id=step.task.client_id,
            stream_id=step.task.stream_id,
            action="flush",
            payload={"lease": step.owner, "page": step.page + 1},
        )
        return Outgoing(following.to_json())

    # ------------------------------------------------------------------ failing push endpoints

    def push_failed(self, request: DeliveryRequest, now: float) -> StreamTask | None:
        """Track a failed push; the stream-updated task to send when this disabled the stream.

        The first failure since a success stamps ``failing_since`` on the stream (one
        compare-and-swap); later ones carry it in the request, so they cost nothing until
        ``SETHUB_DISABLE_AFTER_SECONDS`` have passed.
        """
        since = request.failing_since
        if since and now - since < self._disable_after:
            return None
        stream_id, client_id = _parse_topic(request.topic)
        disabled = False

        def change(stream: Stream) -> Stream | None:
            nonlocal disabled
            disabled = False  # a compare-and-swap round again: only the last one's answer counts
            if (
                stream.method != model.PUSH
                or stream.endpoint_url != request.callback
                or stream.status == "disabled"
            ):
                return None
            if not stream.failing_since:
                return replace(stream, failing_since=int(now))
            if now - stream.failing_since < self._disable_after:
                return None
            disabled = True
            failing = int(now - stream.failing_since)
            reason = f"disabled by the transmitter: no successful push for {failing} seconds"
            return replace(stream, status="disabled", reason=reason, failing_since=0, updated_at=int(now))

        updated = self._store.change_stream(client_id, stream_id, change)
        if updated is None or not disabled:
            return None
        # A disabled stream keeps nothing (SSF 8.1.2.1), and its receiver is told why.
        self._store.drop_queue(stream_id)
        logger.warning(
            "SSF stream disabled",
            extra={"stream_id": stream_id, "client_id": client_id, "reason": updated.reason},
        )
        return StreamTask(
            client_id=client_id,
            stream_id=stream_id,
            action="event",
            event_type=model.STREAM_UPDATED,
            payload=stream_updated_payload(updated),
        )

    def push_succeeded(self, request: DeliveryRequest) -> None:
        """A push after failures went through: the stream is no longer failing."""
        if not request.failing_since:
            return
        stream_id, client_id = _parse_topic(request.topic)

        def change(stream: Stream) -> Stream | None:
            return replace(stream, failing_since=0) if stream.failing_since else None

        self._store.change_stream(client_id, stream_id, change)

    def retry_request(self, message: DeliveryRetry) -> tuple[DeliveryRequest | None, str]:
        """The next attempt of a push to a stream, or None and why there is none."""
        stream_id, client_id = _parse_topic(message.topic)
        stream = self._store.get_stream(client_id, stream_id)
        if stream is None or stream.method != model.PUSH or stream.endpoint_url != message.callback:
            return None, "no such push stream"
        jws = _body_text(message)
        if stream.status == "disabled" and not _is_stream_updated(jws):
            # Dropped (SSF: a disabled stream holds nothing); the stream-updated SET that
            # tells the receiver so is still retried.
            return None, "stream disabled"
        if stream.status == "paused":
            self._store.enqueue(stream.stream_id, [QueuedSet(message.jti, jws)], now=int(self._now()))
            return None, "stream paused: held"
        return push_request(stream, message.jti, jws, attempt=message.attempts + 1), ""


def _body_text(message: DeliveryRetry) -> str:
    return base64.b64decode(message.body_b64).decode("ascii")


def _claims_of(jws: str) -> dict[str, Any]:
    """A compact SET's claims, read, not verified (sethub signed it); {} when unreadable."""
    try:
        part = jws.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


def _one_per_subject(held: Sequence[QueuedSet]) -> list[QueuedSet]:
    """The oldest held SETs up to the first whose subject is already among them."""
    page: list[QueuedSet] = []
    subjects: set[str] = set()
    for queued in held:
        subject = json.dumps(_claims_of(queued.jws).get("sub_id"), sort_keys=True)
        if subject in subjects:
            break
        subjects.add(subject)
        page.append(queued)
    return page


def _is_stream_updated(jws: str) -> bool:
    """Whether a compact SET is a stream-updated event."""
    return model.STREAM_UPDATED in (_claims_of(jws).get("events") or {})


__all__ = [
    "FlushStep",
    "Plan",
    "StreamRouter",
    "is_stream_topic",
    "push_request",
    "set_jti",
    "stream_topic",
]
