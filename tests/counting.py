"""A boto3 client proxy that counts calls per operation, for the cost-discipline tests."""

from __future__ import annotations

from typing import Any


class Counting:
    """Wraps a client; ``calls`` maps an operation name to how often it was called."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return attribute(*args, **kwargs)

        return counted
