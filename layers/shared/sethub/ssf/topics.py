"""The topics under which dispatch carries deliveries to SSF streams.

Apart from ``sethub.ssf.routing`` so that dispatch can tell a stream's delivery from a
subscription's without importing the SSF path (its models, SETs and store) on every cold
start: most batches have no stream in them.
"""

from __future__ import annotations

TOPIC_PREFIX = "ssf:"
"""Deliveries to streams carry ``ssf:<stream id>:<client id>`` where a subscription has its topic."""


def is_stream_topic(topic: str) -> bool:
    return topic.startswith(TOPIC_PREFIX)
