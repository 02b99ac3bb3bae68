"""``python -m sethub.credentials``: create, list, scope and revoke the hub's API keys.

    python -m sethub.credentials create --role publisher --topics 'acme.*' --name acme
    python -m sethub.credentials list
    python -m sethub.credentials scope <key id> --topics 'acme.*,billing.*'
    python -m sethub.credentials revoke <key id>

The table is ``--table`` or ``SETHUB_TABLE_NAME`` (stack output ``TableName``); with
``--usage-plan`` or ``SETHUB_USAGE_PLAN_ID`` (output ``UsagePlanId``) every key is also
an API Gateway key in the usage plan, which a deployed stack needs: its gateway refuses
keys it does not know. The key is printed once, at creation; only its hash is stored.
It runs with the operator's AWS credentials, not with a hub key.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TextIO

from sethub.clients import AwsClients
from sethub.credentials.admin import KeyAdmin, KeyNotFoundError
from sethub.credentials.apigateway import APIGatewayClient, GatewayKeys
from sethub.credentials.dynamodb import DynamoDBCredentialStore
from sethub.credentials.principal import ROLES, parse_role
from sethub.credentials.store import KeyExistsError, KeyRecord
from sethub.errors import SethubError

PROG = "python -m sethub.credentials"
MIN_IMPORTED_CHARS = 20
"""API Gateway's minimum for an API key value; a key kept from elsewhere must be at least that."""


def _topics(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _when(epoch: int | None) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(record: KeyRecord) -> str:
    """One line per key, for ``list`` and after each change: never the key itself."""
    status = "active" if record.active else f"revoked {_when(record.revoked_at)}"
    topics = ",".join(record.topics) or "*"
    parts = [
        record.key_id,
        f"{record.role:<10}",
        f"topics={topics}",
        status,
        f"created {_when(record.created_at)}",
    ]
    if record.issuer:
        parts.append(f"iss={record.issuer}")
    if record.gateway_key_id:
        parts.append(f"gateway-key={record.gateway_key_id}")
    if record.name:
        parts.append(f"name={record.name}")
    return "  ".join(parts)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog=PROG, description=(__doc__ or "").splitlines()[0])
    root.add_argument("--table", help="the hub table (default: $SETHUB_TABLE_NAME)")
    root.add_argument(
        "--usage-plan", help="API Gateway usage plan id (default: $SETHUB_USAGE_PLAN_ID; none: table only)"
    )
    commands = root.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--topics", help="publisher only: comma-separated topic patterns, * matches anything")
    create.add_argument("--name", default="", help="a label for listings (who holds the key)")
    create.add_argument("--issuer", help="publisher only: the SET iss pinned to this key")
    create.add_argument(
        "--from-stdin",
        action="store_true",
        help="take the key from standard input instead of generating one (to keep an existing key)",
    )
    commands.add_parser("list", help="every key: id, role, topics, status (never the key)")
    scope = commands.add_parser("scope", help="change a publisher key's topic patterns or pinned iss")
    scope.add_argument("key_id")
    scope.add_argument("--topics", help="comma-separated patterns; an empty string allows every topic")
    scope.add_argument("--issuer", help="the SET iss pinned to this key; an empty string unpins it")
    revoke = commands.add_parser("revoke", help="revoke a key (refused everywhere within a minute)")
    revoke.add_argument("key_id")
    return root


def run(
    argv: Sequence[str] | None,
    *,
    stdin: TextIO = sys.stdin,
    admin: KeyAdmin | None = None,
    clients: AwsClients | None = None,
    apigateway: Callable[[], APIGatewayClient] | None = None,
    environ: dict[str, str] | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """The command, callable from any CLI: 0 on success, 1 on a refusal, 2 on bad usage."""
    args = parser().parse_args(argv)
    env = dict(os.environ) if environ is None else environ
    if admin is None:
        table = args.table or env.get("SETHUB_TABLE_NAME", "")
        if not table:
            print(f"{PROG}: the table is required (--table or SETHUB_TABLE_NAME)", file=err)
            return 2
        aws = clients or AwsClients()
        plan = args.usage_plan or env.get("SETHUB_USAGE_PLAN_ID", "")
        gateway = None
        if plan:
            import boto3  # noqa: PLC0415 - only the operator command talks to API Gateway

            client = apigateway() if apigateway is not None else boto3.client("apigateway")
            gateway = GatewayKeys(client, plan)
        admin = KeyAdmin(DynamoDBCredentialStore(aws, table), gateway=gateway)
    try:
        return _run(args, admin, out, err, stdin)
    except (ValueError, KeyNotFoundError, KeyExistsError, SethubError) as exc:
        print(f"{PROG}: {exc}", file=err)
        return 1


def _run(args: argparse.Namespace, admin: KeyAdmin, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    if args.command == "create":
        topics = _topics(args.topics) or ()
        value = stdin.readline().strip() if args.from_stdin else None
        if value is not None and len(value) < MIN_IMPORTED_CHARS:
            print(f"{PROG}: a key must have at least {MIN_IMPORTED_CHARS} characters", file=err)
            return 1
        key, record = admin.create(
            parse_role(args.role), topics=topics, name=args.name, issuer=args.issuer, value=value
        )
        print(describe(record), file=out)
        if value is None:
            print(f"key: {key}", file=out)
            print("Store the key now: it is not kept and cannot be shown again.", file=err)
        if record.gateway_key_id is None:
            print("(no usage plan given: the key is not an API Gateway key yet)", file=err)
        return 0
    if args.command == "list":
        for record in admin.list():
            print(describe(record), file=out)
        return 0
    if args.command == "scope":
        if args.topics is None and args.issuer is None:
            print(f"{PROG} scope: give --topics and/or --issuer", file=err)
            return 2
        print(describe(admin.scope(args.key_id, _topics(args.topics), issuer=args.issuer)), file=out)
        return 0
    print(describe(admin.revoke(args.key_id)), file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(argv)


__all__ = ["describe", "main", "parser", "run"]
