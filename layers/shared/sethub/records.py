"""What the hub table remembers about events: accepted ``jti``s and delivery attempts.

    EVENT#<publisher>#<jti>  EVENT                        ingest's duplicate check (48 h)
    DELIVERY#<jti>  <at ms>#<invocation>#<n>            an event's outcomes of one invocation (30 days)

A ``jti`` marker is scoped by the publisher's key id: one publisher cannot pre-claim
another's ``jti`` and have its event silently dropped as a duplicate.

A delivery record item holds every outcome that one dispatch invocation had for one
event (attribute ``o``: a line per attempt, tab-separated: subscription id, callback
host, attempt, status, HTTP code, duration in ms, error), written once per batch; only
past ``RECORD_ITEM_BYTES`` (a big fan-out) does it take several items. The success
path of an event with 10 subscribers is one item under 1 KB: one write unit, where an
item per attempt cost ten. Retries add items of their own, never overwrite one.

Keys stay within DynamoDB's sizes: a subscription is named by its id (a hash of topic
and callback, the topic kept as an attribute), and a ``jti`` too long for a key
(publishers' are capped at 256 characters, so only a hand-made message could carry
one) is hashed. A record names its callback by host and subscription id only: callback
URLs may carry tokens in their path or query. An operator answers "did subscriber X get
event Y, and what did it answer?" with one Query on ``DELIVERY#<jti>``
(``sethub deliveries JTI``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from sethub.clients import AwsClients
from sethub.errors import ConfigurationError, UpstreamError, aws_error_code
from sethub.hygiene import callback_host
from sethub.settings import Settings
from sethub.subscriptions import subscription_id

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

EVENT_MARKER_TTL_SECONDS = 48 * 3600
DELIVERY_RECORD_TTL_SECONDS = 30 * 24 * 3600
MAX_ERROR_LENGTH = 512
BATCH_WRITE_MAX = 25
"""DynamoDB's cap on the items of one ``BatchWriteItem``."""
RECORD_ITEM_BYTES = 4096
"""An item holds outcomes up to this size; past it, another item. Billed by the KB, an
item of 4 KB costs what four of 1 KB cost, but it repeats the keys and topic less often."""
_BUDGET = RECORD_ITEM_BYTES - 8
"""Room for the item counter of the sort key to grow by a digit or two."""
_BATCH_WRITE_ROUNDS = 5
_BACKOFF_SECONDS = 0.05

Status = Literal["ok", "gone", "rejected", "retrying", "dead", "skipped"]
"""ok: 2xx; gone: 410 (subscription removed); rejected: RFC 8935 400 (final);
retrying: failed, another attempt is scheduled; dead: failed, schedule exhausted;
skipped: the subscription had ended before a retry."""


MARKER_MAX_BYTES = 1024
"""A ``jti`` marker is one write unit (1 KB) whatever the publisher's jti and topic."""
MARKER_JTI_MAX_LITERAL_BYTES = 768
"""A marker's ``jti`` up to this many bytes is its own key part (any publisher's UUID-like
jti); a longer one is hashed, so that key id, jti and TTL stay within one write unit."""
JTI_KEY_MAX_LITERAL_BYTES = 1024
"""A ``jti`` up to this many UTF-8 bytes is its own key part; a longer one is hashed."""


def _jti_part(jti: str, limit: int = JTI_KEY_MAX_LITERAL_BYTES) -> str:
    encoded = jti.encode("utf-8")
    if len(encoded) <= limit:
        return f"#{jti}"
    # "H#" cannot begin a literal part, which always starts with "#".
    return f"H#{hashlib.sha256(encoded).hexdigest()}"


ANONYMOUS_PUBLISHER = "-"
"""The marker scope of events published without a known key (a key id is hex, never "-")."""


def event_key(jti: str, publisher: str = "") -> str:
    """``EVENT#<publisher key id>#<jti>``: a jti is unique per publisher, not across the hub."""
    return f"EVENT#{publisher or ANONYMOUS_PUBLISHER}{_jti_part(jti, MARKER_JTI_MAX_LITERAL_BYTES)}"


