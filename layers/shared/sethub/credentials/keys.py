"""API key values: generation, the stored hash and the key id. Pure.

A key is 43 random alphanumerics (256 bits) after a ``shk`` prefix that secret
scanners can look for; alphanumerics only, so the same value is also a valid API
Gateway API key. With that much entropy a single unsalted SHA-256 is enough to store:
nothing can be guessed from it, and a lookup by hash finds the key's record in one read.
"""

from __future__ import annotations

import hashlib
import secrets
import string

KEY_PREFIX = "shk"
KEY_RANDOM_CHARS = 43
"""log2(62) * 43 = 256 bits."""
KEY_ID_CHARS = 16
"""64 bits of the hash: unique among a hub's keys, and useless for finding the key."""
MAX_PRESENTED_CHARS = 256
"""Anything longer is not a key of this hub (and is not hashed)."""

_ALPHABET = string.ascii_letters + string.digits


def new_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(KEY_RANDOM_CHARS))


def key_hash(key: str) -> str:
    """The hex SHA-256 of the key: the only form in which a key is stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id_of_hash(digest: str) -> str:
    """The key's public name, derived from its hash: recorded as subscription owner, logged."""
    return digest[:KEY_ID_CHARS]


def key_id(key: str) -> str:
    return key_id_of_hash(key_hash(key))


def presentable(key: str | None) -> str | None:
    """The presented header value as a key candidate, or None: empty or missing never matches."""
    if key is None:
        return None
    value = key.strip()
    if not value or len(value) > MAX_PRESENTED_CHARS:
        return None
    return value


__all__ = ["KEY_PREFIX", "key_hash", "key_id", "key_id_of_hash", "new_key", "presentable"]
