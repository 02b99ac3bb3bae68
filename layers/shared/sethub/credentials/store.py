"""The key record and the storage contract the rest of the package relies on.

The logic (what a record means, when it is live) is here; ``dynamodb.py`` only maps
records to items and makes the table calls.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

from sethub.credentials.keys import key_id_of_hash
from sethub.credentials.principal import Principal, Role


@dataclass(frozen=True)
class KeyRecord:
    """One API key as stored: its hash and what it may do, never the key."""

    key_hash: str
    role: Role
    topics: tuple[str, ...] = ()
    issuer: str | None = None
    name: str = ""
    created_at: int = 0
    revoked_at: int | None = None
    gateway_key_id: str | None = None
    """The API Gateway API key with the same value (per-key throttling), when there is one."""

    @property
    def key_id(self) -> str:
        return key_id_of_hash(self.key_hash)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def principal(self) -> Principal:
        return Principal(
            key_id=self.key_id, role=self.role, topics=self.topics, issuer=self.issuer, name=self.name
        )

    def revoked(self, at: int) -> KeyRecord:
        return replace(self, revoked_at=at)


class KeyExistsError(Exception):
    """A key with this hash is already stored."""


class CredentialStore(ABC):
    """Where key records live: four calls, no rules."""

    @abstractmethod
    def get(self, key_hash: str) -> KeyRecord | None:
        """The record of the key with this hash (revoked ones included), or None."""

    @abstractmethod
    def create(self, record: KeyRecord) -> None:
        """Store a new record; ``KeyExistsError`` if its hash is taken."""

    @abstractmethod
    def save(self, record: KeyRecord) -> None:
        """Replace an existing record (scope change, revocation)."""

    @abstractmethod
    def list(self) -> list[KeyRecord]:
        """Every record, revoked ones included."""


__all__ = ["CredentialStore", "KeyExistsError", "KeyRecord"]
