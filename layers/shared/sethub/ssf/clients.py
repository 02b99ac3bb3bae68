"""``python -m sethub.ssf.clients``: the operator command for SSF receivers (OAuth clients).

    python -m sethub.ssf.clients create CLIENT_ID [--scope "ssf.read ssf.manage"] [--name TEXT]
    python -m sethub.ssf.clients list
    python -m sethub.ssf.clients delete CLIENT_ID

``create`` prints the client secret once: only its SHA-256 is stored. Deleting a receiver
revokes its access tokens at once (every token check reads the receiver). The table comes
from ``--table`` or ``SETHUB_TABLE_NAME`` (the stack output ``TableName``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from sethub.clients import AwsClients
from sethub.errors import SethubError
from sethub.ssf.auth import SCOPES, client_record, new_secret
from sethub.ssf.store import SsfStore


def main(
    argv: Sequence[str] | None = None, *, clients: AwsClients | None = None, out: TextIO | None = None
) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="python -m sethub.ssf.clients", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", choices=["create", "list", "delete"])
    parser.add_argument("client_id", nargs="?", default="")
    parser.add_argument("--scope", default=" ".join(sorted(SCOPES)))
    parser.add_argument("--name", default="")
    parser.add_argument("--table", default=os.environ.get("SETHUB_TABLE_NAME", ""))
    args = parser.parse_args(argv)
    if args.command != "list" and not args.client_id:
        parser.error(f"{args.command} needs a CLIENT_ID")
    try:
        store = SsfStore((clients or AwsClients()).dynamodb, args.table)
        if args.command == "list":
            for record in store.list_clients():
                print(f"{record.client_id}\t{' '.join(sorted(record.scopes))}\t{record.name}", file=out)
            return 0
        if args.command == "delete":
            store.delete_client(args.client_id)
            print(f"deleted {args.client_id}: its access tokens no longer work", file=out)
            return 0
        secret = new_secret()
        record = client_record(
            args.client_id, secret, scopes=frozenset(args.scope.split()), name=args.name, now=int(time.time())
        )
        if not store.put_client(record, only_new=True):
            print(f"clients: {args.client_id} exists already (delete it first)", file=sys.stderr)
            return 1
        print(f"client_id     {record.client_id}\nclient_secret {secret}\n(shown once)", file=out)
        return 0
    except SethubError as exc:
        print(f"clients: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
