"""Who is calling: the principal an API key authenticates as, and what its role allows.

Pure: no AWS, no I/O. A ``Principal`` is what the handlers pass around after the key
check; on a public hub an anonymous subscriber has no principal at all (``None``).

    admin       everything, including the operator commands
    publisher   POST /events; hub modes register, deregister, publish; optionally only
                on topics matching its patterns (``acme.*``)
    subscriber  hub modes subscribe, unsubscribe (of its own subscriptions)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, get_args

Role = Literal["admin", "publisher", "subscriber"]
ROLES: tuple[Role, ...] = get_args(Role)

MAX_PATTERNS = 50
MAX_PATTERN_CHARS = 512


def parse_role(value: str) -> Role:
    """``value`` as a ``Role``; ``ValueError`` names the three roles otherwise."""
    for role in ROLES:
        if value == role:
            return role
    raise ValueError(f"role must be one of {', '.join(ROLES)}, not {value[:40]!r}")


def validate_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """Topic patterns as stored: non-empty, bounded, without control characters."""
    if len(patterns) > MAX_PATTERNS:
        raise ValueError(f"at most {MAX_PATTERNS} topic patterns per key")
    for pattern in patterns:
        if not pattern or len(pattern) > MAX_PATTERN_CHARS:
            raise ValueError(f"a topic pattern must be 1 to {MAX_PATTERN_CHARS} characters")
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in pattern):
            raise ValueError("a topic pattern must not contain control characters")
    return patterns


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """``*`` matches any run of characters (dots and slashes included); nothing else is special."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


@dataclass(frozen=True)
class Principal:
    """The identity behind a presented API key (never the key itself)."""

    key_id: str
    """Derived from the key's hash (``sethub.credentials.keys.key_id``): safe to log and store."""
    role: Role
    topics: tuple[str, ...] = ()
    """Topic patterns a publisher is limited to; empty means every topic."""
    issuer: str | None = None
    """The SET ``iss`` pinned to this publisher key, if the operator set one."""
    name: str = ""
    """The operator's label for the key (``acme-prod``), for listings and logs."""
    _regexes: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regexes", tuple(pattern_regex(p) for p in self.topics))

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def scoped(self) -> bool:
        return bool(self.topics)

    def covers(self, topic: str) -> bool:
        """True if ``topic`` is within the key's patterns (every topic for an unscoped key)."""
        return not self._regexes or any(regex.fullmatch(topic) for regex in self._regexes)

    def may_publish(self, topic: str) -> bool:
        """Register, deregister, publish or ``POST /events`` on ``topic``."""
        return self.role == "admin" or (self.role == "publisher" and self.covers(topic))

    def may_subscribe(self) -> bool:
        """Subscribe or unsubscribe (ownership of the subscription is checked separately)."""
        return self.role in ("admin", "subscriber")


__all__ = [
    "MAX_PATTERNS",
    "ROLES",
    "Principal",
    "Role",
    "parse_role",
    "pattern_regex",
    "validate_patterns",
]
