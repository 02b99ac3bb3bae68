"""Key administration: create, list, scope and revoke (what the operator command runs).

The order of writes keeps the table the source of truth: a new key is stored before its
API Gateway copy exists (so the gateway never admits a key the functions do not know),
and a revoked key is marked revoked before its gateway copy is deleted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from sethub.credentials.apigateway import GatewayKeys
from sethub.credentials.keys import key_hash, new_key
from sethub.credentials.principal import Role, validate_patterns
from sethub.credentials.store import CredentialStore, KeyExistsError, KeyRecord

MAX_NAME_CHARS = 128


class KeyNotFoundError(LookupError):
    """No key (or more than one) has this id."""


class KeyAdmin:
    def __init__(
        self,
        store: CredentialStore,
        *,
        gateway: GatewayKeys | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._gateway = gateway
        self._clock = clock

    def create(
        self,
        role: Role,
        *,
        topics: tuple[str, ...] = (),
        name: str = "",
        issuer: str | None = None,
        value: str | None = None,
    ) -> tuple[str, KeyRecord]:
        """A new key and its record; the key is returned once and never stored.

        ``value`` imports a key chosen elsewhere (the local stack's known keys, or a key
        migrated from an older deployment) instead of generating one.
        """
        if len(name) > MAX_NAME_CHARS:
            raise ValueError(f"a key name is at most {MAX_NAME_CHARS} characters")
        if topics and role != "publisher":
            raise ValueError("only publisher keys are scoped to topics")
        key = value if value is not None else new_key()
        if not key.strip() or key != key.strip():
            raise ValueError("a key must be non-empty, without surrounding spaces")
        record = KeyRecord(
            key_hash=key_hash(key),
            role=role,
            topics=validate_patterns(topics),
            issuer=issuer or None,
            name=name,
            created_at=int(self._clock()),
        )
        self._store.create(record)
        if self._gateway is not None:
            gateway_id = self._gateway.add(
                key, name=f"sethub-{role}-{record.key_id}", description=name or f"sethub {role} key"
            )
            record = replace(record, gateway_key_id=gateway_id)
            self._store.save(record)
        return key, record

    def ensure(self, role: Role, value: str, *, name: str = "") -> KeyRecord:
        """The record of ``value``, created if missing (idempotent: for seeding known keys)."""
        try:
            return self.create(role, name=name, value=value)[1]
        except KeyExistsError:
            existing = self._store.get(key_hash(value))
            if existing is None:  # deleted between the two calls
                raise
            return existing

    def list(self) -> list[KeyRecord]:
        return sorted(self._store.list(), key=lambda record: (record.created_at, record.key_id))

    def find(self, key_id: str) -> KeyRecord:
        matches = [record for record in self._store.list() if record.key_id == key_id.strip()]
        if len(matches) != 1:
            raise KeyNotFoundError(f"no key has the id {key_id[:40]!r}")
        return matches[0]

    def scope(
        self, key_id: str, topics: tuple[str, ...] | None = None, *, issuer: str | None = None
    ) -> KeyRecord:
        """Limit a publisher key to ``topics`` (empty: every topic) and/or pin its ``iss``
        (``""`` unpins); None leaves that part as it is."""
        record = self.find(key_id)
        if record.role != "publisher":
            raise ValueError("only publisher keys are scoped to topics")
        updated = record
        if topics is not None:
            updated = replace(updated, topics=validate_patterns(topics))
        if issuer is not None:
            updated = replace(updated, issuer=issuer or None)
        self._store.save(updated)
        return updated

    def revoke(self, key_id: str) -> KeyRecord:
        record = self.find(key_id)
        if not record.active:
            return record
        revoked = record.revoked(int(self._clock()))
        self._store.save(revoked)
        if self._gateway is not None and record.gateway_key_id:
            self._gateway.remove(record.gateway_key_id)
        return revoked


__all__ = ["KeyAdmin", "KeyNotFoundError"]
