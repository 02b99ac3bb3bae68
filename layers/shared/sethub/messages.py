"""The messages sethub puts on its SQS queues: one dataclass per kind, JSON on the wire.

Queue messages carry identifiers, content and attempt counts, never a subscriber's
secret: secrets stay (encrypted) in DynamoDB and are looked up by the consumer.

- events queue: ``SetEvent`` (a SET payload to sign and fan out), ``ContentEvent``
  (published bytes to fan out as is), ``FanoutShard`` (a prepared event and a page of
  a large topic's subscriptions, so a big fan-out is spread over many invocations);
- retry queue: ``DeliveryRetry`` (one (event, subscription) delivery to try again);
- events queue, for recovery: ``RecoverWindow`` (run or continue one recovery request);
- events queue, for SSF streams: ``StreamTask`` (a verification or stream-updated event
  for one stream, or the flush of a re-enabled stream's held SETs);
- verify queue: ``VerifyIntent`` (a pending subscribe/unsubscribe request to verify),
  ``DenySubscription`` (tell a callback its subscription is refused).
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

MESSAGE_VERSION = 1


@dataclass(frozen=True)
class _Message:
    kind: ClassVar[str]

    def to_json(self) -> str:
        return json.dumps({"v": MESSAGE_VERSION, "kind": self.kind, **asdict(self)}, separators=(",", ":"))


@dataclass(frozen=True)
class SetEvent(_Message):
    """A validated event: ``claims`` are the complete SET claims (iss, jti, iat, events, ...)."""

    kind: ClassVar[str] = "set"
    topic: str
    claims: dict[str, Any]
    hub_url: str

    @property
    def jti(self) -> str:
        return str(self.claims["jti"])


@dataclass(frozen=True)
class ContentEvent(_Message):
    """Published content that is not a SET: delivered byte for byte with its Content-Type."""

    kind: ClassVar[str] = "content"
    topic: str
    jti: str
    content_type: str
    body_b64: str
    hub_url: str

    @property
    def body(self) -> bytes:
        return base64.b64decode(self.body_b64)


@dataclass(frozen=True)
class PreparedPayload:
    """What a subscriber of each format receives for one event, built (and signed) once."""

    jti: str
    jwt: str | None = None
    """Compact JWS of the SET, for ``format=jwt`` subscriptions (None for raw content)."""
    json_b64: str | None = None
    """The SET claims as JSON bytes, for ``format=json`` subscriptions."""
    content_type: str | None = None
    content_b64: str | None = None
    """Raw published content and its Content-Type (every format gets these, when set)."""


@dataclass(frozen=True)
class FanoutShard(_Message):
    """A page of a large topic's subscriptions to serve with an already prepared payload."""

    kind: ClassVar[str] = "shard"
    topic: str
    hub_url: str
    payload: PreparedPayload
    start_after: str
    """Sort key after which this shard's subscriptions start (exclusive)."""
    limit: int


@dataclass(frozen=True)
class DeliveryRetry(_Message):
    """One (event, subscription) delivery to attempt again once ``not_before`` has passed."""

    kind: ClassVar[str] = "retry"
    topic: str
    callback: str
    jti: str
    hub_url: str
    content_type: str
    body_b64: str
    """The exact bytes every attempt sends, so retries are byte-identical."""
    attempts: int
    """Attempts made so far (1 after the first failure)."""
    not_before: float
    last_error: str
    subscribed_at: int = 0
    """The subscription's ``requested_at`` when the event was first delivered; 0 = any."""


@dataclass(frozen=True)
class VerifyIntent(_Message):
    """Verify a pending subscribe/unsubscribe request stored in the table under ``request_id``."""

    kind: ClassVar[str] = "verify"
    topic: str
    callback: str
    request_id: str
    deferrals: int = 0
    """Times the verifier put it back because its callback's host was busy."""


@dataclass(frozen=True)
class DenySubscription(_Message):
    """Tell ``callback`` that its subscription to ``topic`` is refused, and why."""

    kind: ClassVar[str] = "deny"
    topic: str
    callback: str
    reason: str


@dataclass(frozen=True)
class RecoverWindow(_Message):
    """Run (or continue) the recovery request kept in the table under ``recovery_id``
    (``sethub.recovery``): the operator's ``sethub recover start`` puts it on the events queue."""

    kind: ClassVar[str] = "recover"
    recovery_id: str


@dataclass(frozen=True)
class StreamTask(_Message):
    """Work for one SSF stream (``sethub.ssf``): send it a verification or stream-updated
    event (``event_type``, ``payload``), or push the SETs held while it was paused
    (``flush``)."""

    kind: ClassVar[str] = "ssf"
    client_id: str
    stream_id: str
    action: Literal["event", "flush"]
    event_type: str = ""
    payload: dict[str, Any] | None = None

    @property
    def jti(self) -> str:
        return ""


EventsQueueMessage = SetEvent | ContentEvent | FanoutShard | StreamTask | RecoverWindow
VerifyQueueMessage = VerifyIntent | DenySubscription
Message = (
    SetEvent
    | ContentEvent
    | FanoutShard
    | DeliveryRetry
    | VerifyIntent
    | DenySubscription
    | StreamTask
    | RecoverWindow
)

_KINDS: dict[str, type[Any]] = {
    cls.kind: cls
    for cls in (
        SetEvent,
        ContentEvent,
        FanoutShard,
        DeliveryRetry,
        VerifyIntent,
        DenySubscription,
        StreamTask,
        RecoverWindow,
    )
}


class MessageFormatError(ValueError):
    """A queue message that sethub did not write (or wrote in a version it no longer reads)."""


def parse_message(body: str) -> Message:
    """Parse a queue message body written by ``to_json``."""
    try:
        data = json.loads(body)
        kind = data.pop("kind")
        data.pop("v", None)
        cls = _KINDS[kind]
        if cls is FanoutShard:
            data["payload"] = PreparedPayload(**data["payload"])
        return cls(**data)  # type: ignore[no-any-return]
    except (ValueError, KeyError, TypeError) as exc:
        raise MessageFormatError(f"not a sethub queue message: {exc}") from None


Format = Literal["jwt", "json"]
FORMATS: tuple[Format, ...] = ("jwt", "json")

__all__ = [
    "FORMATS",
    "ContentEvent",
    "DeliveryRetry",
    "DenySubscription",
    "EventsQueueMessage",
    "FanoutShard",
    "Format",
    "Message",
    "MessageFormatError",
    "PreparedPayload",
    "RecoverWindow",
    "SetEvent",
    "StreamTask",
    "VerifyIntent",
    "VerifyQueueMessage",
    "parse_message",
]
