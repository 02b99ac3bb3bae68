"""The HTTP API ingress's Lambda authorizer: may this key call ``POST /events`` at all?

With ``Ingress=http`` the template puts ``POST /events`` on an API Gateway HTTP API ($1.00
per million requests instead of the REST API's $3.50). HTTP APIs have no API keys, so a
Lambda authorizer (payload 2.0, simple responses) checks the ``x-api-key`` header against
the hashed key records. API Gateway caches each answer per key value for the authorizer's
TTL, so a publisher's steady stream costs one authorizer invocation per key and TTL.

The authorizer is the door, not the only check: the ingest function still authenticates
the key itself (at most ``CACHE_SECONDS`` stale) and checks its topic scopes, so a key
revoked while the gateway's answer is cached stops working within a minute as on the
REST API (DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sethub.credentials.checker import KeyChecker, presented_key
from sethub.credentials.keys import key_hash, key_id_of_hash
from sethub.credentials.principal import Principal

PUBLISHING_ROLES = frozenset({"admin", "publisher"})
"""Roles that may call ``POST /events`` (topic scopes are the ingest function's check)."""


@dataclass(frozen=True)
class Decision:
    """The authorizer's answer and, for the log, why (never the key itself)."""

    allowed: bool
    reason: str
    key_id: str | None = None
    """The presented key's public id (from its hash), when a key was presented."""
    principal: Principal | None = None

    def response(self) -> dict[str, Any]:
        """An HTTP API "simple response"; the context reaches the ingest function's event."""
        if not self.allowed or self.principal is None:
            return {"isAuthorized": False}
        return {
            "isAuthorized": True,
            "context": {"keyId": self.principal.key_id, "role": self.principal.role},
        }


def decide(checker: KeyChecker, headers: Mapping[str, str] | None) -> Decision:
    """Allow a live admin or publisher key; deny a missing, unknown, revoked or subscriber key."""
    key = presented_key(headers)
    if key is None:
        return Decision(False, "no API key")
    key_id = key_id_of_hash(key_hash(key))
    principal = checker.lookup(key)
    if principal is None:
        return Decision(False, "unknown or revoked API key", key_id)
    if principal.role not in PUBLISHING_ROLES:
        return Decision(False, f"a {principal.role} key cannot publish", key_id, principal)
    return Decision(True, "publishing key", key_id, principal)


__all__ = ["PUBLISHING_ROLES", "Decision", "decide"]
