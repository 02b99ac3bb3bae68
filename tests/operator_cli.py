"""The operator CLI (``sethub``) run in-process, and its tables read back as people read them."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from sethub.cli import main


def run_cli(
    argv: Sequence[str], *, clients: Any, env: Mapping[str, str] | None = None, stdin: str = ""
) -> tuple[int, str, str]:
    """``sethub ARGV`` with these clients and only ``env`` as its environment: code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), clients=clients, env=dict(env or {}), out=out, err=err, stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


def table_rows(text: str) -> list[list[str]]:
    """A printed table's lines as cells, header first: cells are cut where the header's columns start
    (a cell may hold spaces, an error message does)."""
    lines = text.splitlines()
    if not lines:
        return []
    header = lines[0]
    starts = [i for i, char in enumerate(header) if char != " " and (i == 0 or header[i - 1] == " ")]
    ends = [*starts[1:], None]
    return [[line[start:end].strip() for start, end in zip(starts, ends, strict=True)] for line in lines]
