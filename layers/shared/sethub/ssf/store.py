"""The SSF items of the hub table (DynamoDB adapter).

    item                pk                           sk                notable attributes
    receiver (client)   SSFCLIENTS                   <client id>       secret_hash, scopes, name, created_at
    access token        SSFTOKEN#<sha256 of token>   TOKEN             client_id, scopes, expires_at, ttl
    stream              SSFRECV#<client id>          STREAM#<id>       stream (JSON), status
    stream by type      SSFTYPE#<event type URI>     STREAM#<id>       stream (JSON): a copy, for routing
    queued SET          SSFQ#<stream id>             SET#<jti>         set (compact JWS), ttl
    flush lease         SSFQ#<stream id>             FLUSH             owner, page, until, ttl
    signing key         SIGNING                      SSFKEY            kid, jwk, wrapped

A stream and its index copies (one per routed event type it receives) are written in
one transaction, so dispatch finds the streams of an event type with one ``Query`` and
never sees a half-changed stream. SET ``jti``s are time-ordered, so a stream's queue
reads oldest first.

Dispatch changes a stream (a failing push endpoint, sethub disabling it) only by
compare-and-swap (``change_stream``): the stored JSON must still be what it read, so it
never overwrites a receiver's concurrent change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from sethub.errors import ConfigurationError, UpstreamError, aws_error_code
from sethub.ssf.model import Stream

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CLIENTS_PK = "SSFCLIENTS"
QUEUE_TTL_SECONDS = 14 * 24 * 3600
"""Unacknowledged and held SETs are kept this long (SETHUB_EVENT_RETENTION_DAYS' default)."""
MAX_TRANSACTION_ITEMS = 100
MAX_DROP_PAGE = 100
CHANGE_ATTEMPTS = 3
"""Compare-and-swap rounds of ``change_stream`` before it gives up (someone else keeps changing it)."""


@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    secret_hash: str
    scopes: frozenset[str]
    name: str = ""
    created_at: int = 0


@dataclass(frozen=True)
class TokenRecord:
    client_id: str
    scopes: frozenset[str]
    expires_at: int


@dataclass(frozen=True)
class QueuedSet:
    jti: str
    jws: str


def _stream_json(stream: Stream) -> str:
    return json.dumps(asdict(stream), separators=(",", ":"), ensure_ascii=False)


def stream_from_json(text: str) -> Stream:
    data = json.loads(text)
    for name in ("events_requested", "removed_subjects"):
        data[name] = tuple(data.get(name) or ())
    return Stream(**data)


def _stream_key(client_id: str, stream_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"SSFRECV#{client_id}"}, "sk": {"S": f"STREAM#{stream_id}"}}


def _lease_key(stream_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"SSFQ#{stream_id}"}, "sk": {"S": "FLUSH"}}


def _index_key(event_type: str, stream_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"SSFTYPE#{event_type}"}, "sk": {"S": f"STREAM#{stream_id}"}}


