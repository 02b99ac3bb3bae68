"""Key records in the hub table: the calls and the item mapping, nothing else.

    CREDENTIALS  KEY#<sha256 of the key>   role, topics, issuer, name, created_at,
                                           revoked_at, gateway_key_id

All records share one partition, so listing them is one Query, never a Scan of the
table; the functions read one item per key and container minute (``checker.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from sethub.clients import AwsClients
from sethub.credentials.principal import parse_role
from sethub.credentials.store import CredentialStore, KeyExistsError, KeyRecord
from sethub.errors import ConfigurationError, UpstreamError, aws_error_code

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PARTITION = "CREDENTIALS"
SORT_PREFIX = "KEY#"


def _key(key_hash: str) -> dict[str, Any]:
    return {"pk": {"S": PARTITION}, "sk": {"S": f"{SORT_PREFIX}{key_hash}"}}


def to_item(record: KeyRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        **_key(record.key_hash),
        "role": {"S": record.role},
        "topics": {"L": [{"S": topic} for topic in record.topics]},
        "name": {"S": record.name},
        "created_at": {"N": str(record.created_at)},
    }
    if record.issuer:
        item["issuer"] = {"S": record.issuer}
    if record.revoked_at is not None:
        item["revoked_at"] = {"N": str(record.revoked_at)}
    if record.gateway_key_id:
        item["gateway_key_id"] = {"S": record.gateway_key_id}
    return item


def from_item(item: dict[str, Any]) -> KeyRecord:
    return KeyRecord(
        key_hash=item["sk"]["S"].removeprefix(SORT_PREFIX),
        role=parse_role(item["role"]["S"]),
        topics=tuple(entry["S"] for entry in item.get("topics", {}).get("L", [])),
        issuer=item["issuer"]["S"] if "issuer" in item else None,
        name=item.get("name", {}).get("S", ""),
        created_at=int(item.get("created_at", {}).get("N", "0")),
        revoked_at=int(item["revoked_at"]["N"]) if "revoked_at" in item else None,
        gateway_key_id=item["gateway_key_id"]["S"] if "gateway_key_id" in item else None,
    )


class DynamoDBCredentialStore(CredentialStore):
    """Key records in ``table`` (the HubTable); the client is made on first use."""

    def __init__(self, clients: AwsClients, table: str) -> None:
        if not table:
            raise ConfigurationError("SETHUB_TABLE_NAME is not set")
        self._clients = clients
        self._table = table

    @property
    def _db(self) -> DynamoDBClient:
        return self._clients.dynamodb

    def get(self, key_hash: str) -> KeyRecord | None:
        try:
            result = self._db.get_item(TableName=self._table, Key=_key(key_hash), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"DynamoDB could not read an API key: {aws_error_code(exc)}") from exc
        item = result.get("Item")
        return None if item is None else from_item(dict(item))

    def create(self, record: KeyRecord) -> None:
        try:
            self._db.put_item(
                TableName=self._table, Item=to_item(record), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                raise KeyExistsError(f"key {record.key_id} already exists") from None
            raise UpstreamError(f"DynamoDB could not store an API key: {aws_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise UpstreamError(f"DynamoDB could not store an API key: {aws_error_code(exc)}") from exc

    def save(self, record: KeyRecord) -> None:
        try:
            self._db.put_item(
                TableName=self._table, Item=to_item(record), ConditionExpression="attribute_exists(pk)"
            )
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"DynamoDB could not update an API key: {aws_error_code(exc)}") from exc

    def list(self) -> list[KeyRecord]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :key)",
            "ExpressionAttributeValues": {":pk": {"S": PARTITION}, ":key": {"S": SORT_PREFIX}},
            "ConsistentRead": True,
        }
        records: list[KeyRecord] = []
        try:
            while True:
                page = self._db.query(**kwargs)
                records.extend(from_item(dict(item)) for item in page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    return records
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"DynamoDB could not list API keys: {aws_error_code(exc)}") from exc


__all__ = ["PARTITION", "DynamoDBCredentialStore", "from_item", "to_item"]
