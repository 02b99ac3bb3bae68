"""How commands print: aligned tables for people, JSON (``--json``) for scripts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

Row = Mapping[str, Any]


def when(epoch: float | None) -> str:
    """UTC ISO time to the second; ``-`` for none."""
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    # A cell is one line: a message with tabs or newlines would break the columns.
    return " ".join(str(value).split())


def table(rows: Sequence[Row], columns: Sequence[str], out: TextIO) -> None:
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column), *(len(line[i]) for line in cells)]) for i, column in enumerate(columns)]
    for line in [list(columns), *cells]:
        print(
            "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip(), file=out
        )


def emit(data: Any, out: TextIO, *, as_json: bool, columns: Sequence[str] | None = None) -> None:
    """``data`` as JSON, or as a table of ``columns`` (a list of rows) / ``name  value`` lines (a mapping)."""
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=False, default=str), file=out)
        return
    if isinstance(data, Mapping):
        width = max((len(str(key)) for key in data), default=0)
        for key, value in data.items():
            print(f"{str(key).ljust(width)}  {_cell(value)}", file=out)
        return
    table(data, columns or (list(data[0]) if data else []), out)


__all__ = ["emit", "table", "when"]
