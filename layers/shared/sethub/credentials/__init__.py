"""API keys with roles: who may publish, subscribe and administer the hub.

    principal.py   who is calling and what its role allows (pure)
    keys.py        key generation, hashing and the key id (pure)
    store.py       the storage contract and the key record
    dynamodb.py    the HubTable adapter (the only module that talks to DynamoDB)
    apigateway.py  API Gateway keys in the stack's usage plan (per-key throttling)
    checker.py     the per-container check of a presented key, cached at most 60 s
    command.py     the operator command (``python -m sethub.credentials``)

Only a SHA-256 hash of each key is stored; the key itself is shown once, when created.
"""

from sethub.credentials.principal import ROLES, Principal, Role, parse_role

__all__ = ["ROLES", "Principal", "Role", "parse_role"]
