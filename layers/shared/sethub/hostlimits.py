"""Per-callback-host limits on the verifier's outbound GETs, kept in the hub table.

The verifier GETs URLs that strangers name, so it bounds what one host can cost:

- **in flight**: at most ``slots`` verification or denial GETs to one host at a time,
  across every verifier container. A slot is a lease (an item that says until when it is
  held), taken with a conditional put and given back with a conditional delete; a
  container that dies holding one loses it when the lease runs out (one request timeout
  and a margin). A host that stalls every request ties up its own slots, never the
  verifier: everyone else's callbacks are verified meanwhile.
- **denials**: at most ``denials`` denial GETs per host per ``window`` seconds, a counter
  per (host, window) raised with a conditional update and deleted by TTL, so subscribe
  requests for unknown topics cannot turn the hub into a GET flood against a third party.

Items (one partition per host; the host is lower-cased, with its port when it names one):

    HOST#<host>  SLOT#<n>          holder, until (epoch seconds), ttl
    HOST#<host>  DENIALS#<window>  count, ttl

The DynamoDB calls and the item mapping are all here; the verifier decides what to do
when a limit is reached.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from sethub.clients import AwsClients
from sethub.errors import ConfigurationError, UpstreamError, aws_error_code
from sethub.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

HOST_PREFIX: Final = "HOST#"
SLOTS_PER_HOST: Final = 2
"""Verification and denial GETs in flight to one callback host at once."""
SLOT_MARGIN_SECONDS: Final = 5.0
"""A slot is held for one request timeout plus this, in case its holder dies."""
DENIALS_PER_WINDOW: Final = 10
"""Denial GETs to one callback host per window; more are dropped."""
DENIAL_WINDOW_SECONDS: Final = 3600
_MAX_LITERAL_HOST_CHARS: Final = 300


def host_key(host: str) -> str:
    """``HOST#<host>``, or ``HOST#=<sha256>`` for a host too long to be a readable key."""
    host = host.lower()
    if len(host) <= _MAX_LITERAL_HOST_CHARS:
        return f"{HOST_PREFIX}{host}"
    return f"{HOST_PREFIX}={hashlib.sha256(host.encode('utf-8')).hexdigest()}"


@dataclass(frozen=True)
class Slot:
    """A held in-flight slot; give it back with ``HostLimits.release``."""

    host: str
    index: int
    holder: str
    until: float


class HostLimits:
    """In-flight slots and denial counters per callback host (see the module docstring)."""

    def __init__(
        self,
        clients: AwsClients,
        settings: Settings,
        *,
        slots: int = SLOTS_PER_HOST,
        denials: int = DENIALS_PER_WINDOW,
        window_seconds: int = DENIAL_WINDOW_SECONDS,
    ) -> None:
        if not settings.table_name:
            raise ConfigurationError("SETHUB_TABLE_NAME is not set")
        if slots < 1 or denials < 0 or window_seconds < 1:
            raise ValueError("slots and window_seconds must be positive, denials not negative")
        self._clients = clients
        self._table = settings.table_name
        self.hold_seconds = settings.delivery_timeout_seconds + SLOT_MARGIN_SECONDS
        """How long a slot is held at most: one request timeout and a margin."""
        self.slots = slots
        self.denials = denials
        self.window_seconds = window_seconds

    @property
    def _db(self) -> DynamoDBClient:
        return self._clients.dynamodb

    def acquire(self, host: str, *, now: float | None = None) -> Slot | None:
        """Take a free slot of ``host``, or None when all of them are held."""
        current = time.time() if now is None else now
        holder = uuid.uuid4().hex
        until = current + self.hold_seconds
        # Start at a random slot, so concurrent callers do not all race for slot 0.
        first = random.randrange(self.slots)  # noqa: S311 - spreading load, not a secret
        for step in range(self.slots):
            index = (first + step) % self.slots
            try:
                self._db.put_item(
                    TableName=self._table,
                    Item={
                        "pk": {"S": host_key(host)},
                        "sk": {"S": f"SLOT#{index}"},
                        "holder": {"S": holder},
                        "until": {"N": f"{until:.3f}"},
                        "ttl": {"N": str(int(until) + DENIAL_WINDOW_SECONDS)},
                    },
                    ConditionExpression="attribute_not_exists(pk) OR #until < :now",
                    ExpressionAttributeNames={"#until": "until"},
                    ExpressionAttributeValues={":now": {"N": f"{current:.3f}"}},
                )
            except ClientError as exc:
                if aws_error_code(exc) == "ConditionalCheckFailedException":
                    continue
                raise UpstreamError(f"DynamoDB could not take a host slot: {aws_error_code(exc)}") from exc
            except BotoCoreError as exc:
                raise UpstreamError(f"DynamoDB could not take a host slot: {aws_error_code(exc)}") from exc
            return Slot(host=host, index=index, holder=holder, until=until)
        return None

    def release(self, slot: Slot) -> None:
        """Give ``slot`` back (a no-op if its lease ran out and someone else holds it now)."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key={"pk": {"S": host_key(slot.host)}, "sk": {"S": f"SLOT#{slot.index}"}},
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues={":holder": {"S": slot.holder}},
            )
        except ClientError as exc:
            if aws_error_code(exc) != "ConditionalCheckFailedException":
                raise UpstreamError(f"DynamoDB could not release a host slot: {aws_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise UpstreamError(f"DynamoDB could not release a host slot: {aws_error_code(exc)}") from exc

    def allow_denial(self, host: str, *, now: float | None = None) -> bool:
        """Count one denial GET to ``host``; False (nothing counted) once the window's are spent."""
        current = time.time() if now is None else now
        window = int(current) // self.window_seconds
        expires = (window + 2) * self.window_seconds
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"pk": {"S": host_key(host)}, "sk": {"S": f"DENIALS#{window}"}},
            "UpdateExpression": "ADD #count :one SET #ttl = :ttl",
            "ConditionExpression": "attribute_not_exists(#count) OR #count < :limit",
            "ExpressionAttributeNames": {"#count": "count", "#ttl": "ttl"},
            "ExpressionAttributeValues": {
                ":one": {"N": "1"},
                ":ttl": {"N": str(expires)},
                ":limit": {"N": str(self.denials)},
            },
        }
        if self.denials == 0:
            return False
        try:
            self._db.update_item(**request)
        except ClientError as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise UpstreamError(f"DynamoDB could not count a denial: {aws_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise UpstreamError(f"DynamoDB could not count a denial: {aws_error_code(exc)}") from exc
        return True


__all__ = [
    "DENIALS_PER_WINDOW",
    "DENIAL_WINDOW_SECONDS",
    "SLOTS_PER_HOST",
    "SLOT_MARGIN_SECONDS",
    "HostLimits",
    "Slot",
    "host_key",
]
