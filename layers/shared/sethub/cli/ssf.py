"""``sethub ssf``: SSF receivers (OAuth clients) and their streams.

``receivers create`` prints the client secret once: only its SHA-256 is stored.
Deleting a receiver revokes its access tokens at once (every token check reads it).
Streams are the receivers' own (they manage them over the SSF API); listed here with
their status and delivery method. ``signing-key rotate`` adds the next RS256 key of SSF
SETs (whatever the signing mode): published in the JWKS at once, signing after
``--activate-in`` seconds (default: the JWKS's max-age), the key it replaces published
``--publish-days`` more (default 16: a queued poll SET lives 14 days).
"""

from __future__ import annotations

import argparse
from typing import Any

from sethub.cli.context import CommandFailedError, Context
from sethub.cli.output import when
from sethub.cli.target import UsageError
from sethub.hygiene import callback_host
from sethub.ssf.auth import SCOPES, client_record, new_secret
from sethub.ssf.keys import ACTIVATE_SECONDS, PUBLISH_SECONDS, SsfKeys, load_ring
from sethub.ssf.store import SsfStore

RECEIVER_COLUMNS = ["client_id", "scopes", "name", "created"]
STREAM_COLUMNS = ["receiver", "stream_id", "status", "method", "endpoint_host", "events", "reason", "updated"]


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    group = groups.add_parser("ssf", help="SSF receivers and streams", description=__doc__)
    kinds = group.add_subparsers(dest="kind", required=True, metavar="receivers|streams|signing-key")
    receivers = kinds.add_parser("receivers", help="SSF receivers (OAuth clients)")
    commands = receivers.add_subparsers(dest="command", required=True, metavar="COMMAND")
    create = commands.add_parser("create", parents=[common], help="create a receiver; prints its secret once")
    create.add_argument("client_id")
    create.add_argument("--scope", default=" ".join(sorted(SCOPES)), help="space-separated scopes")
    create.add_argument("--name", default="", help="a label for listings")
    create.set_defaults(run=create_receiver)
    commands.add_parser("list", parents=[common], help="every receiver (never its secret)").set_defaults(
        run=list_receivers
    )
    delete = commands.add_parser(
        "delete", parents=[common], help="delete a receiver; its tokens stop working"
    )
    delete.add_argument("client_id")
    delete.set_defaults(run=delete_receiver)
    streams = kinds.add_parser("streams", help="the receivers' streams")
    stream_commands = streams.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = stream_commands.add_parser("list", parents=[common], help="streams with status and method")
    listing.add_argument("--receiver", help="only this receiver's streams")
    listing.add_argument(
        "--status", choices=["enabled", "paused", "disabled"], help="only streams in this status"
    )
    listing.set_defaults(run=list_streams)
    keys = kinds.add_parser("signing-key", help="the RS256 keys of SSF SETs: show, rotate")
    key_commands = keys.add_subparsers(dest="command", required=True, metavar="COMMAND")
    key_commands.add_parser(
        "show", parents=[common], help="which key signs, which are published"
    ).set_defaults(run=show_keys)
    rotation = key_commands.add_parser("rotate", parents=[common], help="a new SSF signing key")
    rotation.add_argument(
        "--activate-in", type=int, default=ACTIVATE_SECONDS, help="seconds before the new key signs"
    )
    rotation.add_argument(
        "--publish-days",
        type=float,
        default=PUBLISH_SECONDS / 86400,
        help="how long a replaced key stays in the JWKS",
    )
    rotation.set_defaults(run=rotate_key)


def _store(context: Context) -> SsfStore:
    table = context.target.table()
    return SsfStore(context.clients.dynamodb, table)


def create_receiver(context: Context) -> int:
    args = context.args
    secret = new_secret()
    record = client_record(
        args.client_id, secret, scopes=frozenset(args.scope.split()), name=args.name, now=int(context.now())
    )
    if not _store(context).put_client(record, only_new=True):
        raise CommandFailedError(f"receiver {args.client_id} exists already (delete it first)")
    context.note("Store the secret now: only its hash is kept.")
    context.emit({"client_id": record.client_id, "client_secret": secret, "scopes": sorted(record.scopes)})
    return 0


def list_receivers(context: Context) -> int:
    rows = [
        {
            "client_id": record.client_id,
            "scopes": sorted(record.scopes),
            "name": record.name,
            "created": when(record.created_at),
        }
        for record in _store(context).list_clients()
    ]
    context.emit(rows, RECEIVER_COLUMNS)
    return 0


def delete_receiver(context: Context) -> int:
    store = _store(context)
    if store.get_client(context.args.client_id) is None:
        raise CommandFailedError(f"no receiver {context.args.client_id}")
    store.delete_client(context.args.client_id)
    context.emit({"client_id": context.args.client_id, "deleted": True})
    return 0


def list_streams(context: Context) -> int:
    store = _store(context)
    receivers = (
        [context.args.receiver] if context.args.receiver else [r.client_id for r in store.list_clients()]
    )
    rows = []
    for receiver in receivers:
        for stream in store.list_streams(receiver):
            if context.args.status and stream.status != context.args.status:
                continue
            rows.append(
                {
                    "receiver": receiver,
                    "stream_id": stream.stream_id,
                    "status": stream.status,
                    "method": "poll" if stream.method.endswith("8936") else "push",
                    # The host only: a push URL may carry a token.
                    "endpoint_host": callback_host(stream.endpoint_url),
                    "events": len(stream.events_delivered),
                    "reason": stream.reason,
                    "updated": when(stream.updated_at or stream.created_at),
                }
            )
    context.emit(rows, STREAM_COLUMNS)
    return 0


def _key_rows(context: Context) -> list[dict[str, Any]]:
    from sethub.cli.signing import rows  # noqa: PLC0415 - the hub ring's listing, same columns

    return rows(load_ring(context.clients.dynamodb, context.target.table()), context.now())


def show_keys(context: Context) -> int:
    from sethub.cli.signing import COLUMNS  # noqa: PLC0415

    context.emit(_key_rows(context), COLUMNS)
    return 0


def rotate_key(context: Context) -> int:
    from sethub.cli.signing import COLUMNS  # noqa: PLC0415

    target = context.target
    if not target.data_key_id:
        raise UsageError("no data key: pass --stack NAME, --endpoint URL, or set SETHUB_DATA_KEY_ID")
    keys = SsfKeys(
        context.clients.kms,
        context.clients.dynamodb,
        table_name=target.table(),
        data_key_id=target.data_key_id,
        now=context.now,
    )
    key, _ = keys.rotate(
        activate_in=context.args.activate_in, publish_seconds=int(context.args.publish_days * 86400)
    )
    context.note(f"new SSF signing key {key.kid} (RS256): published now, signs from {when(key.not_before)}")
    context.emit(_key_rows(context), COLUMNS)
    return 0
