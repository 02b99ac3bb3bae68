"""API keys with roles: who may publish, subscribe and administer the hub.

    principal.py   who is calling and what its role allows (pure)
    keys.py        key generation, hashing and the key id (pure)
    store.py       the key record and the storage contract
    dynamodb.py    the HubTable adapter (the only module that talks to DynamoDB)
    apigateway.py  API Gateway keys in the stack's usage plan (per-key throttling)
    checker.py     the functions' check of a presented key, cached at most 60 s, and
                   what each operation requires
    admin.py       create, list, scope, revoke (the operator's ``sethub keys``)
    authorizer.py  the HTTP API authorizer's decision (``Ingress=http``)
    ratelimit.py   ``Ingress=http``: each key's rate limit and daily quota, counted by ingest

Only a SHA-256 hash of each key is stored; the key itself is shown once, when created.
"""

from sethub.credentials.checker import (
    KeyChecker,
    may_change,
    presented_key,
    require_events_allowed,
    require_owner,
    require_publisher,
    require_subscriber,
)
from sethub.credentials.principal import ROLES, Principal, Role, parse_role

__all__ = [
    "ROLES",
    "KeyChecker",
    "Principal",
    "Role",
    "may_change",
    "parse_role",
    "presented_key",
    "require_events_allowed",
    "require_owner",
    "require_publisher",
    "require_subscriber",
]
