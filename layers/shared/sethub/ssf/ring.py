"""The SSF key ring as stored: the hub ring's rules, plus which keys live in KMS.

The ring is ``sethub.keyring.KeyRing`` (newest key first, rotation and publication rules),
kept in one item of the hub table. In ``wrapped`` signing mode a key that may sign holds its
private half wrapped under the data key. In ``kms`` mode the deploy records the stack's SSF
KMS key in the ring (``sethub.ssf.keys.record_kms_key``): its public JWK, and in the item's
``kms_keys`` map (kid -> key ARN) the key that signs it with KMS ``Sign``. A KMS key leaves
that map when a newer key takes over, but stays published like any retired key, so the
JWKS is still one GetItem, never a KMS call.

Imported where a ring is read or changed only: ``sethub.keyring`` loads cryptography.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sethub.keyring import KeyRing, RingKey
from sethub.keyring import _ring_from_item as hub_ring_from_item
from sethub.keyring import _ring_to_item as hub_ring_to_item

KEY_SPEC = "RSA_2048"


@dataclass(frozen=True)
class SsfRing(KeyRing):
    """The SSF ring; ``kms_keys``: the keys that sign by KMS ``Sign`` (kid -> KMS key ARN)."""

    kms_keys: Mapping[str, str] = field(default_factory=dict)

    def signing_key(self, now: float) -> RingKey | None:
        """The newest key allowed to sign at ``now``: wrapped, or in KMS."""
        for key in self.keys:
            if key.not_before <= now and (key.wrapped is not None or key.kid in self.kms_keys):
                return key
        return None

    def kms_key_id(self, kid: str) -> str | None:
        return self.kms_keys.get(kid)

    def rotated(
        self, new: RingKey, *, now: int, publish_seconds: int, kms_key_id: str | None = None
    ) -> SsfRing:
        """The ring with ``new`` added (``kms_key_id``: it signs in KMS); a KMS key that no
        longer signs leaves ``kms_keys``, as a wrapped one loses its ciphertext."""
        others = KeyRing(keys=tuple(key for key in self.keys if key.kid != new.kid), version=self.version)
        base = others.rotated(new, now=now, publish_seconds=publish_seconds)
        ids = dict(self.kms_keys)
        if kms_key_id is not None:
            ids[new.kid] = kms_key_id
        return SsfRing(keys=base.keys, version=base.version, kms_keys=_still_signing(base.keys, ids, now))

    def without_kms_keys(self, *, now: int, publish_seconds: int) -> SsfRing:
        """Every KMS key retired at ``now`` (the stack left kms mode): published
        ``publish_seconds`` more, signing no more."""
        keys = tuple(
            replace(key, retired_at=now, publish_until=now + publish_seconds)
            if key.kid in self.kms_keys and key.retired_at is None
            else key
            for key in self.keys
        )
        return SsfRing(keys=keys, version=self.version + 1)


def _still_signing(keys: tuple[RingKey, ...], ids: Mapping[str, str], now: int) -> dict[str, str]:
    kept = {key.kid for key in keys if key.retired_at is None or key.retired_at > now}
    return {kid: arn for kid, arn in ids.items() if kid in kept}


def ring_from_item(item: Mapping[str, Any]) -> SsfRing:
    """The ring of the stored item (its pk and sk aside): the hub ring's format, plus ``kms_keys``."""
    kms_keys = {kid: value["S"] for kid, value in item.get("kms_keys", {}).get("M", {}).items()}
    if "keys" in item:
        ring = hub_ring_from_item(item)
        return SsfRing(keys=ring.keys, version=ring.version, kms_keys=kms_keys)
    # Before rotation there was one key: kid, jwk, wrapped (version 0, so saving it again is new).
    only = RingKey(
        kid=item["kid"]["S"],
        alg="RS256",
        spec=KEY_SPEC,
        jwk=json.loads(item["jwk"]["S"]),
        created_at=0,
        not_before=0,
        wrapped=bytes(item["wrapped"]["B"]),
    )
    return SsfRing(keys=(only,), version=0)


def ring_to_item(ring: KeyRing) -> dict[str, Any]:
    """The item's attributes but its key (pk, sk)."""
    item = {name: value for name, value in hub_ring_to_item(ring).items() if name not in ("pk", "sk")}
    if isinstance(ring, SsfRing) and ring.kms_keys:
        item["kms_keys"] = {"M": {kid: {"S": arn} for kid, arn in sorted(ring.kms_keys.items())}}
    return item


__all__ = ["SsfRing", "ring_from_item", "ring_to_item"]