class SsfStore:
    """Every SSF read and write; one instance per container."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        if not table_name:
            raise ConfigurationError("SETHUB_TABLE_NAME is not set")
        self._db = dynamodb
        self._table = table_name

    # ------------------------------------------------------------------ receivers

    def put_client(self, record: ClientRecord, *, only_new: bool = False) -> bool:
        """Store ``record``; with ``only_new``, False when the client id is taken."""
        item = {
            "pk": {"S": CLIENTS_PK},
            "sk": {"S": record.client_id},
            "secret_hash": {"S": record.secret_hash},
            "scopes": {"S": " ".join(sorted(record.scopes))},
            "name": {"S": record.name},
            "created_at": {"N": str(record.created_at)},
        }
        condition = {"ConditionExpression": "attribute_not_exists(pk)"} if only_new else {}
        try:
            self._db.put_item(TableName=self._table, Item=item, **condition)  # type: ignore[arg-type]
        except ClientError as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise UpstreamError(f"could not store an SSF receiver: {aws_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise UpstreamError(f"could not store an SSF receiver: {aws_error_code(exc)}") from exc
        return True

    def get_client(self, client_id: str) -> ClientRecord | None:
        item = self._get({"pk": {"S": CLIENTS_PK}, "sk": {"S": client_id}}, "an SSF receiver")
        return None if item is None else _client(item)

    def list_clients(self) -> list[ClientRecord]:
        return [_client(item) for item in self._query(CLIENTS_PK, "SSF receivers")]

    def delete_client(self, client_id: str) -> None:
        self._delete({"pk": {"S": CLIENTS_PK}, "sk": {"S": client_id}}, "an SSF receiver")

    # ------------------------------------------------------------------ tokens

    def put_token(self, token_hash: str, record: TokenRecord) -> None:
        item = {
            "pk": {"S": f"SSFTOKEN#{token_hash}"},
            "sk": {"S": "TOKEN"},
            "client_id": {"S": record.client_id},
            "scopes": {"S": " ".join(sorted(record.scopes))},
            "expires_at": {"N": str(record.expires_at)},
            "ttl": {"N": str(record.expires_at + 3600)},
        }
        try:
            self._db.put_item(TableName=self._table, Item=item)  # type: ignore[arg-type]
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"could not store an access token: {aws_error_code(exc)}") from exc

    def get_token(self, token_hash: str) -> TokenRecord | None:
        item = self._get({"pk": {"S": f"SSFTOKEN#{token_hash}"}, "sk": {"S": "TOKEN"}}, "an access token")
        if item is None:
            return None
        return TokenRecord(
            client_id=item["client_id"]["S"],
            scopes=frozenset(item["scopes"]["S"].split()),
            expires_at=int(item["expires_at"]["N"]),
        )

    # ------------------------------------------------------------------ streams

    def get_stream(self, client_id: str, stream_id: str) -> Stream | None:
        item = self._get(_stream_key(client_id, stream_id), "a stream", consistent=True)
        return None if item is None else stream_from_json(item["stream"]["S"])

    def list_streams(self, client_id: str) -> list[Stream]:
        return [
            stream_from_json(item["stream"]["S"])
            for item in self._query(f"SSFRECV#{client_id}", "streams", consistent=True)
        ]

    def save_stream(self, stream: Stream, previous: Stream | None = None) -> None:
        """Write ``stream`` and its index copies, removing index entries it no longer needs."""
        body = _stream_json(stream)
        writes: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {**_stream_key(stream.client_id, stream.stream_id), "stream": {"S": body}},
                }
            }
        ]
        for event_type in stream.routed_events:
            item = {**_index_key(event_type, stream.stream_id), "stream": {"S": body}}
            writes.append({"Put": {"TableName": self._table, "Item": item}})
        stale = set(previous.routed_events if previous else ()) - set(stream.routed_events)
        for event_type in sorted(stale):
            writes.append(
                {"Delete": {"TableName": self._table, "Key": _index_key(event_type, stream.stream_id)}}
            )
        self._transact(writes)

    def delete_stream(self, stream: Stream) -> None:
        writes: list[dict[str, Any]] = [
            {"Delete": {"TableName": self._table, "Key": _stream_key(stream.client_id, stream.stream_id)}}
        ]
        writes += [
            {"Delete": {"TableName": self._table, "Key": _index_key(event_type, stream.stream_id)}}
            for event_type in stream.routed_events
        ]
        self._transact(writes)

    def change_stream(
        self, client_id: str, stream_id: str, change: Callable[[Stream], Stream | None]
    ) -> Stream | None:
        """Apply ``change`` to the stored stream by compare-and-swap; the stream as written, or
        None when there is no such stream or ``change`` wanted nothing (it returned None).

        One transaction of UpdateItems (the stream and its index copies), conditioned on the
        stream's JSON being what was read; a concurrent change is re-read and ``change``
        applied to it again. Routed event types never change here, so no index item goes.
        """
        key = _stream_key(client_id, stream_id)
        for _ in range(CHANGE_ATTEMPTS):
            item = self._get(key, "a stream", consistent=True)
            if item is None:
                return None
            raw = item["stream"]["S"]
            updated = change(stream_from_json(raw))
            if updated is None:
                return None
            body = {":new": {"S": _stream_json(updated)}}
            writes: list[dict[str, Any]] = [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": key,
                        "UpdateExpression": "SET #s = :new",
                        "ConditionExpression": "#s = :old",
                        "ExpressionAttributeNames": {"#s": "stream"},
                        "ExpressionAttributeValues": {**body, ":old": {"S": raw}},
                    }
                }
            ]
            writes += [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _index_key(event_type, stream_id),
                        "UpdateExpression": "SET #s = :new",
                        "ExpressionAttributeNames": {"#s": "stream"},
                        "ExpressionAttributeValues": body,
                    }
                }
                for event_type in updated.routed_events
            ]
            try:
                self._db.transact_write_items(TransactItems=writes)  # type: ignore[arg-type]
            except ClientError as exc:
                if aws_error_code(exc) in ("TransactionCanceledException", "ConditionalCheckFailedException"):
                    continue  # changed meanwhile: read it again
                raise UpstreamError(f"could not change a stream: {aws_error_code(exc)}") from exc
            except BotoCoreError as exc:
                raise UpstreamError(f"could not change a stream: {aws_error_code(exc)}") from exc
            return updated
        raise UpstreamError("could not change a stream: it kept changing meanwhile")

    def streams_for_type(self, event_type: str) -> list[Stream]:
        """The streams receiving ``event_type``: one Query (pages followed)."""
        return [
            stream_from_json(item["stream"]["S"]) for item in self._query(f"SSFTYPE#{event_type}", "streams")
        ]

    # ------------------------------------------------------------------ queued SETs

    def enqueue(self, stream_id: str, sets: Sequence[QueuedSet], *, now: int) -> None:
        """Queue SETs for a poll stream, or hold them for a paused one (BatchWriteItem, 25 a call)."""
        requests = [
            {
                "PutRequest": {
                    "Item": {
                        "pk": {"S": f"SSFQ#{stream_id}"},
                        "sk": {"S": f"SET#{queued.jti}"},
                        "set": {"S": queued.jws},
                        "ttl": {"N": str(now + QUEUE_TTL_SECONDS)},
                    }
                }
            }
            for queued in sets
        ]
        self._batch_write(requests, "queue SETs")

    def queued(self, stream_id: str, *, limit: int, consistent: bool = True) -> tuple[list[QueuedSet], bool]:
        """The oldest ``limit`` queued SETs and whether there are more."""
        if limit <= 0:
            return [], False
        try:
            response = self._db.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :set)",
                ExpressionAttributeValues={":pk": {"S": f"SSFQ#{stream_id}"}, ":set": {"S": "SET#"}},
                Limit=limit + 1,
                ConsistentRead=consistent,
            )
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"could not read queued SETs: {aws_error_code(exc)}") from exc
        items = response.get("Items", [])
        found = [QueuedSet(jti=item["sk"]["S"].removeprefix("SET#"), jws=item["set"]["S"]) for item in items]
        # One more than asked for was read: its presence is moreAvailable.
        return found[:limit], len(found) > limit

    def acknowledge(self, stream_id: str, jtis: Iterable[str]) -> None:
        requests = [
            {"DeleteRequest": {"Key": {"pk": {"S": f"SSFQ#{stream_id}"}, "sk": {"S": f"SET#{jti}"}}}}
            for jti in dict.fromkeys(jtis)
        ]
        self._batch_write(requests, "acknowledge SETs")

    def drop_queue(self, stream_id: str) -> int:
        """Delete every queued or held SET of a stream (a disabled stream keeps none); how many."""
        dropped = 0
        while True:
            found, more = self.queued(stream_id, limit=MAX_DROP_PAGE)
            self.acknowledge(stream_id, [queued.jti for queued in found])
            dropped += len(found)
            if not more:
                return dropped

    # ------------------------------------------------------------------ flush lease

    def take_flush_lease(self, stream_id: str, owner: str, page: int, *, now: int, seconds: int) -> bool:
        """Hold the stream's flush for ``seconds``: when free, expired, or already ``owner``'s at ``page``.

        One flush of a stream at a time, and a stale copy of a page's task (SQS delivers at
        least once) finds the lease moved on and does nothing.
        """
        try:
            # UpdateItem (it creates the item too): dispatch's role has no PutItem.
            self._db.update_item(
                TableName=self._table,
                Key=_lease_key(stream_id),
                UpdateExpression="SET #o = :owner, #p = :page, #u = :until, #t = :ttl",
                # The owner's later pages take it over as they come; an earlier page's copy cannot.
                ConditionExpression="attribute_not_exists(pk) OR #u < :now OR (#o = :owner AND #p <= :page)",
                ExpressionAttributeNames={"#u": "until", "#o": "owner", "#p": "page", "#t": "ttl"},
                ExpressionAttributeValues={
                    ":now": {"N": str(now)},
                    ":owner": {"S": owner},
                    ":page": {"N": str(page)},
                    ":until": {"N": str(now + seconds)},
                    ":ttl": {"N": str(now + seconds + 3600)},
                },
            )
        except ClientError as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise UpstreamError(f"could not take a stream's flush lease: {aws_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise UpstreamError(f"could not take a stream's flush lease: {aws_error_code(exc)}") from exc
        return True

    def flush_lease_until(self, stream_id: str) -> int:
        """When the stream's flush lease runs out (0: none)."""
        item = self._get(_lease_key(stream_id), "a flush lease", consistent=True)
        return 0 if item is None else int(item["until"]["N"])

    def release_flush_lease(self, stream_id: str, owner: str) -> None:
        try:
            self._db.delete_item(
                TableName=self._table,
                Key=_lease_key(stream_id),
                ConditionExpression="#o = :owner",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                return  # taken over after it expired: the new owner's now
            raise UpstreamError(f"could not release a stream's flush lease: {aws_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise UpstreamError(f"could not release a stream's flush lease: {aws_error_code(exc)}") from exc

    # ------------------------------------------------------------------ helpers

    def _get(self, key: Mapping[str, Any], what: str, *, consistent: bool = False) -> dict[str, Any] | None:
        try:
            response = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=consistent)  # type: ignore[arg-type]
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"could not read {what}: {aws_error_code(exc)}") from exc
        return response.get("Item")  # type: ignore[return-value]

    def _delete(self, key: Mapping[str, Any], what: str) -> None:
        try:
            self._db.delete_item(TableName=self._table, Key=key)  # type: ignore[arg-type]
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"could not delete {what}: {aws_error_code(exc)}") from exc

    def _query(self, pk: str, what: str, *, consistent: bool = False) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
            try:
                response = self._db.query(
                    TableName=self._table,
                    KeyConditionExpression="pk = :pk",
                    ExpressionAttributeValues={":pk": {"S": pk}},
                    ConsistentRead=consistent,
                    **extra,
                )
            except (ClientError, BotoCoreError) as exc:
                raise UpstreamError(f"could not read {what}: {aws_error_code(exc)}") from exc
            items.extend(response.get("Items", []))  # type: ignore[arg-type]
            start = response.get("LastEvaluatedKey")  # type: ignore[assignment]
            if not start:
                return items

    def _transact(self, writes: list[dict[str, Any]]) -> None:
        if len(writes) > MAX_TRANSACTION_ITEMS:
            raise UpstreamError("a stream change touches too many index items")
        try:
            self._db.transact_write_items(TransactItems=writes)  # type: ignore[arg-type]
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"could not store a stream: {aws_error_code(exc)}") from exc

    def _batch_write(self, requests: list[dict[str, Any]], what: str) -> None:
        for start in range(0, len(requests), 25):
            pending: list[dict[str, Any]] = requests[start : start + 25]
            for _ in range(5):  # unprocessed items are retried a few times, then it fails
                try:
                    response = self._db.batch_write_item(RequestItems={self._table: pending})  # type: ignore[dict-item]
                except (ClientError, BotoCoreError) as exc:
                    raise UpstreamError(f"could not {what}: {aws_error_code(exc)}") from exc
                pending = response.get("UnprocessedItems", {}).get(self._table, [])  # type: ignore[assignment]
                if not pending:
                    break
            if pending:
                raise UpstreamError(f"could not {what}: DynamoDB left items unprocessed")


def _client(item: Mapping[str, Any]) -> ClientRecord:
    return ClientRecord(
        client_id=item["sk"]["S"],
        secret_hash=item["secret_hash"]["S"],
        scopes=frozenset(item["scopes"]["S"].split()),
        name=item.get("name", {}).get("S", ""),
        created_at=int(item.get("created_at", {}).get("N", "0")),
    )


__all__ = ["ClientRecord", "QueuedSet", "SsfStore", "TokenRecord", "stream_from_json"]
