"""The local stack's SSF receivers (``SETHUB_LOCAL_SSF_CLIENTS``), seeded into the hub table.

``id:secret`` pairs, comma-separated; default ``local-ssf-receiver:local-ssf-secret``.
They are stored exactly as ``sethub ssf receivers create`` stores deployed
receivers (the secret hashed, scopes ``ssf.read ssf.manage``), so ``POST /oauth2/token``
checks them as it checks deployed ones.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from devstack.provision import Provisioned
from sethub.ssf.auth import DEFAULT_LOCAL_CLIENTS, LOCAL_CLIENTS_ENV, client_record, parse_clients
from sethub.ssf.store import SsfStore

TABLE = "HubTable"


def seed_ssf_clients(provisioned: Provisioned, environ: Mapping[str, str]) -> list[str]:
    """Store the local receivers (idempotent: a restarted stack rewrites the same records)."""
    dynamodb = provisioned.dynamodb()
    store = SsfStore(dynamodb, provisioned.table_names[TABLE])
    pairs = parse_clients(environ.get(LOCAL_CLIENTS_ENV) or DEFAULT_LOCAL_CLIENTS)
    for client_id, secret in pairs:
        store.put_client(client_record(client_id, secret, name="local receiver", now=int(time.time())))
    return [client_id for client_id, _ in pairs]


__all__ = ["seed_ssf_clients"]
