"""DynamoDB storage of topics, subscriptions and pending subscription requests.

Only the table calls and the item mapping live here; the rules they enforce
(leases, newest-request-wins) are in ``sethub.subscriptions``. The item layout is
the one in docs/architecture.md:

    TOPIC#<topic>  TOPIC                   a registered topic
    TOPIC#<topic>  SUB#<sha256(callback)>  a subscription (state active) or a tombstone (unsubscribed)
    TOPIC#<topic>  REQ#<sha256(callback)>  the newest request waiting for verification of intent

Keys stay within DynamoDB's sizes whatever the URLs: the callback is hashed in the sort
key, and a topic over 1,024 UTF-8 bytes is hashed in the partition key (``TOPICH#<sha256>``);
both are kept whole as the ``callback`` and ``topic`` attributes.

Secrets are stored as KMS ciphertext (``sethub.secretbox``) and decrypted only when a
subscription is read for delivery.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from sethub import outcomes, queryjson
from sethub.clients import AwsClients
from sethub.errors import ConfigurationError, ForbiddenError, NotFoundError, UpstreamError, aws_error_code
from sethub.messages import Format
from sethub.outcomes import LastOutcome
from sethub.secretbox import SecretBox, encryption_context
from sethub.settings import Settings
from sethub.subscriptions import (
    PENDING_TTL_SECONDS,
    SUBSCRIPTION_PREFIX,
    TOPIC_SORT_KEY,
    Mode,
    PendingRequest,
    Subscription,
    expiry,
    is_live,
    is_owned,
    request_key,
    state_ttl,
    subscription_id,
    subscription_key,
    topic_key,
)
from sethub.webhooks import ROTATION_OVERLAP_SECONDS, Signing

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from sethub.records import Attempt

Item = Mapping[str, Any]

_BATCH_WRITE_MAX = 25
TOPIC_STATE = "topic"
"""Topic items' ``state``: they are listed from the ``ByState`` index under this partition
(``sethub.inventory.topics``), which no subscription state shares."""
_TOPICS_INDEXED = {"pk": {"S": "META#topics"}, "sk": {"S": "INDEXED"}}
"""Written once every topic registered before topic items had a ``state`` has one."""
_KNOWN_OUTCOMES_MAX = 50_000
"""Subscriptions whose stored last outcome a store remembers (about 250 bytes each, by
subscription id: not the URLs, which may be 2 KB); past that it forgets them all and learns
them again from the next reads."""

_SUBSCRIPTION_NAMES = {
    "#sk": "sk",
    "#callback": "callback",
    "#format": "format",
    "#secret": "secret",
    "#lease": "lease_seconds",
    "#expires": "expires_at",
    "#requested": "requested_at",
    "#owner": "owner",
    "#signing": "signing",
    "#events": "events",
    "#previous": "previous_secret",
    "#previous_until": "previous_secret_until",
    "#failing": "failing_since",
    "#last_outcome": "last_outcome",
    "#last_outcome_at": "last_outcome_at",
}
"""The attributes ``_subscription`` reads, by placeholder (some names are DynamoDB reserved words)."""
_SUBSCRIPTION_PROJECTION = ", ".join(_SUBSCRIPTION_NAMES)


def _upstream(action: str, exc: Exception) -> UpstreamError:
    return UpstreamError(f"DynamoDB could not {action}: {aws_error_code(exc)}")


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _format(value: str) -> Format:
    return "json" if value == "json" else "jwt"


def _signing(item: Item) -> Signing:
    return "standard-webhooks" if item.get("signing", {}).get("S") == "standard-webhooks" else "websub"


def _events(item: Item) -> frozenset[str]:
    return frozenset(item.get("events", {}).get("SS", ()))


def _fingerprint(secret: bytes) -> str:
    """Tells a changed Standard Webhooks secret from a renewal without decrypting the stored one.

    Only for ``whsec_`` secrets: 24 or more random bytes cannot be found from their hash
    (a WebSub ``hub.secret`` may be a guessable word, and gets none).
    """
    return hashlib.sha256(secret).hexdigest()


class SubscriptionStore:
    """Topics, subscriptions and pending requests in the hub table."""

    def __init__(
        self, clients: AwsClients, settings: Settings, *, secretbox: SecretBox | None = None
    ) -> None:
        if not settings.table_name:
            raise ConfigurationError("SETHUB_TABLE_NAME is not set")
        self._clients = clients
        self._table = settings.table_name
        self._secretbox = secretbox
        self._data_key_id = settings.data_key_id
        self._open_topics = settings.open_topics
        # subscription id -> (requested_at, stored last outcome) of the subscriptions this
        # store read for delivery: tells dispatch which outcomes are worth a write.
        self._known_outcomes: dict[str, tuple[int, LastOutcome | None]] = {}

    @property
    def _db(self) -> DynamoDBClient:
        return self._clients.dynamodb

    @property
    def secretbox(self) -> SecretBox:
        # Built on first use so that a store that never meets a secret never builds a KMS client.
        if self._secretbox is None:
            self._secretbox = SecretBox(self._clients.kms, self._data_key_id)
        return self._secretbox

    # Topics

    def topic_exists(self, topic: str) -> bool:
        try:
            result = self._db.get_item(
                TableName=self._table,
                Key={"pk": _s(topic_key(topic)), "sk": _s(TOPIC_SORT_KEY)},
                ProjectionExpression="pk",
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _upstream("read a topic", exc) from exc
        return "Item" in result

    def register_topic(self, topic: str, *, now: float | None = None) -> bool:
        """Register ``topic``; True if it is new. Registering again keeps the original item."""
        created_at = int(time.time() if now is None else now)
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    "pk": _s(topic_key(topic)),
                    "sk": _s(TOPIC_SORT_KEY),
                    "topic": _s(topic),
                    "created_at": _n(created_at),
                    # Lists it from the ByState index (sethub topics list), not by a scan.
                    "state": _s(TOPIC_STATE),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise _upstream("register a topic", exc) from exc
        except BotoCoreError as exc:
            raise _upstream("register a topic", exc) from exc
        return True

    def deregister_topic(self, topic: str) -> None:
        """Remove ``topic`` and everything under it; ``NotFoundError`` if it is not registered."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key={"pk": _s(topic_key(topic)), "sk": _s(TOPIC_SORT_KEY)},
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                raise NotFoundError(f"unknown topic: {topic}") from None
            raise _upstream("deregister a topic", exc) from exc
        except BotoCoreError as exc:
            raise _upstream("deregister a topic", exc) from exc
        # Subscriptions die with their topic: registering it again starts from nothing.
        self._delete_keys(list(self._keys_under(topic)))

    def topics_indexed(self) -> bool:
        """Whether ``index_old_topics`` has run on this table (topics are then all in the index)."""
        try:
            result = self._db.get_item(TableName=self._table, Key=_TOPICS_INDEXED, ProjectionExpression="pk")
        except (ClientError, BotoCoreError) as exc:
            raise _upstream("read the topic index marker", exc) from exc
        return "Item" in result

    def index_old_topics(self) -> int:
        """Put topics registered before topic items had a ``state`` into the ``ByState`` index;
        how many. One scan of the table, once per table: a marker item says it is done."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "sk = :topic AND attribute_not_exists(#state)",
            "ProjectionExpression": "pk, sk",
            "ExpressionAttributeNames": {"#state": "state"},
            "ExpressionAttributeValues": {":topic": _s(TOPIC_SORT_KEY)},
        }
        indexed = 0
        try:
            while True:
                page = self._db.scan(**request)
                for key in page.get("Items", []):
                    indexed += self._index_topic(key)
                if "LastEvaluatedKey" not in page:
                    break
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            self._db.put_item(TableName=self._table, Item={**_TOPICS_INDEXED, "at": _n(int(time.time()))})
        except (ClientError, BotoCoreError) as exc:
            raise _upstream("index the registered topics", exc) from exc
        return indexed

    def _index_topic(self, key: dict[str, Any]) -> int:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET #state = :topic",
                # Deregistered meanwhile: not brought back.
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#state)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":topic": _s(TOPIC_STATE)},
            )
        except ClientError as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                return 0
            raise
        return 1

    def _keys_under(self, topic: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": _s(topic_key(topic))},
            "ProjectionExpression": "pk, sk",
        }
        try:
            while True:
                page = self._db.query(**kwargs)
                yield from page.get("Items", [])
                if "LastEvaluatedKey" not in page:
                    return
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise _upstream("list a topic's items", exc) from exc

    def _delete_keys(self, keys: list[dict[str, Any]]) -> None:
        try:
            for start in range(0, len(keys), _BATCH_WRITE_MAX):
                requests: Any = [
                    {"DeleteRequest": {"Key": key}} for key in keys[start : start + _BATCH_WRITE_MAX]
                ]
                pending = {self._table: requests}
                # Unprocessed items are throttling, not failure: send them again.
                for _ in range(10):
                    result = self._db.batch_write_item(RequestItems=pending)
                    pending = result.get("UnprocessedItems") or {}
                    if not pending:
                        break
        except (ClientError, BotoCoreError) as exc:
            raise _upstream("delete a topic's items", exc) from exc

    # Pending requests

    def put_pending(
        self,
        *,
        mode: Mode,
        topic: str,
        callback: str,
        format: Format,
        secret: bytes | None,
        lease_seconds: int,
        requested_at: int,
        now: float | None = None,
        requester: str | None = None,
        owner: str | None = None,
        override: bool = False,
        signing: Signing = "websub",
        events: frozenset[str] = frozenset(),
    ) -> str:
        """Store a request until its verification of intent; returns its id.

        ``requester`` (the asking key's id), ``owner`` (the owner the subscription will have)
        and ``override`` (an admin's request) let ``apply_verified`` refuse to replace a
        subscription that another key owns, if ownership changed after the request.

        One pending request per (topic, callback): a newer one replaces the one waiting,
        whose queued verification then finds nothing to verify and sends no GET, so a
        flood of requests for one callback costs the callback one verification.
        """
        request_id = uuid.uuid4().hex
        current = time.time() if now is None else now
        item: dict[str, Any] = {
            "pk": _s(topic_key(topic)),
            "sk": _s(request_key(callback)),
            "request_id": _s(request_id),
            "mode": _s(mode),
            "callback": _s(callback),
            "format": _s(format),
            "lease_seconds": _n(lease_seconds),
            "requested_at": _n(requested_at),
            "ttl": _n(int(current) + PENDING_TTL_SECONDS),
        }
        if secret:
            item["secret"] = {"B": self.secretbox.encrypt(secret, encryption_context(topic, callback))}
            if signing == "standard-webhooks":
                item["secret_sha256"] = _s(_fingerprint(secret))
        if signing != "websub":
            item["signing"] = _s(signing)
        if events:
            item["events"] = {"SS": sorted(events)}
        if requester:
            item["requester"] = _s(requester)
        if owner:
            item["owner"] = _s(owner)
        if override:
            item["override"] = {"BOOL": True}
        # Another key's request waiting for this callback is not replaced (an admin's is):
        # its verification GET would otherwise confirm this one in its place.
        guard: dict[str, Any] = {}
        if not override:
            same = "requester = :requester" if requester else "attribute_not_exists(requester)"
            guard = {
                "ConditionExpression": f"attribute_not_exists(pk) OR #ttl <= :now OR {same}",
                "ExpressionAttributeNames": {"#ttl": "ttl"},
                "ExpressionAttributeValues": {
                    ":now": _n(int(current)),
                    **({":requester": _s(requester)} if requester else {}),
                },
            }
        try:
            self._db.put_item(TableName=self._table, Item=item, **guard)
        except ClientError as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                raise ForbiddenError(
                    "another key's request for this subscription is waiting for verification"
                ) from None
            raise _upstream("store a subscription request", exc) from exc
        except BotoCoreError as exc:
            raise _upstream("store a subscription request", exc) from exc
        return request_id

    def get_pending(
        self, topic: str, callback: str, request_id: str, *, now: float | None = None
    ) -> PendingRequest | None:
        """The request, or None if it was already applied, discarded, replaced by a newer
        request for the same (topic, callback), or is over a day old."""
        try:
            result = self._db.get_item(
                TableName=self._table,
                Key=self._pending_key(topic, callback),
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _upstream("read a subscription request", exc) from exc
        item = result.get("Item")
        current = time.time() if now is None else now
        if item is None or item.get("request_id", {}).get("S") != request_id:
            return None
        if not is_live(int(item["ttl"]["N"]), current):
            return None
        return PendingRequest(
            request_id=request_id,
            mode="unsubscribe" if item["mode"]["S"] == "unsubscribe" else "subscribe",
            topic=topic,
            callback=item["callback"]["S"],
            format=_format(item["format"]["S"]),
            secret_ciphertext=item["secret"]["B"] if "secret" in item else None,
            lease_seconds=int(item["lease_seconds"]["N"]),
            requested_at=int(item["requested_at"]["N"]),
            requester=item["requester"]["S"] if "requester" in item else None,
            owner=item["owner"]["S"] if "owner" in item else None,
            override=bool(item.get("override", {}).get("BOOL", False)),
            signing=_signing(item),
            events=_events(item),
            secret_fingerprint=item["secret_sha256"]["S"] if "secret_sha256" in item else None,
        )

    def discard_pending(self, topic: str, callback: str, request_id: str) -> None:
        """Forget the request, unless a newer one for the same (topic, callback) replaced it."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key=self._pending_key(topic, callback),
                ConditionExpression="request_id = :request_id",
                ExpressionAttributeValues={":request_id": _s(request_id)},
            )
        except ClientError as exc:
            if aws_error_code(exc) != "ConditionalCheckFailedException":
                raise _upstream("discard a subscription request", exc) from exc
        except BotoCoreError as exc:
            raise _upstream("discard a subscription request", exc) from exc

    @staticmethod
    def _pending_key(topic: str, callback: str) -> dict[str, Any]:
        return {"pk": _s(topic_key(topic)), "sk": _s(request_key(callback))}

    def apply_verified(self, request: PendingRequest, *, now: float | None = None) -> bool:
        """Make a verified request the (topic, callback) state, consuming the request.

        One transaction: the request item is deleted (so it applies once) and the
        subscription (or the unsubscribe tombstone) is written only if no newer
        request has been applied and, unless topics are open, only if the topic is
        still registered (a verification finishing after a deregister writes nothing).
        Returns False when nothing changed because the request was already used, a
        newer one had won or the topic is gone; the request is gone either way.
        """
        current = time.time() if now is None else now
        item: dict[str, Any] = {
            "pk": _s(topic_key(request.topic)),
            "sk": _s(subscription_key(request.callback)),
            "topic": _s(request.topic),
            "callback": _s(request.callback),
            "requested_at": _n(request.requested_at),
        }
        if request.mode == "subscribe":
            expires_at = expiry(request.lease_seconds, current)
            item |= {
                "state": _s("active"),
                "format": _s(request.format),
                "lease_seconds": _n(request.lease_seconds),
                "expires_at": _n(expires_at),
                "ttl": _n(state_ttl(expires_at, current)),
            }
            # A re-subscription without a secret removes the old one: the item is replaced whole.
            if request.secret_ciphertext:
                item["secret"] = {"B": request.secret_ciphertext}
            if request.owner:
                item["owner"] = _s(request.owner)
            item |= self._webhook_attributes(request, current)
        else:
            item |= {"state": _s("unsubscribed"), "ttl": _n(state_ttl(0, current))}
        actions: list[Any] = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": self._pending_key(request.topic, request.callback),
                    # This very request: not one that replaced it while it was being verified.
                    "ConditionExpression": "request_id = :request_id",
                    "ExpressionAttributeValues": {":request_id": _s(request.request_id)},
                }
            },
            {"Put": {"TableName": self._table, "Item": item, **_apply_condition(request, current)}},
        ]
        if not self._open_topics:
            actions.append(
                {
                    "ConditionCheck": {
                        "TableName": self._table,
                        "Key": {"pk": _s(topic_key(request.topic)), "sk": _s(TOPIC_SORT_KEY)},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                }
            )
        try:
            self._db.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            if aws_error_code(exc) != "TransactionCanceledException":
                raise _upstream("apply a verified subscription request", exc) from exc
            reasons = [reason.get("Code") for reason in exc.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return False  # already applied (a redelivered message), or replaced by a newer request
            if "ConditionalCheckFailed" in reasons:
                # A newer request won, or the topic was deregistered: this one is spent all the same.
                self.discard_pending(request.topic, request.callback, request.request_id)
                return False
            raise _upstream("apply a verified subscription request", exc) from exc
        except BotoCoreError as exc:
            raise _upstream("apply a verified subscription request", exc) from exc
        return True

    def _webhook_attributes(self, request: PendingRequest, now: float) -> dict[str, Any]:
        """Signing scheme, event filter and Standard Webhooks secret rotation (``sethub.webhooks``)."""
        item: dict[str, Any] = {}
        if request.signing != "websub":
            item["signing"] = _s(request.signing)
        if request.events:
            item["events"] = {"SS": sorted(request.events)}
        if request.secret_fingerprint:
            item["secret_sha256"] = _s(request.secret_fingerprint)
            item |= self._previous_secret(request, now)
        return item

    def _previous_secret(self, request: PendingRequest, now: float) -> dict[str, Any]:
        """The attributes that keep a replaced Standard Webhooks secret signing for a day.

        A new secret makes the current one the previous; a renewal with the same secret
        keeps the previous one that is still in its overlap.
        """
        try:
            result = self._db.get_item(
                TableName=self._table,
                Key={"pk": _s(topic_key(request.topic)), "sk": _s(subscription_key(request.callback))},
                ProjectionExpression="#state, #signing, #secret, secret_sha256, #previous, #previous_until",
                ExpressionAttributeNames={
                    "#state": "state",
                    "#signing": "signing",
                    "#secret": "secret",
                    "#previous": "previous_secret",
                    "#previous_until": "previous_secret_until",
                },
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _upstream("read a subscription", exc) from exc
        current = result.get("Item")
        if current is None or current.get("state", {}).get("S") != "active":
            return {}
        if current.get("secret_sha256", {}).get("S") == request.secret_fingerprint:
            until = int(current.get("previous_secret_until", {}).get("N", "0"))
            if "previous_secret" in current and now < until:
                return {"previous_secret": current["previous_secret"], "previous_secret_until": _n(until)}
            return {}
        if _signing(current) != "standard-webhooks" or "secret" not in current:
            return {}  # a WebSub hub.secret is no whsec_ key
        return {
            "previous_secret": current["secret"],
            "previous_secret_until": _n(int(now) + ROTATION_OVERLAP_SECONDS),
        }

    # Subscriptions

    def list_active(
        self, topic: str, *, now: float, start_after: str | None = None, limit: int | None = None
    ) -> tuple[list[Subscription], str | None]:
        """Active subscriptions of ``topic`` in sort-key order, at most ``limit`` of them.

        Returns the subscriptions and, when more remain after ``limit``, the sort key of
        the last one returned (pass it as ``start_after`` for the next page); else None.
        """
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :sub)",
            # TTL deletion is late: expired items are filtered here, not trusted to be gone.
            "FilterExpression": "#state = :active AND expires_at > :now",
            # Only what a Subscription holds (the filter still sees whole items).
            "ProjectionExpression": _SUBSCRIPTION_PROJECTION,
            "ExpressionAttributeNames": {"#state": "state", **_SUBSCRIPTION_NAMES},
            "ExpressionAttributeValues": {
                ":pk": _s(topic_key(topic)),
                ":sub": _s(SUBSCRIPTION_PREFIX),
                ":active": _s("active"),
                ":now": _n(int(now)),
            },
        }
        if start_after is not None:
            kwargs["ExclusiveStartKey"] = {"pk": _s(topic_key(topic)), "sk": _s(start_after)}
        found: list[Subscription] = []
        # A fan-out page is up to a thousand items: read from the JSON, not by botocore's parser.
        queryjson.install(self._db)
        try:
            while True:
                if limit is not None:
                    # Limit counts items read before the filter: ask for what is still
                    # missing, plus one to learn whether more remain, and page on if
                    # expired or unsubscribed items took some of the places.
                    kwargs["Limit"] = limit - len(found) + 1
                page = self._db.query(**kwargs)
                items = page.get("Items", [])
                for item in items:
                    if limit is not None and len(found) >= limit:
                        return found, found[-1].sort_key  # this item and maybe more remain
                    subscription = self._subscription(topic, item)
                    if subscription.is_active(now):
                        found.append(subscription)
                if "LastEvaluatedKey" not in page:
                    return found, None
                if limit is not None and len(found) >= limit:
                    return found, found[-1].sort_key
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise _upstream("list a topic's subscriptions", exc) from exc

    def get_active(self, topic: str, callback: str, *, now: float) -> Subscription | None:
        try:
            result = self._db.get_item(
                TableName=self._table,
                Key={"pk": _s(topic_key(topic)), "sk": _s(subscription_key(callback))},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _upstream("read a subscription", exc) from exc
        item = result.get("Item")
        if item is None or item.get("state", {}).get("S") != "active":
            return None
        subscription = self._subscription(topic, item)
        return subscription if subscription.is_active(now) else None

    def subscription_owner(self, topic: str, callback: str, *, now: float) -> tuple[bool, str | None]:
        """Whether (topic, callback) has a subscription that still belongs to its owner (active
        or disabled, lease not expired: ``subscriptions.is_owned``), and the key id that owns it.

        Reads only the state and owner (never the secret, so no KMS call).
        """
        try:
            result = self._db.get_item(
                TableName=self._table,
                Key={"pk": _s(topic_key(topic)), "sk": _s(subscription_key(callback))},
                ProjectionExpression="#state, expires_at, #owner",
                ExpressionAttributeNames={"#state": "state", "#owner": "owner"},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _upstream("read a subscription", exc) from exc
        item = result.get("Item")
        state = item.get("state", {}).get("S", "") if item else ""
        if item is None or not is_owned(state, int(item.get("expires_at", {}).get("N", "0")), now):
            return False, None
        return True, item["owner"]["S"] if "owner" in item else None

    # Failing endpoints (DESIGN.md "Delivery semantics"): every update is conditioned on the
    # subscription state the dispatcher read (its requested_at), so a re-subscription made
    # meanwhile is never marked, cleared or disabled by news about the one it replaced.

    def mark_failing(self, topic: str, callback: str, *, requested_at: int, now: float) -> int:
        """Note a failed delivery; the time of the first failure since the last success (0: gone)."""
        try:
            result = self._db.update_item(
                TableName=self._table,
                Key={"pk": _s(topic_key(topic)), "sk": _s(subscription_key(callback))},
                UpdateExpression="SET failing_since = if_not_exists(failing_since, :now)",
                ConditionExpression="#state = :active AND requested_at = :requested_at",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":now": _n(int(now)),
                    ":active": _s("active"),
                    ":requested_at": _n(requested_at),
                },
                # ALL_NEW: UPDATED_NEW may leave out a value if_not_exists kept (moto does).
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                return 0
            raise _upstream("mark a subscription failing", exc) from exc
        except BotoCoreError as exc:
            raise _upstream("mark a subscription failing", exc) from exc
        return int(result["Attributes"]["failing_since"]["N"])

    def clear_failing(self, topic: str, callback: str, *, requested_at: int) -> None:
        """A delivery succeeded: the subscription is no longer failing."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"pk": _s(topic_key(topic)), "sk": _s(subscription_key(callback))},
                UpdateExpression="REMOVE failing_since",
                ConditionExpression="requested_at = :requested_at",
                ExpressionAttributeValues={":requested_at": _n(requested_at)},
            )
        except ClientError as exc:
            if aws_error_code(exc) != "ConditionalCheckFailedException":
                raise _upstream("clear a subscription's failures", exc) from exc
        except BotoCoreError as exc:
            raise _upstream("clear a subscription's failures", exc) from exc

    def disable(self, topic: str, callback: str, *, requested_at: int) -> bool:
        """Disable a failing subscription; True if this call disabled it (once, whoever races)."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"pk": _s(topic_key(topic)), "sk": _s(subscription_key(callback))},
                UpdateExpression="SET #state = :disabled",
                ConditionExpression="#state = :active AND requested_at = :requested_at",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":disabled": _s("disabled"),
                    ":active": _s("active"),
                    ":requested_at": _n(requested_at),
                },
            )
        except ClientError as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise _upstream("disable a subscription", exc) from exc
        except BotoCoreError as exc:
            raise _upstream("disable a subscription", exc) from exc
        return True

    def is_disabled(self, topic: str, callback: str) -> bool:
        try:
            result = self._db.get_item(
                TableName=self._table,
                Key={"pk": _s(topic_key(topic)), "sk": _s(subscription_key(callback))},
                ProjectionExpression="#state",
                ExpressionAttributeNames={"#state": "state"},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _upstream("read a subscription", exc) from exc
        return bool(result.get("Item", {}).get("state", {}).get("S") == "disabled")

    # Last outcomes (sethub.outcomes): written only when one changes kind or is stale, known
    # from the items read for delivery, so a subscription that keeps succeeding costs no write.

    def _remember_outcome(self, sub_id: str, item: Item) -> None:
        if len(self._known_outcomes) >= _KNOWN_OUTCOMES_MAX:
            self._known_outcomes.clear()
        stored = outcomes.from_item(item)
        # Its kind and time are what is_due needs; the fan-out read projects only those.
        known = None if stored is None else LastOutcome(stored.kind, stored.at)
        self._known_outcomes[sub_id] = (int(item["requested_at"]["N"]), known)

    def due_outcomes(self, attempts: Iterable[Attempt]) -> list[OutcomeWrite]:
        """The last outcomes of a batch's attempts worth writing (``sethub.outcomes.is_due``); only
        of subscriptions this store read for delivery (not an SSF stream, not a removed one)."""
        due: list[OutcomeWrite] = []
        for (topic, callback), outcome in outcomes.latest(attempts).items():
            known = self._known_outcomes.get(subscription_id(topic, callback))
            if known is not None and outcomes.is_due(known[1], outcome):
                due.append(OutcomeWrite(topic, callback, known[0], outcome))
        return due

    def write_outcome(self, write: OutcomeWrite) -> bool:
        """Store a subscription's last outcome; False if its item holds a newer one (a late
        writer), or it was re-subscribed or removed meanwhile: then nothing is written."""
        outcome = write.outcome
        values: dict[str, Any] = {
            ":kind": _s(outcome.kind),
            ":at": {"N": f"{outcome.at:.3f}"},
            ":requested_at": _n(write.requested_at),
        }
        sets = ["last_outcome = :kind", "last_outcome_at = :at"]
        removes = []
        for name, value in (("last_status", outcome.status_code), ("last_error", outcome.error)):
            if value:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = _n(value) if isinstance(value, int) else _s(value)
            else:
                removes.append(name)
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        key = subscription_id(write.topic, write.callback)
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"pk": _s(topic_key(write.topic)), "sk": _s(subscription_key(write.callback))},
                UpdateExpression=expression,
                ConditionExpression=(
                    "requested_at = :requested_at"
                    " AND (attribute_not_exists(last_outcome_at) OR last_outcome_at < :at)"
                ),
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                self._known_outcomes.pop(key, None)  # learnt again from the next read
                return False
            raise _upstream("record a subscription's last outcome", exc) from exc
        except BotoCoreError as exc:
            raise _upstream("record a subscription's last outcome", exc) from exc
        self._known_outcomes[key] = (write.requested_at, outcome)
        return True

    def remove(self, topic: str, callback: str) -> None:
        """Delete a subscription (its callback answered ``410 Gone``)."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key={"pk": _s(topic_key(topic)), "sk": _s(subscription_key(callback))},
            )
        except (ClientError, BotoCoreError) as exc:
            raise _upstream("remove a subscription", exc) from exc

    def _subscription(self, topic: str, item: Item) -> Subscription:
        # Runs per subscriber of a fan-out: one hash for the id, none for a missing secret.
        callback = item["callback"]["S"]
        self._remember_outcome(subscription_id(topic, callback), item)
        secret: bytes | None = None
        if "secret" in item:
            secret = self.secretbox.decrypt(item["secret"]["B"], encryption_context(topic, callback))
        previous: bytes | None = None
        previous_until = 0
        if "previous_secret" in item:
            previous_until = int(item.get("previous_secret_until", {}).get("N", "0"))
            if time.time() < previous_until:
                previous = self.secretbox.decrypt(
                    item["previous_secret"]["B"], encryption_context(topic, callback)
                )
        return Subscription(
            topic=topic,
            callback=callback,
            format=_format(item.get("format", {}).get("S", "jwt")),
            secret=secret,
            lease_seconds=int(item["lease_seconds"]["N"]),
            expires_at=int(item["expires_at"]["N"]),
            requested_at=int(item["requested_at"]["N"]),
            sort_key=item["sk"]["S"],
            owner=item["owner"]["S"] if "owner" in item else None,
            signing=_signing(item),
            events=_events(item),
            previous_secret=previous,
            previous_secret_until=previous_until if previous else 0,
            failing_since=int(item["failing_since"]["N"]) if "failing_since" in item else 0,
        )


@dataclass(frozen=True)
class OutcomeWrite:
    """A subscription's last outcome to store, for the subscription read (its ``requested_at``)."""

    topic: str
    callback: str
    requested_at: int
    outcome: LastOutcome


def _apply_condition(request: PendingRequest, now: float) -> dict[str, Any]:
    """The condition under which a verified request replaces the (topic, callback) state.

    Newest request wins; and unless an admin asked, a subscription owned by another key (or
    by any key, for a request without one) is never replaced while it is owned (active or
    disabled, lease not expired: ``subscriptions.is_owned``), even if ownership changed
    between the request and its verification.
    """
    values: dict[str, Any] = {":requested_at": _n(request.requested_at)}
    condition = "attribute_not_exists(pk) OR requested_at < :requested_at"
    if request.override:
        return {"ConditionExpression": condition, "ExpressionAttributeValues": values}
    values |= {":active": _s("active"), ":disabled": _s("disabled"), ":now": _n(int(now))}
    owned_by = "attribute_not_exists(#owner)"
    if request.requester:
        owned_by += " OR #owner = :requester"
        values[":requester"] = _s(request.requester)
    # The negation of is_owned: deleted (an unsubscribe tombstone) or past its lease.
    not_owned = "NOT (#state IN (:active, :disabled)) OR expires_at <= :now"
    newer = "requested_at < :requested_at"
    return {
        "ConditionExpression": f"attribute_not_exists(pk) OR ({newer} AND ({owned_by} OR {not_owned}))",
        "ExpressionAttributeNames": {"#owner": "owner", "#state": "state"},
        "ExpressionAttributeValues": values,
    }


__all__ = ["TOPIC_STATE", "OutcomeWrite", "SubscriptionStore"]
