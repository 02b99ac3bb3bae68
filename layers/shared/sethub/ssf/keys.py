"""The RS256 keys that sign SSF SETs (CAEP interoperability profile 2.6: RSA, >= 2048 bits).

Whatever ``SETHUB_SIGNING_MODE`` topic subscribers get, SSF streams need RS256, so SSF
has a key ring of its own (``sethub.keyring``'s ``KeyRing``: newest key first, rotation
rules and all), one item in the hub table (``SIGNING``/``SSFKEY``). Its private keys are
RSA 2048, each wrapped under the stack's data key with an encryption context naming its
purpose (``ssf-signing-key``): the SSF function may only Encrypt under that context, and
only the dispatch function (the key policy's role path) decrypts, once per key and
container, to sign. The first key is made by the SSF function the first time one is
needed (its metadata, its JWKS or a stream create); a conditional put makes the first one win when two
containers race. ``sethub ssf signing-key rotate`` adds the next: published at once (in
the hub's one JWKS, ``/.well-known/jwks.json``, the metadata's ``jwks_uri``), signing
after the JWKS's max-age, the key it replaces published long enough for every SET it
signed to be verified (queued poll SETs live 14 days).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from threading import Lock
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from sethub import sets
from sethub.errors import ConfigurationError, UpstreamError

# cryptography and PyJWT are imported where a key is made, published or used: metadata,
# tokens and stream management (most of the SSF function's requests) never load them,
# and they are a third of the function's cold start.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient

    from sethub.keyring import KeyRing, RingKey

PURPOSE_KEY = "sethub:purpose"
PURPOSE = "ssf-signing-key"
KEY_BITS = 2048
KEY_SPEC = "RSA_2048"
ITEM_KEY = {"pk": {"S": "SIGNING"}, "sk": {"S": "SSFKEY"}}
REFRESH_SECONDS = 300
"""How often a warm dispatcher re-reads the ring (one GetItem) to pick up a rotation."""
ACTIVATE_SECONDS = 300
"""A rotated-in key signs after this: both JWKS routes are cached at most 300 s."""
PUBLISH_SECONDS = 16 * 24 * 3600
"""A replaced key stays published this long: a SET it signed may wait 14 days in a poll
queue, or be retried for about a day."""


def public_jwk(private: rsa.RSAPrivateKey) -> dict[str, str]:
    """The published JWK: RFC 7638 ``kid``, ``alg: RS256``, ``use: sig`` (no ``key_ops`` beside ``use``)."""
    from jwt.algorithms import RSAAlgorithm  # noqa: PLC0415 - see the imports

    from sethub.signing import thumbprint  # noqa: PLC0415 - it imports cryptography

    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    members = {name: jwk[name] for name in ("kty", "n", "e")}
    return {**members, "kid": thumbprint(members), "alg": "RS256", "use": "sig"}


def sign_rs256(private: rsa.RSAPrivateKey, kid: str, claims: Mapping[str, Any]) -> str:
    """The compact JWS of ``claims`` (header ``alg: RS256``, ``typ: secevent+jwt``, ``kid``)."""
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - see the imports
    from cryptography.hazmat.primitives.asymmetric import padding  # noqa: PLC0415

    signing_input = sets.signing_input(claims, alg="RS256", kid=kid)
    return sets.compact(signing_input, private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256()))


def _context(kid: str) -> dict[str, str]:
    return {PURPOSE_KEY: PURPOSE, "sethub:kid": kid}


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "error"))
    return type(exc).__name__


def _ring_from_item(item: Mapping[str, Any]) -> KeyRing:
    # The hub ring's item format (its pk and sk aside): one set of rules for both rings.
    from sethub.keyring import KeyRing, RingKey  # noqa: PLC0415 - see the imports
    from sethub.keyring import _ring_from_item as ring_from_item  # noqa: PLC0415

    if "keys" in item:
        return ring_from_item(item)
    # Before rotation there was one key: kid, jwk, wrapped (version 0, so saving it again is new).
    jwk = json.loads(item["jwk"]["S"])
    only = RingKey(
        kid=item["kid"]["S"],
        alg="RS256",
        spec=KEY_SPEC,
        jwk=jwk,
        created_at=0,
        not_before=0,
        wrapped=bytes(item["wrapped"]["B"]),
    )
    return KeyRing(keys=(only,), version=0)


def load_ring(dynamodb: DynamoDBClient, table_name: str) -> KeyRing:
    """The SSF key ring as stored (one GetItem; an empty ring when there is none yet)."""
    from sethub.keyring import KeyRing  # noqa: PLC0415 - see the imports

    try:
        item = dynamodb.get_item(TableName=table_name, Key=ITEM_KEY, ConsistentRead=True).get("Item")  # type: ignore[arg-type]
    except (ClientError, BotoCoreError) as exc:
        raise UpstreamError(f"could not read the SSF signing keys: {_code(exc)}") from exc
    return KeyRing() if item is None else _ring_from_item(item)


def published_jwks(dynamodb: DynamoDBClient, table_name: str, *, now: float) -> list[dict[str, str]]:
    """The SSF keys the hub's JWKS publishes beside its own (none before the first stream)."""
    return load_ring(dynamodb, table_name).jwks(now)


