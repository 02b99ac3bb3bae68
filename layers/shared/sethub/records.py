"""What the hub table remembers about events: accepted ``jti``s and delivery attempts.

    EVENT#<publisher>#<jti>  EVENT                        ingest's duplicate check (48 h)
    DELIVERY#<jti>  <subscription id>#<attempt:03d>      one delivery attempt (30 days)

A ``jti`` marker is scoped by the publisher's key id: one publisher cannot pre-claim
another's ``jti`` and have its event silently dropped as a duplicate.

Keys stay within DynamoDB's sizes: the sort key names a subscription by its id (a
hash of topic and callback, both kept as attributes), and a ``jti`` too long for a key
(publishers' are capped at 256 characters, so only a hand-made message could carry
one) is hashed. A record names its callback by host and subscription id only: callback
URLs may carry tokens in their path or query. An operator answers "did subscriber X get
event Y, and what did it answer?" with one Query on ``DELIVERY#<jti>``
(``python -m sethub.deliveries``).
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from sethub.clients import AwsClients
from sethub.errors import ConfigurationError, UpstreamError
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
_BATCH_WRITE_ROUNDS = 5
_BACKOFF_SECONDS = 0.05

Status = Literal["ok", "gone", "rejected", "retrying", "dead", "skipped"]
"""ok: 2xx; gone: 410 (subscription removed); rejected: RFC 8935 400 (final);
retrying: failed, another attempt is scheduled; dead: failed, schedule exhausted;
skipped: the subscription had ended before a retry."""


JTI_KEY_MAX_LITERAL_BYTES = 1024
"""A ``jti`` up to this many UTF-8 bytes is its own key part; a longer one is hashed."""


def _jti_part(jti: str) -> str:
    encoded = jti.encode("utf-8")
    if len(encoded) <= JTI_KEY_MAX_LITERAL_BYTES:
        return f"#{jti}"
    # "H#" cannot begin a literal part, which always starts with "#".
    return f"H#{hashlib.sha256(encoded).hexdigest()}"


ANONYMOUS_PUBLISHER = "-"
"""The marker scope of events published without a known key (a key id is hex, never "-")."""


def event_key(jti: str, publisher: str = "") -> str:
    """``EVENT#<publisher key id>#<jti>``: a jti is unique per publisher, not across the hub."""
    return f"EVENT#{publisher or ANONYMOUS_PUBLISHER}{_jti_part(jti)}"


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
        if self.callback and not self.subscription_id:
            object.__setattr__(self, "subscription_id", subscription_id(self.topic, self.callback))
        if self.callback and not self.callback_host:
            object.__setattr__(self, "callback_host", callback_host(self.callback))

    @property
    def sort_key(self) -> str:
        return f"{self.subscription_id}#{self.attempt:03d}"


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
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": event_key(jti, publisher)},
                    "sk": {"S": "EVENT"},
                    "topic": {"S": topic},
                    "ttl": {"N": str(int(now) + EVENT_MARKER_TTL_SECONDS)},
                },
                # TTL deletion is late: an expired marker no longer counts.
                ConditionExpression="attribute_not_exists(pk) OR #ttl < :now",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise UpstreamError(f"DynamoDB could not record an event: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise UpstreamError(f"DynamoDB could not record an event: {_code(exc)}") from exc
        return True

    def release(self, jti: str, *, publisher: str = "") -> None:
        """Forget ``jti`` (its enqueue failed), so that the publisher's retry is accepted."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key={"pk": {"S": event_key(jti, publisher)}, "sk": {"S": "EVENT"}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"DynamoDB could not release an event: {_code(exc)}") from exc


class DeliveryRecords:
    """Delivery attempts, batch-written with a 30-day TTL."""

    def __init__(
        self, clients: AwsClients, settings: Settings, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        if not settings.table_name:
            raise ConfigurationError("SETHUB_TABLE_NAME is not set")
        self._clients = clients
        self._table = settings.table_name
        self._sleep = sleep

    def write(self, attempts: Sequence[Attempt]) -> None:
        """Store ``attempts`` batch after batch; ``UpstreamError`` if some could not be written."""
        for start in range(0, len(attempts), BATCH_WRITE_MAX):
            self.write_batch(attempts[start : start + BATCH_WRITE_MAX])

    def write_batch(self, attempts: Sequence[Attempt]) -> None:
        """One ``BatchWriteItem`` of at most 25 attempts, sending ``UnprocessedItems`` again
        a bounded number of times with a short backoff; ``UpstreamError`` if some remain."""
        if len(attempts) > BATCH_WRITE_MAX:
            raise ValueError(f"at most {BATCH_WRITE_MAX} attempts per batch")
        # A batch may not name one key twice (an event redelivered within one SQS batch
        # makes the same attempt twice): the last outcome wins, as a Put would.
        items = {(a.jti, a.sort_key): _item(a) for a in attempts}
        if not items:
            return
        pending: Any = {self._table: [{"PutRequest": {"Item": item}} for item in items.values()]}
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
            raise UpstreamError(f"DynamoDB could not record deliveries: {_code(exc)}") from exc
        left = sum(len(requests) for requests in pending.values())
        raise UpstreamError(f"DynamoDB left {left} delivery records unprocessed")

    def for_event(self, jti: str) -> list[Attempt]:
        """Every recorded attempt of an event, oldest first per subscription."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": delivery_key(jti)}},
        }
        found: list[Attempt] = []
        try:
            while True:
                page = self._clients.dynamodb.query(**kwargs)
                found.extend(_attempt(jti, item) for item in page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    return found
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"DynamoDB could not read delivery records: {_code(exc)}") from exc


