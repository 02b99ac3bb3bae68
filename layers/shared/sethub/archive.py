"""Accepted events kept for recovery (DESIGN.md "Delivery semantics", Recovery).

    ARCHIVE#TOPIC#<topic>  <at ms>#<token>#<n>     one dispatch batch's events of one topic

Dispatch keeps every event it takes from the events queue (``SetEvent``, ``ContentEvent``:
the queue message as it came, so a recovery rebuilds exactly what a delivery builds) in one
item per (batch, topic): the messages as a zlib-compressed JSON list, written with the
batch's delivery records on the record threads, expired by the table's TTL after
``SETHUB_EVENT_RETENTION_DAYS``. A recovery reads one topic's items of a time window with
one Query (a page per MB).

Why DynamoDB and not S3: S3 bills $5 per million PUTs whatever their size, so an object
per batch costs $5 per million events when events come one per batch (the default batching
window at low rates), $0.50 in full batches of 10; DynamoDB bills the bytes (one write unit
per KB, $0.625 per million), and a compressed batch of 10 SETs is a few KB: about $0.2 per
million in full batches and $0.63 one event per batch, plus storage ($0.25 per GB-month,
and $0.20 for the table's point-in-time recovery) of well under a GB per million events
for 14 days. The table, its KMS encryption at rest, its TTL and dispatch's
``BatchWriteItem`` grant already exist: no new resource, no new permission. ``make bench``
prices it on its own lines from the items the run wrote.

The key is the time dispatch archived the batch, which is at or after the time the event
was accepted: a window "since T" holds every event accepted since T, and possibly one
accepted just before T and dispatched after it (receivers deduplicate on ``jti``). A
message SQS delivered twice is archived twice and read once (deduplicated on ``jti``).
One topic's archive is one partition: about 1 MB/s of compressed events per topic.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from sethub.errors import UpstreamError, aws_error_code
from sethub.messages import ContentEvent, MessageFormatError, SetEvent, parse_message
from sethub.subscriptions import topic_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

ARCHIVE_PREFIX = "ARCHIVE#"
ITEM_PAYLOAD_BYTES = 400 * 1024 - 4096
"""Compressed events per item: DynamoDB's 400 KB item limit less the keys (a topic key is
at most ~1 KB) and the other attributes."""
BATCH_WRITE_MAX = 25
_WRITE_ROUNDS = 5
_BACKOFF_SECONDS = 0.05

ArchivedMessage = SetEvent | ContentEvent


def archive_key(topic: str) -> str:
    """The partition of a topic's archive (a long topic is hashed, as ``topic_key`` does)."""
    return f"{ARCHIVE_PREFIX}{topic_key(topic)}"


def _sort_key(at_ms: int, token: str = "", index: int | None = None) -> str:
    # Fixed width, so that the string order is the time order.
    key = f"{at_ms:015d}"
    return key if index is None else f"{key}#{token}#{index}"


@dataclass(frozen=True)
class ArchivedEvent:
    """An event as dispatch kept it, and when."""

    at: float
    message: ArchivedMessage

    @property
    def jti(self) -> str:
        return self.message.jti

    def order(self) -> tuple[float, float, float, str]:
        """Delivery order: ``toe`` (when it happened), else ``iat``; then ``iat``, archive time, ``jti``.

        Published content has neither: it takes its place by the time it was archived.
        """
        if isinstance(self.message, SetEvent):
            iat = _number(self.message.claims.get("iat"), self.at)
            toe = _number(self.message.claims.get("toe"), iat)
            return toe, iat, self.at, self.jti
        return self.at, self.at, self.at, self.jti


