"""The machine's description and the one table, as printed and as written to docs/benchmarks.md."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}, {today}"
    )


def spread(values: Sequence[float], unit: str = "", scale: float = 1.0, digits: int = 2) -> str:
    """``median (min-max)`` of several runs, each value times ``scale``: how the bench reports
    a figure measured more than once."""
    scaled = [value * scale for value in values]
    return (
        f"{statistics.median(scaled):,.{digits}f}{unit} "
        f"({min(scaled):,.{digits}f}-{max(scaled):,.{digits}f}{unit})"
    )


@dataclass(frozen=True)
class Line:
    measurement: str
    hub: str
    urllib3: str = ""
    requests: str = ""
    ratio: str = ""
    note: str = ""


HEADER = ("measurement", "sethub", "bare urllib3", "bare requests", "sethub / urllib3", "note")


def table(lines: list[Line]) -> str:
    rows = [HEADER, *[(x.measurement, x.hub, x.urllib3, x.requests, x.ratio, x.note) for x in lines]]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER))]

    def render(row: tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([render(rows[0]), separator, *[render(row) for row in rows[1:]]])


def markdown(description: str, body: str, notes: list[str], *, sections: list[str] | None = None) -> str:
    return "\n".join(
        [
            "# Benchmarks",
            "",
            "Written by `make bench` (`python -m bench`); every row comes from the same run.",
            "",
            f"Machine: {description}.",
            "",
            body,
            "",
            *[part for section in sections or [] for part in (section, "")],
            "## Notes",
            "",
            *[f"- {note}" for note in notes],
            "",
        ]
    )