class SsfKeys:
    """The SSF key ring: the first key made on first need, re-read every ``refresh_seconds``,
    each private key unwrapped once per container."""

    def __init__(
        self,
        kms: KMSClient,
        dynamodb: DynamoDBClient,
        *,
        table_name: str,
        data_key_id: str,
        refresh_seconds: float = REFRESH_SECONDS,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._kms = kms
        self._db = dynamodb
        self._table = table_name
        self._data_key_id = data_key_id
        self._refresh = refresh_seconds
        self._now = now
        self._ring: KeyRing | None = None
        self._read_at = 0.0
        self._private: dict[str, rsa.RSAPrivateKey] = {}
        self._lock = Lock()
        self._exists = False

    def ensure(self) -> None:
        """Make sure the ring has a key (the SSF function, before metadata or a stream points to
        it): one GetItem of the item's key until one is found; cryptography is loaded only to
        make the first key."""
        if self._exists:
            return
        try:
            found = self._db.get_item(
                TableName=self._table, Key=ITEM_KEY, ProjectionExpression="pk", ConsistentRead=True
            ).get("Item")  # type: ignore[arg-type]
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"could not read the SSF signing keys: {_code(exc)}") from exc
        if found is None:
            self.key(create=True)
        self._exists = True

    def ring(self, *, fresh: bool = False) -> KeyRing:
        with self._lock:
            at = self._now()
            if fresh or self._ring is None or not self._ring.keys or at - self._read_at >= self._refresh:
                try:
                    self._ring = load_ring(self._db, self._table)
                    self._read_at = at
                except UpstreamError:
                    if self._ring is None or not self._ring.keys:
                        raise
            return self._ring

    def key(self, *, create: bool = False) -> RingKey:
        """The key that signs now; ``create``: make the first one when there is none (the SSF function)."""
        key = self.ring().signing_key(self._now())
        if key is None and create:
            with self._lock:
                self._ring = self._first_key()
                self._read_at = self._now()
            key = self._ring.signing_key(self._now())
        if key is None:
            raise ConfigurationError("there is no SSF signing key yet: it is made when a stream is created")
        return key

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        self.key(create=True)
        return {"keys": self.ring(fresh=True).jwks(self._now())}

    def sign(self, claims: Mapping[str, Any]) -> str:
        key = self.key()
        private = self._private.get(key.kid)
        if private is None:
            with self._lock:
                if key.kid not in self._private:
                    self._private[key.kid] = self._unwrap(key)
                private = self._private[key.kid]
        return sign_rs256(private, key.kid, claims)

    def rotate(
        self, *, activate_in: int = ACTIVATE_SECONDS, publish_seconds: int = PUBLISH_SECONDS
    ) -> tuple[RingKey, KeyRing]:
        """A new key: published now, signing ``activate_in`` seconds from now (the operator command)."""
        ring = load_ring(self._db, self._table)
        at = int(self._now())
        new = self._new_key(now=at, activate_in=activate_in if ring.keys else None)
        rotated = ring.rotated(new, now=at, publish_seconds=publish_seconds)
        self._save(rotated, previous=ring)
        with self._lock:
            self._ring, self._read_at = rotated, self._now()
        return new, rotated

    def _first_key(self) -> KeyRing:
        ring = load_ring(self._db, self._table)
        if ring.keys:
            return ring
        new = self._new_key(now=int(self._now()), activate_in=None)
        rotated = ring.rotated(new, now=int(self._now()), publish_seconds=PUBLISH_SECONDS)
        try:
            self._save(rotated, previous=ring)
        except RingChanged:
            return load_ring(self._db, self._table)  # another container made it first: theirs is the key
        return rotated

    def _new_key(self, *, now: int, activate_in: int | None) -> RingKey:
        """``activate_in`` None: the first key, which signs from the start (there is no cached
        JWKS to wait for, and another container's clock may be a little behind)."""
        if not self._data_key_id:
            raise ConfigurationError("SETHUB_DATA_KEY_ID is not set: the SSF signing key is wrapped under it")
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - see the imports
        from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

        from sethub.keyring import RingKey  # noqa: PLC0415

        private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        jwk = public_jwk(private)
        der = private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            wrapped = self._kms.encrypt(
                KeyId=self._data_key_id, Plaintext=der, EncryptionContext=_context(jwk["kid"])
            )["CiphertextBlob"]
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"KMS could not wrap the SSF signing key: {_code(exc)}") from exc
        return RingKey(
            kid=jwk["kid"],
            alg="RS256",
            spec=KEY_SPEC,
            jwk=jwk,
            created_at=now,
            not_before=0 if activate_in is None else now + activate_in,
            wrapped=wrapped,
        )

    def _save(self, ring: KeyRing, *, previous: KeyRing) -> None:
        """Store ``ring`` only if the stored one is still ``previous`` (its version)."""
        from sethub.keyring import _ring_to_item as ring_to_item  # noqa: PLC0415 - see the imports

        item = {**ring_to_item(ring), **ITEM_KEY}
        condition: dict[str, Any] = (
            # None yet, or the one key of before rotation (no version).
            {"ConditionExpression": "attribute_not_exists(#version)"}
            if previous.version == 0
            else {
                "ConditionExpression": "#version = :previous",
                "ExpressionAttributeValues": {":previous": {"N": str(previous.version)}},
            }
        )
        try:
            self._db.put_item(
                TableName=self._table,
                Item=item,
                ExpressionAttributeNames={"#version": "version"},
                **condition,
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise RingChanged("the SSF signing keys changed meanwhile: run the command again") from exc
            raise UpstreamError(f"could not store the SSF signing keys: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise UpstreamError(f"could not store the SSF signing keys: {_code(exc)}") from exc

    def _unwrap(self, key: RingKey) -> rsa.RSAPrivateKey:
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - see the imports
        from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

        if key.wrapped is None:
            raise ConfigurationError(f"SSF signing key {key.kid} is retired: it no longer signs")
        try:
            plaintext = self._kms.decrypt(
                CiphertextBlob=key.wrapped, EncryptionContext=_context(key.kid), KeyId=self._data_key_id
            )["Plaintext"]
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"KMS could not unwrap the SSF signing key: {_code(exc)}") from exc
        private = serialization.load_der_private_key(plaintext, password=None)
        if not isinstance(private, rsa.RSAPrivateKey) or public_jwk(private)["kid"] != key.kid:
            raise ConfigurationError("the SSF signing key does not match its published kid")
        return private


class RingChanged(UpstreamError):
    """Another container or rotation stored the SSF key ring first."""


__all__ = [
    "PURPOSE",
    "RingChanged",
    "SsfKeys",
    "load_ring",
    "public_jwk",
    "published_jwks",
    "sign_rs256",
]
