"""The functions' side: a presented key to a ``Principal``, and what each operation needs.

A container remembers each lookup (found, unknown or revoked) for ``CACHE_SECONDS``
(``SETHUB_KEY_CACHE_SECONDS``, at most 60), so
a revoked key stops working on every warm container within that time, and a flood of
requests with one key costs one table read per container and period. The cache is
bounded: random keys cannot grow it without limit.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from sethub.credentials.keys import key_hash, presentable
from sethub.credentials.principal import Principal
from sethub.credentials.store import CredentialStore
from sethub.errors import ForbiddenError, UnauthorizedError
from sethub.settings import DEFAULT_KEY_CACHE_SECONDS

API_KEY_HEADER = "x-api-key"
CACHE_SECONDS = float(DEFAULT_KEY_CACHE_SECONDS)
"""The default; deployments set ``SETHUB_KEY_CACHE_SECONDS`` (at most 60 s, DESIGN.md: a revoked
key stops working within a minute)."""
CACHE_ENTRIES = 1024

MISSING_KEY = f"missing API key: send it in the {API_KEY_HEADER} header"
UNKNOWN_KEY = "unknown or revoked API key"


def presented_key(headers: Mapping[str, str] | None) -> str | None:
    """The ``x-api-key`` header by case-insensitive name (API Gateway keeps the caller's case)."""
    if not headers:
        return None
    for name, value in headers.items():
        if name.lower() == API_KEY_HEADER:
            # Sent: only a blank value counts as missing; one too long for a key is a wrong
            # key (403 from ``lookup``), not a missing one.
            return value.strip() or None
    return None


class KeyChecker:
    """Authenticates presented keys against the store, with a short per-container cache."""

    def __init__(
        self,
        store: CredentialStore,
        *,
        ttl: float = CACHE_SECONDS,
        max_entries: int = CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def ttl(self) -> float:
        """Seconds a lookup is remembered: how long a revoked key may still work here."""
        return self._ttl

    def lookup(self, key: str | None) -> Principal | None:
        """The live principal of ``key``; None for an empty, unknown or revoked key."""
        candidate = presentable(key)
        if candidate is None:
            return None
        digest = key_hash(candidate)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(digest)
            if cached is not None and now - cached[0] < self._ttl:
                return cached[1]
        # The hash is the lookup key: the table finds the record or nothing, so no
        # comparison of secrets happens here at all.
        record = self._store.get(digest)
        principal = record.principal() if record is not None and record.active else None
        with self._lock:
            self._cache[digest] = (now, principal)
            self._cache.move_to_end(digest)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return principal

    def authenticate(self, headers: Mapping[str, str] | None) -> Principal:
        """The caller's principal: ``UnauthorizedError`` (401) without a key, ``ForbiddenError``
        (403, what API Gateway answers for a key it does not know) for an unknown or revoked one."""
        key = presented_key(headers)
        if key is None:
            raise UnauthorizedError(MISSING_KEY)
        principal = self.lookup(key)
        if principal is None:
            raise ForbiddenError(UNKNOWN_KEY)
        return principal

    def optional(self, headers: Mapping[str, str] | None) -> Principal | None:
        """For a public hub: None without a key, but a key that is sent must be valid."""
        if presented_key(headers) is None:
            return None
        return self.authenticate(headers)


def require_publisher(principal: Principal, topic: str) -> None:
    """``ForbiddenError`` unless ``principal`` may publish to (or manage) ``topic``."""
    if principal.may_publish(topic):
        return
    if principal.role == "publisher":
        raise ForbiddenError("this publisher key is not allowed on this topic")
    raise ForbiddenError(f"a {principal.role} key cannot publish or manage topics")


def require_publisher_role(principal: Principal) -> None:
    """``ForbiddenError`` unless ``principal`` may publish at all (before any topic is known)."""
    if principal.role not in ("admin", "publisher"):
        raise ForbiddenError(f"a {principal.role} key cannot publish or manage topics")


def require_events_allowed(principal: Principal, raw_events: list[Any]) -> None:
    """``POST /events``: the key may publish, and every event's topic is within its scope.

    Checked on the raw events, before validation, so that nothing about a topic outside
    the key's scope is looked up; events without a usable topic fail validation later.
    """
    require_publisher_role(principal)
    for raw in raw_events:
        topic = raw.get("topic") if isinstance(raw, dict) else None
        if isinstance(topic, str):
            require_publisher(principal, topic)


def require_subscriber(principal: Principal) -> None:
    if not principal.may_subscribe():
        raise ForbiddenError(f"a {principal.role} key cannot subscribe or unsubscribe")


def may_change(principal: Principal | None, owner: str | None) -> bool:
    """May ``principal`` change or remove a subscription that ``owner`` created and still owns?

    An admin may change anything; a key may change what it created; a subscription
    created without a key (public hub) may be changed by anyone allowed to subscribe,
    the verification of intent being the only check; an anonymous caller may not
    change what a key created.
    """
    if owner is None or (principal is not None and principal.is_admin):
        return True
    return principal is not None and principal.key_id == owner


def require_owner(principal: Principal | None, owner: str | None) -> None:
    if not may_change(principal, owner):
        raise ForbiddenError(
            "this subscription belongs to another key: only that key or an admin may change it"
        )


__all__ = [
    "API_KEY_HEADER",
    "CACHE_SECONDS",
    "KeyChecker",
    "may_change",
    "presented_key",
    "require_events_allowed",
    "require_owner",
    "require_publisher",
    "require_publisher_role",
    "require_subscriber",
]