class RecordBatcher:
    """Writes attempts in batches of 25 on ``executor`` as soon as each batch is full.

    The dispatcher adds every settled attempt; the writes overlap the deliveries still
    in flight, and ``finish`` writes the rest and waits for all of them. Used by one
    thread at a time (the one settling outcomes).
    """

    def __init__(self, records: DeliveryRecords, executor: Executor) -> None:
        self._records = records
        self._executor = executor
        self._batch: list[Attempt] = []
        self._futures: list[tuple[int, Future[None]]] = []
        self._lock = threading.Lock()

    def add(self, attempt: Attempt) -> None:
        with self._lock:
            self._batch.append(attempt)
            if len(self._batch) < BATCH_WRITE_MAX:
                return
            batch, self._batch = self._batch, []
        self._submit(batch)

    def finish(self) -> None:
        """Write what is left and wait for every batch; ``UpstreamError`` if some were not written."""
        with self._lock:
            batch, self._batch = self._batch, []
        if batch:
            self._submit(batch)
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

    def _submit(self, batch: list[Attempt]) -> None:
        self._futures.append((len(batch), self._executor.submit(self._records.write_batch, batch)))


def _item(attempt: Attempt) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": delivery_key(attempt.jti)},
        "sk": {"S": attempt.sort_key},
        "topic": {"S": attempt.topic},
        # Never the URL: its path or query may carry a token.
        "subscription": {"S": attempt.subscription_id},
        "callback_host": {"S": attempt.callback_host},
        "attempt": {"N": str(attempt.attempt)},
        "status": {"S": attempt.status},
        "duration_ms": {"N": str(attempt.duration_ms)},
        "at": {"N": f"{attempt.at:.3f}"},
        "ttl": {"N": str(int(attempt.at) + DELIVERY_RECORD_TTL_SECONDS)},
    }
    if attempt.status_code is not None:
        item["status_code"] = {"N": str(attempt.status_code)}
    if attempt.error:
        item["error"] = {"S": attempt.error[:MAX_ERROR_LENGTH]}
    return item


def _attempt(jti: str, item: dict[str, Any]) -> Attempt:
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


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "error"))
    return type(exc).__name__


__all__ = [
    "ANONYMOUS_PUBLISHER",
    "BATCH_WRITE_MAX",
    "DELIVERY_RECORD_TTL_SECONDS",
    "EVENT_MARKER_TTL_SECONDS",
    "Attempt",
    "DeliveryRecords",
    "EventMarkers",
    "RecordBatcher",
    "Status",
    "delivery_key",
    "event_key",
]
