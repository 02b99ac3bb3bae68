"""``sethub ssf``: SSF receivers (OAuth clients) and their streams.

``receivers create`` prints the client secret once: only its SHA-256 is stored.
Deleting a receiver revokes its access tokens at once (every token check reads it).
Streams are the receivers' own (they manage them over the SSF API); listed here with
their status and delivery method.
"""

from __future__ import annotations

import argparse
from typing import Any

from sethub.cli.context import CommandFailedError, Context
from sethub.cli.output import when
from sethub.hygiene import callback_host
from sethub.ssf.auth import SCOPES, client_record, new_secret
from sethub.ssf.store import SsfStore

RECEIVER_COLUMNS = ["client_id", "scopes", "name", "created"]
STREAM_COLUMNS = ["receiver", "stream_id", "status", "method", "endpoint_host", "events", "reason", "updated"]


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    group = groups.add_parser("ssf", help="SSF receivers and streams", description=__doc__)
    kinds = group.add_subparsers(dest="kind", required=True, metavar="receivers|streams")
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
