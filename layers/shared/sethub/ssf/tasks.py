"""The stream tasks the SSF function queues for dispatch (kept apart from ``routing``, which
the SSF function does not load: it brings in the delivery code)."""

from __future__ import annotations

import secrets

from sethub.messages import StreamTask
from sethub.ssf.model import Stream


def flush_task(stream: Stream) -> StreamTask:
    """The task that pushes what ``stream`` held while paused: a new flush (its own lease
    owner), at page 0 (``sethub.ssf.routing`` takes it from there)."""
    return StreamTask(
        client_id=stream.client_id,
        stream_id=stream.stream_id,
        action="flush",
        payload={"lease": secrets.token_hex(16), "page": 0},
    )


__all__ = ["flush_task"]
