"""``sethub`` (``python -m sethub``): the operator's one command for a hub.

    sethub [--stack NAME | --endpoint URL] [--json] GROUP COMMAND ...

Every group is a module of this package with ``register(commands, common)``; each
command is a function ``(Context) -> int`` that calls the domain code. Exit codes: 0 done,
1 failed or not found (one line on stderr), 2 bad usage (argparse's own code). ``--json``
prints what scripts parse on stdout; remarks for people go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from sethub.cli import (
    deadletters,
    deliveries,
    keys,
    recover,
    signing,
    ssf,
    stats,
    subscriptions,
    topics,
)
from sethub.cli.context import CommandFailedError, Context
from sethub.cli.target import ENDPOINT_ENV, STACK_ENV, CliClients, UsageError, endpoint_and_region
from sethub.errors import SethubError

PROG = "sethub"
GROUPS = (topics, subscriptions, keys, ssf, deliveries, deadletters, recover, signing, stats)


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (subcommands' parsers are of this class too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def common_options(*, defaults: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name."""
    # Only the root sets defaults: a subcommand's unset option must not hide the root's.
    default = None if defaults else argparse.SUPPRESS
    parent = argparse.ArgumentParser(add_help=False)
    where = parent.add_argument_group("which hub")
    where.add_argument("--stack", default=default, help=f"a deployed stack's name (default: ${STACK_ENV})")
    where.add_argument(
        "--endpoint",
        default=default,
        help=f"the AWS endpoint of make local, as its banner prints it (default: ${ENDPOINT_ENV})",
    )
    where.add_argument("--region", default=default, help="AWS region (default: the AWS configuration's)")
    where.add_argument("--table", default=default, help="the hub table, overriding the stack's")
    parent.add_argument(
        "--json", action="store_true", default=False if defaults else argparse.SUPPRESS, help="print JSON"
    )
    return parent


def parser() -> argparse.ArgumentParser:
    root = Parser(
        prog=PROG,
        description="Operate a sethub hub: topics, subscriptions, keys, SSF receivers, deliveries, "
        "dead letters, recovery of missed events, signing keys and the last hour's numbers.",
        parents=[common_options(defaults=True)],
        epilog="Exit codes: 0 done, 1 failed or not found, 2 bad usage.",
    )
    groups = root.add_subparsers(dest="group", required=True, metavar="GROUP")
    common = common_options(defaults=False)
    for group in GROUPS:
        group.register(groups, common)
    return root


def main(
    argv: Sequence[str] | None = None,
    *,
    clients: CliClients | None = None,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    environ = dict(os.environ) if env is None else env
    err = err or sys.stderr
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2)
        return int(exc.code or 0)
    endpoint, region = endpoint_and_region(args.endpoint, args.region, environ)
    context = Context(
        args=args,
        clients=clients or CliClients(endpoint, region),
        env=environ,
        out=out or sys.stdout,
        err=err,
        stdin=stdin or sys.stdin,
    )
    try:
        return int(args.run(context))
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=err)
        return 2
    except (CommandFailedError, SethubError, LookupError, ValueError) as exc:
        print(f"{PROG}: {_one_line(exc)}", file=err)
        return 1
    except (ClientError, BotoCoreError) as exc:
        print(f"{PROG}: AWS: {_one_line(exc)}", file=err)
        return 1


def _one_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, LookupError) and exc.args else str(exc)
    return " ".join(text.split()) or type(exc).__name__


__all__ = ["main", "parser"]
