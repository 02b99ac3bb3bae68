"""Just the AWS resources a library module needs, in in-process moto, in milliseconds.

``build_hub`` (tests/hubs.py) provisions the whole template in the session's moto server
(about a second, then a few ms per call over HTTP); the fast tests of websub, records and
signing need only the hub table, two queues and KMS keys. ``in_process_aws`` runs moto in
the test's process (a call costs about 2 ms) and ``build_lean_hub`` creates those resources
under a fresh prefix, so tests sharing one mock never see each other's items.
"""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import botocore.session
from botocore.config import Config
from moto import mock_aws

from sethub.clients import DEFAULT_CONFIG, AwsClients
from sethub.credentials.admin import KeyAdmin
from sethub.credentials.dynamodb import DynamoDBCredentialStore
from sethub.credentials.principal import Role
from sethub.messages import Message, parse_message
from sethub.settings import Settings

REGION = "us-east-1"
# In-process moto answers only AWS's own endpoints: a session-wide AWS_ENDPOINT_URL (the
# moto server of other tests) must not send these clients elsewhere.
_CONFIG = DEFAULT_CONFIG.merge(Config(ignore_configured_endpoint_urls=True))  # type: ignore[call-arg]


@cache
def _session() -> botocore.session.Session:
    """One botocore session for the process: it loads each service's model once."""
    session = botocore.session.get_session()
    # Loaded at import: a process forked after it (mutmut's, one per mutant) starts warm.
    return session


def client(service: str) -> Any:
    """A client of ``service`` for in-process moto (fake credentials, fixed region)."""
    return _session().create_client(
        service,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=_CONFIG,
    )


# Loaded once at import, not on first use: a process forked after it (mutmut's, one per
# mutant) starts with moto's backends and botocore's models ready.
for _service in ("dynamodb", "sqs", "kms"):
    importlib.import_module(f"moto.{_service}.models")
    importlib.import_module(f"moto.{_service}.responses")
    _session().get_service_model(_service)


@contextmanager
def in_process_aws() -> Iterator[None]:
    """moto in this process for the duration (a module-scoped fixture's)."""
    with mock_aws():
        yield


@dataclass
class LeanHub:
    """A hub table, a verify and an events queue and a KMS data key; nothing else."""

    settings: Settings
    clients: AwsClients

    def with_settings(self, **changes: Any) -> Settings:
        return replace(self.settings, **changes)

    def messages(self, queue_url: str) -> list[Message]:
        """Every message on ``queue_url`` (received and deleted: the next call sees only new ones)."""
        sqs = self.clients.sqs
        found: list[Message] = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                found.append(parse_message(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def raw_bodies(self, queue_url: str) -> list[dict[str, Any]]:
        """The JSON bodies on ``queue_url`` (received and deleted)."""
        sqs = self.clients.sqs
        found: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def add_key(self, role: Role, *, topics: tuple[str, ...] = (), issuer: str | None = None) -> str:
        """A new API key of ``role`` in the hub table; returns the key itself."""
        store = DynamoDBCredentialStore(self.clients, self.settings.table_name)
        key, _ = KeyAdmin(store).create(role, topics=topics, issuer=issuer)
        return key

    def item(self, pk: str, sk: str) -> dict[str, Any] | None:
        found = self.clients.dynamodb.get_item(
            TableName=self.settings.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        )
        return found.get("Item")

    def items(self, pk: str) -> list[dict[str, Any]]:
        return self.clients.dynamodb.query(
            TableName=self.settings.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
        )["Items"]


def build_lean_hub(**settings: Any) -> LeanHub:
    """Create the table (template.yaml's keys), the queues and a data key under a fresh prefix
    (inside ``in_process_aws``)."""
    prefix = f"l{uuid.uuid4().hex[:10]}"
    clients = AwsClients(dynamodb=client("dynamodb"), sqs=client("sqs"), kms=client("kms"))
    table = f"{prefix}-HubTable"
    clients.dynamodb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    )
    verify = clients.sqs.create_queue(QueueName=f"{prefix}-VerifyQueue")["QueueUrl"]
    events = clients.sqs.create_queue(QueueName=f"{prefix}-EventsQueue")["QueueUrl"]
    data_key = clients.kms.create_key(Description=f"{prefix} data key")["KeyMetadata"]["KeyId"]
    return LeanHub(
        settings=Settings(
            table_name=table,
            verify_queue_url=verify,
            events_queue_url=events,
            data_key_id=data_key,
            **settings,
        ),
        clients=clients,
    )


__all__ = ["LeanHub", "build_lean_hub", "client", "in_process_aws"]