def _number(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return default


def in_order(events: Iterable[ArchivedEvent]) -> list[ArchivedEvent]:
    """Each ``jti`` once (its first archiving), in ``toe``/``iat`` order."""
    first: dict[str, ArchivedEvent] = {}
    for event in sorted(events, key=lambda e: (e.at, e.jti)):
        first.setdefault(event.jti, event)
    return sorted(first.values(), key=ArchivedEvent.order)


def encode(messages: Sequence[ArchivedMessage]) -> bytes:
    return zlib.compress(json.dumps([m.to_json() for m in messages], separators=(",", ":")).encode(), 6)


def decode(data: bytes) -> list[ArchivedMessage]:
    found: list[ArchivedMessage] = []
    for body in json.loads(zlib.decompress(data)):
        try:
            message = parse_message(body)
        except MessageFormatError:
            continue  # a message kind a later version added: not ours to deliver
        if isinstance(message, SetEvent | ContentEvent):
            found.append(message)
    return found


def _chunks(messages: list[ArchivedMessage]) -> Iterable[tuple[list[ArchivedMessage], bytes]]:
    """Messages in as few items as fit: the whole group, else halves, recursively."""
    data = encode(messages)
    if len(data) <= ITEM_PAYLOAD_BYTES:
        yield messages, data
    elif len(messages) == 1:
        # Cannot happen for queue messages (SQS caps them at 256 KiB): say so if it does.
        logger.error("event too large to keep for recovery", extra={"jti": messages[0].jti})
    else:
        half = len(messages) // 2
        yield from _chunks(messages[:half])
        yield from _chunks(messages[half:])


def items_for(
    messages: Sequence[ArchivedMessage], *, now: float, retention_days: int, token: str | None = None
) -> list[dict[str, Any]]:
    """The archive items of one batch: one per topic (more only past the item size limit)."""
    by_topic: dict[str, list[ArchivedMessage]] = {}
    for message in messages:
        by_topic.setdefault(message.topic, []).append(message)
    token = token or secrets.token_hex(6)
    at_ms = int(now * 1000)
    expires = int(now) + retention_days * 86400
    items: list[dict[str, Any]] = []
    for topic, found in by_topic.items():
        for chunk, data in _chunks(found):
            items.append(
                {
                    "pk": {"S": archive_key(topic)},
                    "sk": {"S": _sort_key(at_ms, token, len(items))},
                    "events": {"B": data},
                    "n": {"N": str(len(chunk))},
                    "ttl": {"N": str(expires)},
                }
            )
    return items


class EventArchive:
    """Writes (dispatch) and reads (recovery) the archive in the hub table."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table_name: str,
        *,
        retention_days: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._db = dynamodb
        self._table = table_name
        self._retention_days = retention_days
        self._sleep = sleep

    def keep(self, messages: Sequence[ArchivedMessage], *, now: float) -> None:
        """Archive a batch's events; ``UpstreamError`` if DynamoDB did not take them all."""
        items = items_for(messages, now=now, retention_days=self._retention_days)
        for start in range(0, len(items), BATCH_WRITE_MAX):
            self._write(items[start : start + BATCH_WRITE_MAX])

    def _write(self, items: list[dict[str, Any]]) -> None:
        pending: Any = {self._table: [{"PutRequest": {"Item": item}} for item in items]}
        try:
            for round_ in range(_WRITE_ROUNDS):
                if round_:
                    # Unprocessed items mean throttling: back off, jittered.
                    self._sleep(_BACKOFF_SECONDS * 2 ** (round_ - 1) * (0.5 + random.random() / 2))  # noqa: S311
                pending = self._db.batch_write_item(RequestItems=pending).get("UnprocessedItems")
                if not pending:
                    return
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(
                f"DynamoDB could not keep events for recovery: {aws_error_code(exc)}"
            ) from exc
        raise UpstreamError("DynamoDB left events unkept for recovery (throttled)")

    def events(
        self, topic: str, *, since: float, until: float | None = None, now: float | None = None
    ) -> list[ArchivedEvent]:
        """A topic's events archived in ``[since, until]``, each ``jti`` once, in ``toe``/``iat`` order."""
        current = time.time() if now is None else now
        upper = _sort_key(int(until * 1000)) + "~" if until is not None else "~"
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :from AND :to",
            "ExpressionAttributeValues": {
                ":pk": {"S": archive_key(topic)},
                ":from": {"S": _sort_key(max(int(since * 1000), 0))},
                ":to": {"S": upper},
            },
        }
        found: list[ArchivedEvent] = []
        try:
            while True:
                page = self._db.query(**kwargs)
                for item in page.get("Items", []):
                    at = int(item["sk"]["S"].split("#", 1)[0]) / 1000
                    # TTL deletes late: an expired item is no longer kept.
                    if int(item.get("ttl", {}).get("N", "0")) < current:
                        continue
                    found.extend(ArchivedEvent(at, message) for message in decode(item["events"]["B"]))
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"DynamoDB could not read kept events: {aws_error_code(exc)}") from exc
        return in_order(found)


__all__ = [
    "ARCHIVE_PREFIX",
    "ArchivedEvent",
    "EventArchive",
    "archive_key",
    "decode",
    "encode",
    "in_order",
    "items_for",
]
