"""Per-container construction of a handler's dependencies.

A Lambda container builds its settings and clients once and reuses them for every
invocation. The local stack and the tests run several hubs, one after the other, in
one interpreter, each with its own environment; keying the cache on the environment
gives each of them its own dependencies while a real container builds them once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache

_PREFIXES = ("SETHUB_", "AWS_")


def per_environment[T](factory: Callable[[], T]) -> Callable[[], T]:
    """Wrap ``factory`` so it runs once per distinct ``SETHUB_*``/``AWS_*`` environment."""

    @lru_cache(maxsize=4)
    def build(_environment: tuple[tuple[str, str], ...]) -> T:
        return factory()

    def get() -> T:
        return build(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(_PREFIXES))))

    return get