def delivery_key(jti: str) -> str:
    return f"DELIVERY{_jti_part(jti)}"


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt's outcome.

    Made with the callback URL; stored and read back with only its host and the
    subscription id (``callback`` is empty in an attempt read from the table).
    """

    jti: str
    topic: str
    callback: str = field(compare=False, repr=False)
    attempt: int
    status: Status
    at: float
    status_code: int | None = None
    error: str = ""
    duration_ms: int = 0
    subscription_id: str = ""
    """Derived from (topic, callback) when not given."""
    callback_host: str = ""
    """Derived from the callback when not given."""

    def __post_init__(self) -> None:
        if self.callback and not (self.subscription_id and self.callback_host):
            sub_id, host = _names(self.topic, self.callback)
            if not self.subscription_id:
                object.__setattr__(self, "subscription_id", sub_id)
            if not self.callback_host:
                object.__setattr__(self, "callback_host", host)


@functools.lru_cache(maxsize=16384)
def _names(topic: str, callback: str) -> tuple[str, str]:
    """(subscription id, callback host) of a subscription, remembered by the container: a
    fan-out names each of its subscriptions in every invocation, and a hash and a URL parse
    per delivery cost the settling thread more than the rest of its record."""
    return subscription_id(topic, callback), callback_host(callback)


class EventMarkers:
    """``jti`` markers that make re-sent events idempotent for 48 hours."""

    def __init__(self, clients: AwsClients, settings: Settings) -> None:
        if not settings.table_name:
            raise ConfigurationError("SETHUB_TABLE_NAME is not set")
        self._clients = clients
        self._table = settings.table_name

    @property
    def _db(self) -> DynamoDBClient:
        return self._clients.dynamodb

    def claim(self, jti: str, topic: str, *, now: float, publisher: str = "") -> bool:
        """Mark ``publisher``'s ``jti`` as accepted; False when it already was (a duplicate)."""
        item = {
            "pk": {"S": event_key(jti, publisher)},
            "sk": {"S": "EVENT"},
            "ttl": {"N": str(int(now) + EVENT_MARKER_TTL_SECONDS)},
        }
        # The topic is for operators only: kept when the marker stays within one write unit.
        with_topic = {**item, "topic": {"S": topic}}
        if item_size(with_topic) <= MARKER_MAX_BYTES:
            item = with_topic
        try:
            self._db.put_item(
                TableName=self._table,
                Item=item,
                # TTL deletion is late: an expired marker no longer counts.
                ConditionExpression="attribute_not_exists(pk) OR #ttl < :now",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
            )
        except ClientError as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise UpstreamError(f"DynamoDB could not record an event: {aws_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise UpstreamError(f"DynamoDB could not record an event: {aws_error_code(exc)}") from exc
        return True

    def release(self, jti: str, *, publisher: str = "") -> None:
        """Forget ``jti`` (its enqueue failed), so that the publisher's retry is accepted."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key={"pk": {"S": event_key(jti, publisher)}, "sk": {"S": "EVENT"}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"DynamoDB could not release an event: {aws_error_code(exc)}") from exc


class DeliveryRecords:
    """Delivery outcomes, packed into items of one event each and batch-written with a 30-day TTL."""

    def __init__(
        self, clients: AwsClients, settings: Settings, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        if not settings.table_name:
            raise ConfigurationError("SETHUB_TABLE_NAME is not set")
        self._clients = clients
        self._table = settings.table_name
        self._sleep = sleep

    def write(self, attempts: Sequence[Attempt]) -> None:
        """Store ``attempts``, packed into items, 25 items per call; ``UpstreamError`` if some were not."""
        items = pack(attempts)
        for start in range(0, len(items), BATCH_WRITE_MAX):
            self.write_items(items[start : start + BATCH_WRITE_MAX])

    def write_items(self, items: Sequence[dict[str, Any]]) -> None:
        """One ``BatchWriteItem`` of at most 25 record items, sending ``UnprocessedItems`` again
        a bounded number of times with a short backoff; ``UpstreamError`` if some remain."""
        if len(items) > BATCH_WRITE_MAX:
            raise ValueError(f"at most {BATCH_WRITE_MAX} items per batch")
        if not items:
            return
        pending: Any = {self._table: [{"PutRequest": {"Item": item}} for item in items]}
        try:
            for round_ in range(_BATCH_WRITE_ROUNDS):
                if round_:
                    # Unprocessed items mean throttling: back off (50, 100, 200, 400 ms, jittered).
                    self._sleep(_BACKOFF_SECONDS * 2 ** (round_ - 1) * (0.5 + random.random() / 2))  # noqa: S311 (jitter)
                pending = self._clients.dynamodb.batch_write_item(RequestItems=pending).get(
                    "UnprocessedItems"
                )
                if not pending:
                    return
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"DynamoDB could not record deliveries: {aws_error_code(exc)}") from exc
        left = sum(len(requests) for requests in pending.values())
        raise UpstreamError(f"DynamoDB left {left} delivery record items unprocessed")

    def for_event(self, jti: str) -> list[Attempt]:
        """Every recorded attempt of an event, in the order they were recorded."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": delivery_key(jti)}},
        }
        found: list[Attempt] = []
        try:
            while True:
                page = self._clients.dynamodb.query(**kwargs)
                for item in page.get("Items", []):
                    found.extend(_attempts(jti, item))
                if "LastEvaluatedKey" not in page:
                    return found
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"DynamoDB could not read delivery records: {aws_error_code(exc)}") from exc


