"""``sethub keys``: create, list, scope and revoke the hub's API keys.

A key is printed once, at creation; only its hash is stored. On a deployed stack every
key is also an API Gateway key in the stack's usage plan (output ``UsagePlanId``); the
local stack's gateway admits the keys in the table. A revoked key is refused everywhere
within a minute. Runs with the operator's AWS credentials, not with a hub key.
"""

from __future__ import annotations

import argparse
from typing import Any

from sethub.cli.context import CommandFailedError, Context
from sethub.cli.output import when
from sethub.cli.target import UsageError
from sethub.credentials.admin import KeyAdmin
from sethub.credentials.apigateway import GatewayKeys
from sethub.credentials.dynamodb import DynamoDBCredentialStore
from sethub.credentials.principal import ROLES, parse_role
from sethub.credentials.store import KeyExistsError, KeyRecord

COLUMNS = ["key_id", "role", "topics", "status", "created", "name", "issuer", "gateway_key"]
MIN_IMPORTED_CHARS = 20
"""API Gateway's minimum for an API key value; a key kept from elsewhere must be at least that."""


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    group = groups.add_parser("keys", help="API keys: create, list, scope, revoke", description=__doc__)
    group.add_argument("--usage-plan", help="API Gateway usage plan id (default: the stack's UsagePlanId)")
    commands = group.add_subparsers(dest="command", required=True, metavar="COMMAND")
    create = commands.add_parser("create", parents=[common], help="create a key and print it (once)")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--topics", help="publisher only: comma-separated topic patterns, * matches anything")
    create.add_argument("--name", default="", help="a label for listings (who holds the key)")
    create.add_argument("--issuer", help="publisher only: the SET iss pinned to this key")
    create.add_argument(
        "--from-stdin", action="store_true", help="take the key from standard input (to keep an existing key)"
    )
    create.set_defaults(run=create_key)
    commands.add_parser("list", parents=[common], help="every key (never the key itself)").set_defaults(
        run=list_keys
    )
    scope = commands.add_parser("scope", parents=[common], help="a publisher key's topic patterns or iss")
    scope.add_argument("key_id")
    scope.add_argument("--topics", help="comma-separated patterns; an empty string allows every topic")
    scope.add_argument("--issuer", help="the SET iss pinned to this key; an empty string unpins it")
    scope.set_defaults(run=scope_key)
    revoke = commands.add_parser("revoke", parents=[common], help="revoke a key")
    revoke.add_argument("key_id")
    revoke.set_defaults(run=revoke_key)


def row(record: KeyRecord) -> dict[str, Any]:
    return {
        "key_id": record.key_id,
        "role": record.role,
        "topics": list(record.topics) or ["*"],
        "status": "active" if record.active else f"revoked {when(record.revoked_at)}",
        "created": when(record.created_at),
        "name": record.name,
        "issuer": record.issuer,
        "gateway_key": record.gateway_key_id,
    }


def _admin(context: Context) -> KeyAdmin:
    plan = getattr(context.args, "usage_plan", None) or context.target.usage_plan_id
    gateway = GatewayKeys(context.clients.apigateway, plan) if plan else None
    return KeyAdmin(DynamoDBCredentialStore(context.clients, context.target.table()), gateway=gateway)


def _topics(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(part.strip() for part in value.split(",") if part.strip())


def create_key(context: Context) -> int:
    args = context.args
    value = context.stdin.readline().strip() if args.from_stdin else None
    if value is not None and len(value) < MIN_IMPORTED_CHARS:
        raise CommandFailedError(f"a key must have at least {MIN_IMPORTED_CHARS} characters")
    try:
        key, record = _admin(context).create(
            parse_role(args.role),
            topics=_topics(args.topics) or (),
            name=args.name,
            issuer=args.issuer,
            value=value,
        )
    except KeyExistsError as exc:
        raise CommandFailedError("that key exists already") from exc
    shown = row(record)
    if value is None:
        shown["key"] = key
        context.note("Store the key now: it is not kept and cannot be shown again.")
    if record.gateway_key_id is None and context.target.kind == "stack":
        context.note("(no usage plan: the key is not an API Gateway key yet, the gateway refuses it)")
    context.emit(shown)
    return 0


def list_keys(context: Context) -> int:
    context.emit([row(record) for record in _admin(context).list()], COLUMNS)
    return 0


def scope_key(context: Context) -> int:
    args = context.args
    if args.topics is None and args.issuer is None:
        raise UsageError("keys scope: give --topics and/or --issuer")
    context.emit(row(_admin(context).scope(args.key_id, _topics(args.topics), issuer=args.issuer)))
    return 0


def revoke_key(context: Context) -> int:
    context.emit(row(_admin(context).revoke(context.args.key_id)))
    return 0
