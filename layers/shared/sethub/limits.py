"""Size limits that more than one module enforces, so ``/events`` and ``/hub`` agree.

The table keys never hold these values raw when they could overflow DynamoDB's key
sizes (2,048 bytes for a partition key, 1,024 for a sort key): long values are hashed
in the key and kept whole as attributes (``sethub.subscriptions``, ``sethub.records``).
"""

from __future__ import annotations

MAX_TOPIC_CHARS = 2048
"""A topic, whether registered, subscribed, or named by a published event."""
MAX_CALLBACK_CHARS = 2048
"""A subscriber's ``hub.callback`` URL."""
MAX_JTI_CHARS = 256
"""A publisher's ``jti``: an idempotency key, not a document."""
MAX_CONTENT_BYTES = 256 * 1024
"""Published raw content (WSO2-style publish body, or what a topic URL fetch returns)."""

__all__ = ["MAX_CALLBACK_CHARS", "MAX_CONTENT_BYTES", "MAX_JTI_CHARS", "MAX_TOPIC_CHARS"]
