"""What the hub table holds, read for operators: topics, subscriptions, recent delivery outcomes.

The functions read the table with ``Scan`` (filtered by key prefix): an operator's view
of the whole hub, never on a request path. A scan reads every item of the table (about
one read unit per 4 KB), so on a big table they take seconds and cost what a read of the
table costs; the delivery functions read only records newer than ``since``, but DynamoDB
still reads every item to filter them.

Subscriptions are named by topic, subscription id and callback host (never the callback
URL, whose path or query may carry a token), as delivery records name them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from sethub.errors import UpstreamError
from sethub.hygiene import callback_host
from sethub.records import Attempt
from sethub.records import _attempts as attempts_of_item
from sethub.subscriptions import SUBSCRIPTION_PREFIX, TOPIC_SORT_KEY, subscription_id

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DELIVERY_PREFIX = "DELIVERY#"


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
    last_outcome: Attempt | None = None


def _scan(db: DynamoDBClient, table: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    request: dict[str, Any] = {"TableName": table, **kwargs}
    try:
        while True:
            page = db.scan(**request)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    except ClientError as exc:
        raise UpstreamError(
            f"DynamoDB could not scan {table}: {exc.response.get('Error', {}).get('Code', 'error')}"
        ) from exc
    except BotoCoreError as exc:
        raise UpstreamError(f"DynamoDB could not scan {table}: {type(exc).__name__}") from exc


def _state(item: dict[str, Any], now: float) -> str:
    state = str(item.get("state", {}).get("S", "unknown"))
    if state == "active" and int(item.get("expires_at", {}).get("N", "0")) <= now:
        return "expired"
    return state


def subscriptions(
    db: DynamoDBClient, table: str, *, now: float, topic: str | None = None
) -> list[SubscriptionInfo]:
    """Every subscription item (active, expired, disabled, unsubscribed tombstones), by topic."""
    found = []
    for item in _scan(
        db,
        table,
        FilterExpression="begins_with(sk, :sub)",
        ExpressionAttributeValues={":sub": {"S": SUBSCRIPTION_PREFIX}},
    ):
        item_topic = item.get("topic", {}).get("S", "")
        if topic is not None and item_topic != topic:
            continue
        callback = item.get("callback", {}).get("S", "")
        found.append(
            SubscriptionInfo(
                topic=item_topic,
                subscription_id=subscription_id(item_topic, callback),
                callback_host=callback_host(callback),
                state=_state(item, now),
                owner=item["owner"]["S"] if "owner" in item else None,
                format=item.get("format", {}).get("S", "-"),
                expires_at=int(item.get("expires_at", {}).get("N", "0")),
            )
        )
    return sorted(found, key=lambda s: (s.topic, s.callback_host, s.subscription_id))


def topics(db: DynamoDBClient, table: str, *, now: float) -> list[TopicInfo]:
    """Registered topics with their number of live subscriptions (one scan for both)."""
    created: dict[str, int] = {}
    live: dict[str, int] = {}
    for item in _scan(
        db,
        table,
        FilterExpression="sk = :topic OR begins_with(sk, :sub)",
        ExpressionAttributeValues={":topic": {"S": TOPIC_SORT_KEY}, ":sub": {"S": SUBSCRIPTION_PREFIX}},
        ProjectionExpression="sk, topic, created_at, #state, expires_at",
        ExpressionAttributeNames={"#state": "state"},
    ):
        name = item.get("topic", {}).get("S", "")
        if item["sk"]["S"] == TOPIC_SORT_KEY:
            created[name] = int(item.get("created_at", {}).get("N", "0"))
        elif _state(item, now) == "active":
            live[name] = live.get(name, 0) + 1
    return [TopicInfo(name, at, live.get(name, 0)) for name, at in sorted(created.items())]


def recent_attempts(db: DynamoDBClient, table: str, *, since: float) -> list[Attempt]:
    """Every delivery attempt recorded at or after ``since`` (epoch seconds), oldest first."""
    found: list[Attempt] = []
    for item in _scan(
        db,
        table,
        FilterExpression="begins_with(pk, :delivery) AND #at >= :since",
        ExpressionAttributeNames={"#at": "at"},
        ExpressionAttributeValues={":delivery": {"S": DELIVERY_PREFIX}, ":since": {"N": f"{since:.3f}"}},
    ):
        jti = item.get("jti", {}).get("S") or item["pk"]["S"].removeprefix(DELIVERY_PREFIX)
        found.extend(attempts_of_item(jti, item))
    return sorted(found, key=lambda a: (a.at, a.subscription_id, a.attempt))


def with_last_outcomes(found: list[SubscriptionInfo], attempts: list[Attempt]) -> list[SubscriptionInfo]:
    """``found`` with each subscription's newest attempt among ``attempts`` (oldest first)."""
    last = {attempt.subscription_id: attempt for attempt in attempts}
    return [
        SubscriptionInfo(**{**info.__dict__, "last_outcome": last.get(info.subscription_id)})
        for info in found
    ]


__all__ = [
    "SubscriptionInfo",
    "TopicInfo",
    "recent_attempts",
    "subscriptions",
    "topics",
    "with_last_outcomes",
]
