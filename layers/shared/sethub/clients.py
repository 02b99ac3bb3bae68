"""AWS clients, built lazily once per container and passed into the domain code.

Nothing in sethub creates a client at import time: a handler builds one ``AwsClients``
at module level (once per container) and hands it to the library; each client is made
on first use, so a handler that never touches KMS never pays for a KMS client at cold
start. botocore honours ``AWS_ENDPOINT_URL``, which is how the local stack and the tests
point everything at moto.

Clients come from botocore, not boto3: a boto3 client is botocore's plus hooks for S3
and resources, which sethub does not use, and importing boto3 (its sessions,
s3transfer) costs every handler's cold start ~10 ms more for nothing.

Every session of a process shares one botocore data loader: a session reads and parses the
endpoint rules, partitions and retry settings again for each client otherwise (four clients
cost ~330 ms of CPU with a loader each, ~125 ms with one shared).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import botocore.loaders
import botocore.session
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

# Adaptive retries back off on throttling instead of failing the batch.
DEFAULT_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 8}, connect_timeout=5, read_timeout=15)


# Its caches only ever fill with the same parsed files, so sharing it across threads is safe.
_LOADER = botocore.loaders.create_loader()


def new_session() -> botocore.session.Session:
    """A botocore session (one per client: sessions are not thread-safe) on the shared loader."""
    session = botocore.session.get_session()
    session.register_component("data_loader", _LOADER)
    return session


class ClientFactory(Protocol):
    """What makes a client: a ``botocore.session.Session``, or a stand-in in tests."""

    def create_client(self, service_name: str, *, config: Config | None = ...) -> Any: ...


class AwsClients:
    """The four AWS clients sethub uses; ``overrides`` lets tests inject their own."""

    def __init__(self, session: ClientFactory | None = None, **overrides: Any) -> None:
        self._session = session
        self._overrides = overrides

    def _client(self, service: str) -> Any:
        if service in self._overrides:
            return self._overrides[service]
        session = self._session or new_session()
        return session.create_client(service, config=DEFAULT_CONFIG)

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        return self._client("dynamodb")  # type: ignore[no-any-return]

    @cached_property
    def sqs(self) -> SQSClient:
        return self._client("sqs")  # type: ignore[no-any-return]

    @cached_property
    def kms(self) -> KMSClient:
        return self._client("kms")  # type: ignore[no-any-return]

    @cached_property
    def secretsmanager(self) -> SecretsManagerClient:
        return self._client("secretsmanager")  # type: ignore[no-any-return]
