"""The SSF endpoints' operations, independent of HTTP framing (the handler adapts them).

Order of checks on every management and poll request: the bearer token first (401,
before the body or the stream is looked at), then the scope (403) - both by
``receiver()``, which the handler calls first - then the body (400), then the stream,
which must be the caller's (404 otherwise: another receiver's stream is
indistinguishable from none).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sethub.errors import BadRequestError, NotFoundError
from sethub.messages import StreamTask
from sethub.ssf import model
from sethub.ssf.auth import Authority, Receiver
from sethub.ssf.model import Stream
from sethub.ssf.sets import verification_payload
from sethub.ssf.store import SsfStore
from sethub.ssf.tasks import flush_task

if TYPE_CHECKING:
    from sethub.queues import QueueSender

LONG_POLL_SECONDS = 20.0
"""A long poll answers within this (API Gateway's integration timeout is 29 s)."""
LONG_POLL_INTERVAL_SECONDS = 0.5
MAX_POLL_EVENTS = 100
MAX_ACKS = 1000


class TooManyRequestsError(BadRequestError):
    status = 429


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None
    """JSON-serialisable, or None for an empty body."""
    headers: Mapping[str, str] = field(default_factory=dict)


class SsfService:
    """One per container: the store, the token authority, and the events queue for tasks."""

    def __init__(
        self,
        store: SsfStore,
        sender: QueueSender,
        *,
        events_queue_url: str,
        allow_http: bool,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        ensure_key: Callable[[], object] | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._queue = events_queue_url
        self._allow_http = allow_http
        self._now = now
        self._sleep = sleep
        self._ensure_key = ensure_key
        self.authority = Authority(store)

    def receiver(self, headers: Mapping[str, str] | None, scope: str) -> Receiver:
        """The caller, authenticated (401) and holding ``scope`` (403)."""
        receiver = self.authority.authenticate(headers, now=int(self._now()))
        receiver.require(scope)
        return receiver

    def _own(self, receiver: Receiver, stream_id: str | None) -> Stream:
        if not stream_id:
            raise BadRequestError("stream_id is required")
        stream = self._store.get_stream(receiver.client_id, stream_id)
        if stream is None:
            raise NotFoundError("no such stream")
        return stream

    def _task(
        self, stream: Stream, action: str, event_type: str = "", payload: dict[str, Any] | None = None
    ) -> None:
        self._send(
            StreamTask(
                client_id=stream.client_id,
                stream_id=stream.stream_id,
                action=action,  # type: ignore[arg-type]
                event_type=event_type,
                payload=payload,
            )
        )

    def _send(self, task: StreamTask) -> None:
        from sethub.queues import Outgoing  # noqa: PLC0415 - the handler imports it anyway

        failed = self._sender.send_all(self._queue, [Outgoing(task.to_json())])
        if failed:
            from sethub.errors import UpstreamError  # noqa: PLC0415

            raise UpstreamError("could not queue the stream's event")

    # ------------------------------------------------------------------ configuration

    def create(self, receiver: Receiver, body: bytes, *, iss: str, base_url: str) -> Reply:
        request = model.json_object(body)
        stream = model.create(
            request,
            client_id=receiver.client_id,
            iss=iss,
            base_url=base_url,
            now=int(self._now()),
            allow_http=self._allow_http,
        )
        if self._ensure_key is not None:
            self._ensure_key()  # the stream's first SET finds its signing key made
        self._store.save_stream(stream)
        return Reply(201, stream.configuration())

    def read(self, receiver: Receiver, stream_id: str | None) -> Reply:
        if stream_id is None:
            streams = sorted(
                self._store.list_streams(receiver.client_id), key=lambda s: (s.created_at, s.stream_id)
            )
            return Reply(200, [stream.configuration() for stream in streams])
        return Reply(200, self._own(receiver, stream_id).configuration())

    def update(self, receiver: Receiver, body: bytes, *, base_url: str, replace_all: bool) -> Reply:
        request = model.json_object(body)
        stream = self._own(receiver, model.stream_id_of(request))
        updated = model.update(
            stream,
            request,
            base_url=base_url,
            now=int(self._now()),
            allow_http=self._allow_http,
            replace_all=replace_all,
        )
        self._store.save_stream(updated, stream)
        return Reply(200, updated.configuration())

    def delete(self, receiver: Receiver, stream_id: str | None) -> Reply:
        stream = self._own(receiver, stream_id)
        self._store.delete_stream(stream)
        self._store.drop_queue(stream.stream_id)  # not left to the TTL: nobody can poll them now
        return Reply(204)

    # ------------------------------------------------------------------ status

    def get_status(self, receiver: Receiver, stream_id: str | None) -> Reply:
        return Reply(200, self._own(receiver, stream_id).status_object())

    def set_status(self, receiver: Receiver, body: bytes, query_stream_id: str | None) -> Reply:
        request = model.json_object(body)
        stream_id = request.get("stream_id") or query_stream_id
        status, reason = model.status_change(request)
        stream = self._own(receiver, stream_id if isinstance(stream_id, str) else None)
        updated = replace(stream, status=status, reason=reason, updated_at=int(self._now()))
        self._store.save_stream(updated, stream)
        if status == "disabled":
            # SSF 8.1.2.1: a disabled stream does not hold events; queued and held SETs go.
            self._store.drop_queue(stream.stream_id)
        elif stream.status == "paused" and status == "enabled" and stream.method == model.PUSH:
            self._send(flush_task(updated))  # what was held while paused goes out now
        return Reply(200, updated.status_object())

    # ------------------------------------------------------------------ subjects

    def subject(self, receiver: Receiver, body: bytes, *, add: bool) -> Reply:
        request = model.json_object(body)
        stream_id = model.stream_id_of(request)
        subject = model.subject_of(request)
        stream = self._own(receiver, stream_id)
        updated = model.with_subject(stream, subject, add=add)
        if updated != stream:
            self._store.save_stream(replace(updated, updated_at=int(self._now())), stream)
        # SSF 8.1.3.2: add answers 200, remove 204; neither says whether anything changed.
        return Reply(200) if add else Reply(204)

    # ------------------------------------------------------------------ verification

    def verify(self, receiver: Receiver, body: bytes) -> Reply:
        request = model.json_object(body)
        stream_id = model.stream_id_of(request)
        state = model.verification_state(request)
        stream = self._own(receiver, stream_id)
        now = int(self._now())
        if now - stream.verified_at < model.MIN_VERIFICATION_INTERVAL:
            raise TooManyRequestsError(
                "verification requested again within min_verification_interval "
                f"({model.MIN_VERIFICATION_INTERVAL} s)"
            )
        self._store.save_stream(replace(stream, verified_at=now), stream)
        self._task(stream, "event", model.VERIFICATION, verification_payload(state))
        return Reply(204)

    # ------------------------------------------------------------------ poll (RFC 8936)

    def poll(self, receiver: Receiver, body: bytes, stream_id: str | None) -> Reply:
        request = model.json_object(body)
        max_events = request.get("maxEvents", 10)
        if not isinstance(max_events, int) or isinstance(max_events, bool) or max_events < 0:
            raise BadRequestError("maxEvents must be a non-negative integer")
        max_events = min(max_events, MAX_POLL_EVENTS)
        immediately = request.get("returnImmediately", False)
        if not isinstance(immediately, bool):
            raise BadRequestError("returnImmediately must be true or false")
        acks = request.get("ack", [])
        if (
            not isinstance(acks, list)
            or not all(isinstance(jti, str) for jti in acks)
            or len(acks) > MAX_ACKS
        ):
            raise BadRequestError(f"ack must be an array of at most {MAX_ACKS} jti strings")
        errors = request.get("setErrs", {})
        if not isinstance(errors, dict) or len(errors) > MAX_ACKS:
            raise BadRequestError("setErrs must be an object of jti to {err, description}")
        stream = self._own(receiver, stream_id)
        if stream.method != model.POLL:
            raise BadRequestError("this stream is delivered by push, not poll")
        # A SET the receiver reports an error for is settled too: resending it cannot help.
        settled = [*acks, *(jti for jti in errors if isinstance(jti, str))]
        if settled:
            self._store.acknowledge(stream.stream_id, settled)
        if max_events == 0:
            return Reply(200, {"sets": {}, "moreAvailable": False})
        deadline = self._now() + (0 if immediately else LONG_POLL_SECONDS)
        while True:
            current = (
                stream
                if stream.status != "paused"
                else self._store.get_stream(receiver.client_id, stream.stream_id)
            )
            if current is None:
                raise NotFoundError("no such stream")
            if current.status == "enabled":
                found, more = self._store.queued(stream.stream_id, limit=max_events)
                if found or self._now() >= deadline:
                    return Reply(
                        200, {"sets": {queued.jti: queued.jws for queued in found}, "moreAvailable": more}
                    )
            elif self._now() >= deadline:
                # Paused: held SETs wait for the stream to be enabled; disabled: none are kept.
                return Reply(200, {"sets": {}, "moreAvailable": False})
            self._sleep(min(LONG_POLL_INTERVAL_SECONDS, max(0.0, deadline - self._now())))


__all__ = ["LONG_POLL_SECONDS", "Reply", "SsfService", "TooManyRequestsError"]
