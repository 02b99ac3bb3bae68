"""What the hub table holds, read for operators: topics, subscriptions, recent delivery outcomes.

Subscriptions are read by key, only what is asked: one topic's with one ``Query`` of its
partition (``TOPIC#<topic>``, ``SUB#`` items), or those in a state with a ``Query`` of the
``ByState`` index (partition ``state``), a page at a time (``limit``, ``next``). ``expired``
is not stored: it is an ``active`` item whose lease has run out (TTL deletes it later),
filtered on ``expires_at``. Each subscription's last outcome (``sethub.outcomes``) is on
its item only (its writes then cost no index write): a page read from the index gets it
with one ``BatchGetItem``.

``topics`` reads the index too: topic items carry ``state = topic`` (a partition no
subscription state shares), and the live subscriptions per topic are the ``active``
partition's entries, projected to their topic. ``recent_attempts`` still ``Scan``s
(filtered by key prefix): delivery records have no index by time, so it reads every item
of the table (about one read unit per 4 KB); ``sethub stats`` reads the records only on
``make local`` (a deployed stack's delivery numbers come from CloudWatch,
``sethub.hubstats.cloudwatch_summary``; moto has no CloudWatch percentiles).

Subscriptions are named by topic, subscription id and callback host (never the callback
URL, whose path or query may carry a token), as delivery records name them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from sethub import outcomes
from sethub.errors import UpstreamError, aws_error_code
from sethub.hygiene import callback_host
from sethub.outcomes import LastOutcome
from sethub.records import Attempt
from sethub.records import _attempts as attempts_of_item
from sethub.store import TOPIC_STATE
from sethub.subscriptions import SUBSCRIPTION_PREFIX, subscription_id, subscription_key, topic_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DELIVERY_PREFIX = "DELIVERY#"
STATE_INDEX = "ByState"
STORED_STATES = ("active", "disabled", "unsubscribed")
STATES = ("active", "expired", "disabled", "unsubscribed")
"""What ``--state`` takes: the stored states and ``expired`` (active, lease run out)."""
_INDEXED = "pk, sk, topic, callback, #state, #owner, #format, expires_at, failing_since"
"""What a listing shows that the ``ByState`` index projects."""
_OUTCOME = "last_outcome, last_outcome_at, last_status, last_error"
"""The last outcome (``sethub.outcomes``): on the item only, so that its writes cost no index write."""
_LISTED = f"{_INDEXED}, {_OUTCOME}"
_BATCH_GET_MAX = 100


@dataclass(frozen=True)
class TopicInfo:
    topic: str
    created_at: int
    active_subscriptions: int


@dataclass(frozen=True)
class SubscriptionInfo:
    """A subscription as an operator sees it; ``state`` is the stored state, ``expired``
    when its lease has run out (TTL deletes it later)."""

    topic: str
    subscription_id: str
    callback_host: str
    state: str
    owner: str | None
    format: str
    expires_at: int
    failing_since: int = 0
    """When its deliveries started failing (no success since); 0 when they are not."""
    last_outcome: LastOutcome | None = None
    """Its last delivery's outcome as dispatch stored it (None: none since the upgrade)."""


def _state(item: dict[str, Any], now: float) -> str:
    state = str(item.get("state", {}).get("S", "unknown"))
    if state == "active" and int(item.get("expires_at", {}).get("N", "0")) <= now:
        return "expired"
    return state


class BadPageTokenError(ValueError):
    """A ``next`` token this listing did not write."""


@dataclass(frozen=True)
class Page:
    items: list[SubscriptionInfo]
    next: str | None
    """Pass it back as ``start`` for the next page; None after the last."""


def _info(item: dict[str, Any], now: float) -> SubscriptionInfo:
    item_topic = item.get("topic", {}).get("S", "")
    callback = item.get("callback", {}).get("S", "")
    return SubscriptionInfo(
        topic=item_topic,
        subscription_id=subscription_id(item_topic, callback),
        callback_host=callback_host(callback),
        state=_state(item, now),
        owner=item["owner"]["S"] if "owner" in item else None,
        format=item.get("format", {}).get("S", "-"),
        expires_at=int(item.get("expires_at", {}).get("N", "0")),
        failing_since=int(item.get("failing_since", {}).get("N", "0")),
        last_outcome=outcomes.from_item(item),
    )


