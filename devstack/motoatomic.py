"""DynamoDB applies each write atomically; moto does not.

moto serves requests on threads and checks a write's condition, then applies the write,
without a lock: two conditional writes of one item at the same moment can both pass their
condition (two SSF flushes both taking a stream's lease, two dispatchers both stamping
``failing_since``). DynamoDB never lets that happen, and sethub's leases and compare-and-swap
updates rely on it; so the process hosting moto applies its DynamoDB writes one at a time.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")
_serial = threading.RLock()
_installed = threading.Lock()


def atomic_dynamodb_writes() -> None:
    """Serialise this process's moto DynamoDB writes (idempotent): call it before moto serves."""
    with _installed:
        if getattr(DynamoDBBackend, "_sethub_atomic", False):
            return
        for name in _WRITES:
            setattr(DynamoDBBackend, name, _serialised(getattr(DynamoDBBackend, name)))
        DynamoDBBackend._sethub_atomic = True  # type: ignore[attr-defined]


def _serialised(write: Any) -> Any:
    @functools.wraps(write)
    def serialised(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        with _serial:
            return write(self, *args, **kwargs)

    return serialised


__all__ = ["atomic_dynamodb_writes"]