class _Packer:
    """The outcomes of one (event, topic, time) filling record items of at most ``RECORD_ITEM_BYTES``."""

    def __init__(self, jti: str, topic: str, at: float, token: str) -> None:
        self.jti, self.topic, self.at, self._token = jti, topic, at, token
        self.lines: dict[tuple[str, int], str] = {}
        self._fixed = 0
        self._size = 0
        self.sealed = 0

    def add(self, attempt: Attempt) -> dict[str, Any] | None:
        """Adds ``attempt``; returns a full item to write first when it no longer fits."""
        line = _outcome_line(attempt)
        key = (attempt.subscription_id, attempt.attempt)
        full = None
        if key not in self.lines and self.lines and self._size + len(line.encode()) + 1 > _BUDGET:
            full = self.seal()
        previous = self.lines.pop(key, None)
        if previous is not None:
            # The same attempt twice (an event redelivered within one SQS batch): the last wins.
            self._size -= len(previous.encode()) + 1
        if not self.lines:
            self._size = item_size(self._item(""))
        self.lines[key] = line
        self._size += len(line.encode()) + 1
        return full

    def seal(self) -> dict[str, Any] | None:
        if not self.lines:
            return None
        item = self._item("\n".join(self.lines.values()))
        self.lines = {}
        self.sealed += 1
        return item

    def _item(self, outcomes: str) -> dict[str, Any]:
        return {
            "pk": {"S": delivery_key(self.jti)},
            # Unique per invocation and item: redeliveries and retries add items, never overwrite.
            "sk": {"S": f"{int(self.at * 1000):013d}#{self._token}#{self.sealed}"},
            "topic": {"S": self.topic},
            "at": {"N": f"{self.at:.3f}"},
            "ttl": {"N": str(int(self.at) + DELIVERY_RECORD_TTL_SECONDS)},
            # Never a URL: a line names the callback by subscription id and host.
            "o": {"S": outcomes},
        }


def pack(attempts: Iterable[Attempt], *, token: str | None = None) -> list[dict[str, Any]]:
    """Record items for ``attempts``: one per (event, topic, time), split only past ``RECORD_ITEM_BYTES``."""
    token = token or secrets.token_hex(4)
    packers: dict[tuple[str, str, float], _Packer] = {}
    items: list[dict[str, Any]] = []
    for attempt in attempts:
        key = (attempt.jti, attempt.topic, attempt.at)
        packer = packers.get(key)
        if packer is None:
            packer = packers[key] = _Packer(attempt.jti, attempt.topic, attempt.at, token)
        full = packer.add(attempt)
        if full is not None:
            items.append(full)
    items.extend(item for packer in packers.values() if (item := packer.seal()) is not None)
    return items


class RecordBatcher:
    """Packs settled attempts into record items and writes them 25 items per ``BatchWriteItem``.

    Each event's outcomes of the invocation go into one item (more only past
    ``RECORD_ITEM_BYTES``: a big fan-out), so the success path costs about one write unit
    per event per 15 subscriptions. Items that fill up during the deliveries are written on
    ``executor`` while the rest are in flight (25 per call; fewer when no write is in
    flight: 1, 2, 4, ... items); ``finish`` writes the others and waits for all of them.
    Used by one thread at a time (the one settling outcomes).
    """

    def __init__(self, records: DeliveryRecords, executor: Executor) -> None:
        self._records = records
        self._executor = executor
        self._token = secrets.token_hex(4)
        self._packers: dict[tuple[str, str, float], _Packer] = {}
        self._ready: list[dict[str, Any]] = []
        self._futures: list[tuple[int, Future[None]]] = []
        self._least = 1
        """Full items a write waits for while none is in flight (doubles with each write)."""
        self._lock = threading.Lock()

    def add(self, attempt: Attempt) -> None:
        with self._lock:
            key = (attempt.jti, attempt.topic, attempt.at)
            packer = self._packers.get(key)
            if packer is None:
                packer = self._packers[key] = _Packer(attempt.jti, attempt.topic, attempt.at, self._token)
            full = packer.add(attempt)
            if full is None:
                return
            self._ready.append(full)
            # A full batch goes at once; fewer go when no write is in flight, so the writes of a
            # big fan-out overlap its deliveries instead of all waiting for the end: the first
            # full item alone, then twice as many each time (every call costs the client about
            # as much CPU as a dozen deliveries; one item per call was a call per 64 outcomes).
            ready = len(self._ready)
            busy = any(not future.done() for _, future in self._futures)
            if ready < BATCH_WRITE_MAX and (ready < self._least or busy):
                return
            batch, self._ready = self._ready, []
            self._least = min(BATCH_WRITE_MAX, 2 * self._least)
        self._submit(batch)

    def finish(self) -> None:
        """Write what is left and wait for every batch; ``UpstreamError`` if some were not written."""
        with self._lock:
            ready = self._ready + [item for p in self._packers.values() if (item := p.seal()) is not None]
            self._ready = []
        for start in range(0, len(ready), BATCH_WRITE_MAX):
            self._submit(ready[start : start + BATCH_WRITE_MAX])
        lost = 0
        reason = ""
        for size, future in self._futures:
            try:
                future.result()
            except UpstreamError as exc:
                lost += size
                reason = str(exc)
            except Exception as exc:  # a bug must not cost the other batches their wait
                logger.exception("writing delivery records crashed")
                lost += size
                reason = type(exc).__name__
        self._futures = []
        if lost:
            raise UpstreamError(f"{lost} delivery records were not written: {reason}")

    def _submit(self, items: list[dict[str, Any]]) -> None:
        outcomes = sum(item["o"]["S"].count("\n") + 1 for item in items)
        self._futures.append((outcomes, self._executor.submit(self._records.write_items, items)))


