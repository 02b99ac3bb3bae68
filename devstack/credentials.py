"""The local stack's API keys: DESIGN.md's three roles, seeded into the hub table.

    SETHUB_LOCAL_API_KEY         admin       local-dev-key
    SETHUB_LOCAL_PUBLISHER_KEY   publisher   local-publisher-key
    SETHUB_LOCAL_SUBSCRIBER_KEY  subscriber  local-subscriber-key

Each may list several keys, comma-separated: different keys are different owners (two
subscriber keys cannot change each other's subscriptions). They are stored exactly as
the operator command stores deployed keys (hashed, ``sethub.credentials``), so the
functions check them as they check deployed keys. The local API Gateway admits exactly
the keys with a live record, as API Gateway admits the keys of its usage plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from devstack.provision import DEFAULT_API_KEY, Provisioned
from sethub.clients import AwsClients
from sethub.credentials.admin import KeyAdmin
from sethub.credentials.dynamodb import DynamoDBCredentialStore
from sethub.credentials.keys import key_hash, presentable
from sethub.credentials.principal import Role
from sethub.credentials.store import CredentialStore

TABLE = "HubTable"
LOCAL_KEY_ENV: dict[Role, tuple[str, str]] = {
    "admin": ("SETHUB_LOCAL_API_KEY", DEFAULT_API_KEY),
    "publisher": ("SETHUB_LOCAL_PUBLISHER_KEY", "local-publisher-key"),
    "subscriber": ("SETHUB_LOCAL_SUBSCRIBER_KEY", "local-subscriber-key"),
}


def local_keys(environ: Mapping[str, str], *, admin: str | None = None) -> dict[Role, tuple[str, ...]]:
    """Each role's local keys from the environment (``admin`` wins for the admin key)."""
    keys: dict[Role, tuple[str, ...]] = {}
    for role, (name, default) in LOCAL_KEY_ENV.items():
        value = admin if role == "admin" and admin else environ.get(name) or default
        keys[role] = tuple(part.strip() for part in value.split(",") if part.strip())
    return keys


@dataclass(frozen=True)
class LocalKeys:
    keys: dict[Role, tuple[str, ...]]
    store: CredentialStore

    def accepts(self, presented: str) -> bool:
        """What API Gateway's key check answers: a live key of this hub, read now (no cache)."""
        candidate = presentable(presented)
        if candidate is None:
            return False
        record = self.store.get(key_hash(candidate))
        return record is not None and record.active

    def banner_lines(self) -> list[str]:
        width = max(len(role) for role in self.keys)
        return [f"  {role:<{width}} key  {', '.join(values)}" for role, values in self.keys.items()]


def seed_local_keys(provisioned: Provisioned, environ: Mapping[str, str]) -> LocalKeys:
    """Store the local keys in the hub table (idempotent: a restarted stack finds them)."""
    dynamodb = provisioned.dynamodb()
    store = DynamoDBCredentialStore(AwsClients(dynamodb=dynamodb), provisioned.table_names[TABLE])
    admin = KeyAdmin(store)
    keys = local_keys(environ, admin=provisioned.api_key)
    for role, values in keys.items():
        for index, value in enumerate(values, start=1):
            admin.ensure(role, value, name=f"local {role} {index}")
    return LocalKeys(keys=keys, store=store)


__all__ = ["LOCAL_KEY_ENV", "LocalKeys", "local_keys", "seed_local_keys"]
