"""The SSF items of the hub table (DynamoDB adapter).

    item                pk                           sk                notable attributes
    receiver (client)   SSFCLIENTS                   <client id>       secret_hash, scopes, name, created_at
    access token        SSFTOKEN#<sha256 of token>   TOKEN             client_id, scopes, expires_at, ttl
    stream              SSFRECV#<client id>          STREAM#<id>       stream (JSON), status
    stream by type      SSFTYPE#<event type URI>     STREAM#<id>       stream (JSON): a copy, for routing
    queued SET          SSFQ#<stream id>             SET#<jti>         set (compact JWS), ttl
    signing key         SIGNING                      SSFKEY            kid, jwk, wrapped

A stream and its index copies (one per routed event type it receives) are written in
one transaction, so dispatch finds the streams of an event type with one ``Query`` and
never sees a half-changed stream. SET ``jti``s are time-ordered, so a stream's queue
reads oldest first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from sethub.errors import ConfigurationError, UpstreamError
from sethub.ssf.model import Stream

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CLIENTS_PK = "SSFCLIENTS"
QUEUE_TTL_SECONDS = 14 * 24 * 3600
"""Unacknowledged and held SETs are kept this long (SETHUB_EVENT_RETENTION_DAYS' default)."""
MAX_TRANSACTION_ITEMS = 100


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


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "error"))
    return type(exc).__name__


def _stream_json(stream: Stream) -> str:
    return json.dumps(asdict(stream), separators=(",", ":"), ensure_ascii=False)


def stream_from_json(text: str) -> Stream:
    data = json.loads(text)
    for name in ("events_requested", "removed_subjects"):
        data[name] = tuple(data.get(name) or ())
    return Stream(**data)


def _stream_key(client_id: str, stream_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"SSFRECV#{client_id}"}, "sk": {"S": f"STREAM#{stream_id}"}}


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
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise UpstreamError(f"could not store an SSF receiver: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise UpstreamError(f"could not store an SSF receiver: {_code(exc)}") from exc
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
            raise UpstreamError(f"could not store an access token: {_code(exc)}") from exc

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
            raise UpstreamError(f"could not read queued SETs: {_code(exc)}") from exc
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

    # ------------------------------------------------------------------ helpers

    def _get(self, key: Mapping[str, Any], what: str, *, consistent: bool = False) -> dict[str, Any] | None:
        try:
            response = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=consistent)  # type: ignore[arg-type]
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"could not read {what}: {_code(exc)}") from exc
        return response.get("Item")  # type: ignore[return-value]

    def _delete(self, key: Mapping[str, Any], what: str) -> None:
        try:
            self._db.delete_item(TableName=self._table, Key=key)  # type: ignore[arg-type]
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"could not delete {what}: {_code(exc)}") from exc

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
                raise UpstreamError(f"could not read {what}: {_code(exc)}") from exc
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
            raise UpstreamError(f"could not store a stream: {_code(exc)}") from exc

    def _batch_write(self, requests: list[dict[str, Any]], what: str) -> None:
        for start in range(0, len(requests), 25):
            pending: list[dict[str, Any]] = requests[start : start + 25]
            for _ in range(5):  # unprocessed items are retried a few times, then it fails
                try:
                    response = self._db.batch_write_item(RequestItems={self._table: pending})  # type: ignore[dict-item]
                except (ClientError, BotoCoreError) as exc:
                    raise UpstreamError(f"could not {what}: {_code(exc)}") from exc
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
