"""Input hygiene the hub applies at its door, and how it names a callback anywhere else.

- Control characters (C0, DEL, C1, and the Unicode line and paragraph separators) are
  refused in every value that becomes an identifier, a table key, a log field or an
  HTTP header: a topic, a callback, a ``jti``, a Content-Type. A CR/LF callback would
  fail every delivery for a day; a ``\\n`` in a topic would let two (topic, callback)
  pairs share a subscription id.
- Callback URLs may carry tokens in their path or query. Logs, delivery records and
  error messages name a callback by its host and its subscription id only.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sethub.subscriptions import subscription_id

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (or a Unicode line/paragraph separator)."""
    return _CONTROL.search(text) is not None


def control_problem(name: str, text: str) -> str | None:
    """A one-line reason when ``text`` holds a control character, else None."""
    if has_control(text):
        return f"{name} must not contain control characters"
    return None


def callback_host(callback: str) -> str:
    """The callback's host (and port, when it names one): never its user info, path or query."""
    try:
        parts = urlsplit(callback)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(malformed)"
    if not host:
        return "(no host)"
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port is not None else shown


def callback_fields(topic: str, callback: str) -> dict[str, str]:
    """How a log line names a subscription's callback: host and subscription id."""
    return {"callback_host": callback_host(callback), "subscription_id": subscription_id(topic, callback)}


def callback_label(topic: str, callback: str) -> str:
    """``host (subscription <id>)``: a callback named in one line of text."""
    return f"{callback_host(callback)} (subscription {subscription_id(topic, callback)})"


__all__ = ["callback_fields", "callback_host", "callback_label", "control_problem", "has_control"]
