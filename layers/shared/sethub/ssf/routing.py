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

A SET's ``jti`` is derived from the event's ``jti``, the stream and the type, so an event
dispatched twice (SQS is at least once) yields the same SETs, and receivers deduplicate.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sethub import sets as jose
from sethub.delivery import USER_AGENT, DeliveryRequest
from sethub.errors import SethubError
from sethub.messages import DeliveryRetry, SetEvent, StreamTask
from sethub.queues import Outgoing
from sethub.ssf import model
from sethub.ssf.model import Stream
from sethub.ssf.sets import event_set, stream_event_set, subject_of_event
from sethub.ssf.store import QueuedSet, SsfStore

logger = logging.getLogger(__name__)

TOPIC_PREFIX = "ssf:"
"""Deliveries to streams carry ``ssf:<stream id>:<client id>`` where a subscription has its topic."""
FLUSH_PAGE = 25
"""Held SETs one flush task pushes; the rest go to the next task."""


class Signer(Protocol):
    def sign(self, claims: Mapping[str, Any]) -> str: ...


def stream_topic(stream: Stream) -> str:
    return f"{TOPIC_PREFIX}{stream.stream_id}:{stream.client_id}"


def is_stream_topic(topic: str) -> bool:
    return topic.startswith(TOPIC_PREFIX)


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
    )


@dataclass
class Plan:
    """What one queue message means for the streams: pushes to make, follow-up tasks."""

    requests: list[DeliveryRequest] = field(default_factory=list)
    followups: list[Outgoing] = field(default_factory=list)
    queued: int = 0


class StreamRouter:
    """Built once per dispatch container; its store and signer are the container's."""

    def __init__(self, store: SsfStore, signer: Signer, *, now: Callable[[], float] = time.time) -> None:
        self._store = store
        self._signer = signer
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
        # flush: the SETs held while the push stream was paused, oldest first.
        if stream.method != model.PUSH or stream.status != "enabled":
            return plan
        held, more = self._store.queued(stream.stream_id, limit=FLUSH_PAGE)
        plan.requests.extend(push_request(stream, queued.jti, queued.jws, attempt=1) for queued in held)
        # From here on they are the retry machinery's: a failed push is retried, not held again.
        self._store.acknowledge(stream.stream_id, [queued.jti for queued in held])
        if more:
            plan.followups.append(Outgoing(task.to_json()))
        return plan

    def retry_request(self, message: DeliveryRetry) -> tuple[DeliveryRequest | None, str]:
        """The next attempt of a push to a stream, or None and why there is none."""
        stream_id, client_id = _parse_topic(message.topic)
        stream = self._store.get_stream(client_id, stream_id)
        if stream is None or stream.method != model.PUSH or stream.endpoint_url != message.callback:
            return None, "no such push stream"
        if stream.status == "disabled":
            return None, "stream disabled"
        jws = _body_text(message)
        if stream.status == "paused":
            self._store.enqueue(stream.stream_id, [QueuedSet(message.jti, jws)], now=int(self._now()))
            return None, "stream paused: held"
        return push_request(stream, message.jti, jws, attempt=message.attempts + 1), ""


def _body_text(message: DeliveryRetry) -> str:
    import base64  # noqa: PLC0415

    return base64.b64decode(message.body_b64).decode("ascii")


__all__ = ["Plan", "StreamRouter", "is_stream_topic", "push_request", "set_jti", "stream_topic"]