def _with_outcomes(db: DynamoDBClient, table: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Index items completed with their last outcome, read from the table by key (the index does
    not project it): half a read unit each."""
    found = _batch_get(db, table, items, f"pk, sk, {_OUTCOME}")
    return [item | found.get((item["pk"]["S"], item["sk"]["S"]), {}) for item in items]


def _batch_get(
    db: DynamoDBClient, table: str, items: list[dict[str, Any]], projection: str
) -> dict[tuple[str, str], dict[str, Any]]:
    """The items with the keys of ``items``, by (pk, sk): one ``BatchGetItem`` per 100."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for start in range(0, len(items), _BATCH_GET_MAX):
        keys = [{"pk": i["pk"], "sk": i["sk"]} for i in items[start : start + _BATCH_GET_MAX]]
        pending: Any = {table: {"Keys": keys, "ProjectionExpression": projection}}
        while pending:
            page = db.batch_get_item(RequestItems=pending)
            for got in page.get("Responses", {}).get(table, []):
                found[(got["pk"]["S"], got["sk"]["S"])] = got
            # Unprocessed keys are throttling, not failure: ask again.
            pending = page.get("UnprocessedKeys") or None
    return found


def _token(index: int, key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps({"i": index, "k": key}).encode()).decode()


def _untoken(token: str) -> tuple[int, dict[str, Any]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["i"]), dict(data["k"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadPageTokenError("not a page token of this listing (pass --next as printed)") from None


def _queries(table: str, *, now: float, topic: str | None, state: str | None) -> list[dict[str, Any]]:
    """The Query requests that read exactly the subscriptions asked for, in listing order."""
    if state is not None and state not in STATES:
        raise ValueError(f"no state {state!r}: one of {', '.join(STATES)}")
    names = {"#state": "state", "#owner": "owner", "#format": "format"}
    live: dict[str, str] = {}
    filters: dict[str, Any] = {}
    if state in ("active", "expired"):
        # Both are stored as active; the lease tells them apart (as subscribers see it).
        live = {"FilterExpression": "expires_at > :now" if state == "active" else "expires_at <= :now"}
        filters = {":now": {"N": str(int(now))}}
    if topic is not None:
        values: dict[str, Any] = {
            ":pk": {"S": topic_key(topic)},
            ":sub": {"S": SUBSCRIPTION_PREFIX},
            **filters,
        }
        expression = live.get("FilterExpression", "")
        if state is not None:
            values[":state"] = {"S": "active" if state == "expired" else state}
            expression = " AND ".join(part for part in ("#state = :state", expression) if part)
        request: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :sub)",
            "ProjectionExpression": _LISTED,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if expression:
            request["FilterExpression"] = expression
        return [request]
    stored = STORED_STATES if state is None else ("active" if state == "expired" else state,)
    return [
        {
            "TableName": table,
            "IndexName": STATE_INDEX,
            "KeyConditionExpression": "#state = :state",
            "ProjectionExpression": _INDEXED,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {":state": {"S": one}, **filters},
            **live,
        }
        for one in stored
    ]


def subscriptions(
    db: DynamoDBClient,
    table: str,
    *,
    now: float,
    topic: str | None = None,
    state: str | None = None,
    limit: int | None = None,
    start: str | None = None,
) -> Page:
    """Subscriptions (of ``topic``, in ``state``: active, expired, disabled, unsubscribed),
    at most ``limit`` of them from ``start`` (a page's ``next``), read by key, never a scan."""
    queries = _queries(table, now=now, topic=topic, state=state)
    index, key = _untoken(start) if start else (0, None)
    key = key or None  # {}: from the start of that query
    found: list[SubscriptionInfo] = []
    try:
        while index < len(queries):
            request = dict(queries[index])
            if key is not None:
                request["ExclusiveStartKey"] = key
            if limit is not None:
                request["Limit"] = limit - len(found)
            page = db.query(**request)
            items = page.get("Items", [])
            if "IndexName" in request and items:
                items = _with_outcomes(db, table, items)
            found.extend(_info(item, now) for item in items)
            key = page.get("LastEvaluatedKey")
            if key is None:
                index += 1
            if limit is not None and len(found) >= limit:
                break
    except (ClientError, BotoCoreError) as exc:
        raise UpstreamError(
            f"DynamoDB could not list subscriptions of {table}: {aws_error_code(exc)}"
        ) from exc
    return Page(found, None if index >= len(queries) else _token(index, key or {}))


def subscription(
    db: DynamoDBClient, table: str, *, now: float, topic: str, name: str
) -> SubscriptionInfo | None:
    """One subscription of ``topic``, named by its callback URL (one ``GetItem``) or by its
    id as listings print it (a ``Query`` of the topic's partition, a page at a time, until found)."""
    names = {"#state": "state", "#owner": "owner", "#format": "format"}
    try:
        if "://" in name:
            got = db.get_item(
                TableName=table,
                Key={"pk": {"S": topic_key(topic)}, "sk": {"S": subscription_key(name)}},
                ProjectionExpression=_LISTED,
                ExpressionAttributeNames=names,
            )
            item = got.get("Item")
            return _info(item, now) if item is not None else None
        request = _queries(table, now=now, topic=topic, state=None)[0]
        for item in _items(db, "query", request):
            info = _info(item, now)
            if info.subscription_id == name:
                return info
    except (ClientError, BotoCoreError) as exc:
        raise UpstreamError(
            f"DynamoDB could not read a subscription of {table}: {aws_error_code(exc)}"
        ) from exc
    return None


def count(db: DynamoDBClient, table: str, state: str) -> int:
    """How many subscriptions are stored in ``state`` (index entries only: one read unit per 4 KB)."""
    request: dict[str, Any] = {
        "TableName": table,
        "IndexName": STATE_INDEX,
        "KeyConditionExpression": "#state = :state",
        "ExpressionAttributeNames": {"#state": "state"},
        "ExpressionAttributeValues": {":state": {"S": state}},
        "Select": "COUNT",
    }
    total = 0
    try:
        while True:
            page = db.query(**request)
            total += int(page.get("Count", 0))
            if "LastEvaluatedKey" not in page:
                return total
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    except (ClientError, BotoCoreError) as exc:
        raise UpstreamError(f"DynamoDB could not count {state} subscriptions") from exc


def _items(
    db: DynamoDBClient, operation: Literal["query", "scan"], request: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """Every item a ``Query`` or ``Scan`` answers, a page at a time."""
    request = dict(request)
    call = db.query if operation == "query" else db.scan
    try:
        while True:
            page = call(**request)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    except (ClientError, BotoCoreError) as exc:
        raise UpstreamError(
            f"DynamoDB could not {operation} {request['TableName']}: {aws_error_code(exc)}"
        ) from exc


def topics(db: DynamoDBClient, table: str, *, now: float) -> list[TopicInfo]:
    """Registered topics with their number of live subscriptions, read from the ``ByState``
    index: the ``topic`` partition (topic items, ``sethub.store.TOPIC_STATE``), their creation
    times by key (not projected), and the ``active`` partition's topic and lease, a page at a time.

    Topics registered before topic items had a ``state`` are not in the index until
    ``SubscriptionStore.index_old_topics`` ran once (``sethub topics list`` runs it)."""
    names = {"#state": "state"}
    registered = list(
        _items(
            db,
            "query",
            {
                "TableName": table,
                "IndexName": STATE_INDEX,
                "KeyConditionExpression": "#state = :topic",
                "ProjectionExpression": "pk, sk, topic",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {":topic": {"S": TOPIC_STATE}},
            },
        )
    )
    created = _created(db, table, registered)
    live: dict[str, int] = {}
    for item in _items(
        db,
        "query",
        {
            "TableName": table,
            "IndexName": STATE_INDEX,
            "KeyConditionExpression": "#state = :active",
            "FilterExpression": "expires_at > :now",
            "ProjectionExpression": "topic",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {":active": {"S": "active"}, ":now": {"N": str(int(now))}},
        },
    ):
        name = item.get("topic", {}).get("S", "")
        live[name] = live.get(name, 0) + 1
    found = [
        TopicInfo(name, created.get(item["pk"]["S"], 0), live.get(name, 0))
        for item in registered
        for name in [item.get("topic", {}).get("S", "")]
    ]
    return sorted(found, key=lambda t: t.topic)


def _created(db: DynamoDBClient, table: str, items: list[dict[str, Any]]) -> dict[str, int]:
    """Topic items' ``created_at`` by partition key (not projected by the index)."""
    try:
        found = _batch_get(db, table, items, "pk, sk, created_at")
    except (ClientError, BotoCoreError) as exc:
        raise UpstreamError(f"DynamoDB could not read topics of {table}: {aws_error_code(exc)}") from exc
    return {pk: int(got.get("created_at", {}).get("N", "0")) for (pk, _), got in found.items()}


def recent_attempts(db: DynamoDBClient, table: str, *, since: float) -> list[Attempt]:
    """Every delivery attempt recorded at or after ``since`` (epoch seconds), oldest first."""
    found: list[Attempt] = []
    for item in _items(
        db,
        "scan",
        {
            "TableName": table,
            "FilterExpression": "begins_with(pk, :delivery) AND #at >= :since",
            "ExpressionAttributeNames": {"#at": "at"},
            "ExpressionAttributeValues": {
                ":delivery": {"S": DELIVERY_PREFIX},
                ":since": {"N": f"{since:.3f}"},
            },
        },
    ):
        jti = item.get("jti", {}).get("S") or item["pk"]["S"].removeprefix(DELIVERY_PREFIX)
        found.extend(attempts_of_item(jti, item))
    return sorted(found, key=lambda a: (a.at, a.subscription_id, a.attempt))


__all__ = [
    "STATES",
    "STATE_INDEX",
    "BadPageTokenError",
    "Page",
    "SubscriptionInfo",
    "TopicInfo",
    "count",
    "recent_attempts",
    "subscription",
    "subscriptions",
    "topics",
]
