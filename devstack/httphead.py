"""An HTTP/1.1 message's header fields, read by hand: the local stack's two servers that speak
HTTP themselves (the functions' AWS endpoint, devstack.awsgate, and the embedded moto,
devstack.motoserver) read them here. ``http.server`` hands each header block to the email
package, which cost a fifth of moto's CPU per call."""

from __future__ import annotations

import io

MAX_LINE = 65536
"""http.client's limits: the longest line and the most fields."""
MAX_HEADERS = 100


class HttpError(ValueError):
    """A message this side refuses: one line saying why."""


def read_fields(stream: io.BufferedIOBase) -> list[tuple[str, str]]:
    """The header fields in order, up to the blank line; ``HttpError`` when the peer closes
    inside them, a line is malformed, or they are longer than http.client allows."""
    fields: list[tuple[str, str]] = []
    while (line := stream.readline(MAX_LINE + 1)) not in (b"\r\n", b"\n"):
        if not line:
            raise HttpError("the connection closed inside the headers")
        if len(line) > MAX_LINE or len(fields) >= MAX_HEADERS:
            raise HttpError("headers too long")
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():
            raise HttpError(f"malformed header line {line[:40]!r}")
        fields.append((name, value.strip()))
    return fields