def item_size(item: Mapping[str, Any]) -> int:
    """An item's size as DynamoDB bills it (names + values; a number at most 21 bytes)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        if "S" in value:
            size += len(value["S"].encode())
        elif "N" in value:
            # About one byte per two significant digits, plus one: rounded up, to stay on the safe side.
            size += min(21, (len(value["N"].replace(".", "").replace("-", "")) + 1) // 2 + 1)
        else:
            size += len(repr(value).encode())
    return size


def _outcome_line(attempt: Attempt) -> str:
    # Hosts and ids hold no whitespace; the error is folded onto one line, tabs included.
    error = " ".join(attempt.error[:MAX_ERROR_LENGTH].split())
    code = "" if attempt.status_code is None else str(attempt.status_code)
    return "\t".join(
        (
            attempt.subscription_id,
            attempt.callback_host,
            str(attempt.attempt),
            attempt.status,
            code,
            str(attempt.duration_ms),
            error,
        )
    )


def _attempts(jti: str, item: dict[str, Any]) -> list[Attempt]:
    topic = item["topic"]["S"]
    if "o" not in item:
        return [_legacy_attempt(jti, item)]
    at = float(item["at"]["N"])
    found = []
    for line in item["o"]["S"].split("\n"):
        sub_id, host, attempt, status, code, duration, error = line.split("\t", 6)
        found.append(
            Attempt(
                jti=jti,
                topic=topic,
                callback="",
                subscription_id=sub_id,
                callback_host=host,
                attempt=int(attempt),
                status=status,  # type: ignore[arg-type]
                at=at,
                status_code=int(code) if code else None,
                error=error,
                duration_ms=int(duration),
            )
        )
    return found


def _legacy_attempt(jti: str, item: dict[str, Any]) -> Attempt:
    """An item of one attempt each, as written before outcomes were packed per event."""
    topic = item["topic"]["S"]
    # Records written before callbacks were redacted still hold the URL: name it the new way.
    legacy = item.get("callback", {}).get("S", "")
    return Attempt(
        jti=jti,
        topic=topic,
        callback="",
        subscription_id=item["subscription"]["S"]
        if "subscription" in item
        else subscription_id(topic, legacy),
        callback_host=item["callback_host"]["S"] if "callback_host" in item else callback_host(legacy),
        attempt=int(item["attempt"]["N"]),
        status=item["status"]["S"],
        at=float(item["at"]["N"]),
        status_code=int(item["status_code"]["N"]) if "status_code" in item else None,
        error=item.get("error", {}).get("S", ""),
        duration_ms=int(item["duration_ms"]["N"]),
    )


__all__ = [
    "ANONYMOUS_PUBLISHER",
    "BATCH_WRITE_MAX",
    "DELIVERY_RECORD_TTL_SECONDS",
    "EVENT_MARKER_TTL_SECONDS",
    "RECORD_ITEM_BYTES",
    "Attempt",
    "DeliveryRecords",
    "EventMarkers",
    "RecordBatcher",
    "Status",
    "delivery_key",
    "event_key",
    "item_size",
    "pack",
]
