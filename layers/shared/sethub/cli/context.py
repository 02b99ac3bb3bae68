"""What every command gets: its arguments, the hub it acts on, clients, and where to print."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TextIO

from sethub.cli.output import emit
from sethub.cli.target import CliClients, Target, resolve


class CommandFailedError(Exception):
    """The command ran and failed, or found nothing (exit code 1); the message is one line."""


@dataclass
class Context:
    args: argparse.Namespace
    clients: CliClients
    env: Mapping[str, str]
    out: TextIO
    err: TextIO
    stdin: TextIO
    now: Callable[[], float] = field(default=time.time)
    sleep: Callable[[float], None] = field(default=time.sleep)
    """How ``--wait`` waits between two reads of what it waits for."""

    @property
    def as_json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    @cached_property
    def target(self) -> Target:
        return resolve(
            self.clients,
            stack=getattr(self.args, "stack", None),
            endpoint=getattr(self.args, "endpoint", None),
            table=getattr(self.args, "table", None),
            env=self.env,
        )

    def emit(self, data: Any, columns: list[str] | None = None) -> None:
        emit(data, self.out, as_json=self.as_json, columns=columns)

    def note(self, text: str) -> None:
        """A remark for people (stderr), never mixed into what a script parses."""
        print(text, file=self.err)


__all__ = ["CommandFailedError", "Context"]
