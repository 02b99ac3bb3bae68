"""Wrapped signing keys (``SETHUB_SIGNING_MODE=wrapped``, the default) and the signer for each mode.

The SET signing keys are ordinary EC P-256 (ES256) or RSA (RS256) keys, generated here and
stored in the hub table as one item, the key ring::

    SIGNING  KEYRING   version, keys: [{kid, alg, spec, jwk, created_at, not_before,
                                        retired_at, publish_until, wrapped}]

``wrapped`` is the PKCS#8 private key encrypted under the stack's KMS data key with an
encryption context naming its purpose (IAM grants Decrypt on that context only, and the
key policy lets only the dispatch role decrypt), so the private key never exists in
plaintext outside a function's memory. The dispatcher decrypts it once per container and
signs in process: no AWS call per signature.

Rotation adds a key that is published at once and signs from ``not_before`` (by default
after the JWKS's ``max-age``, so receivers that cache the JWKS see it before it signs);
the key it replaces keeps being published until ``publish_until`` (retried and replayed
deliveries carry SETs it signed), and its ciphertext is dropped once it can no longer
sign. The deploy creates the first key (the template's custom resource runs
``ensure_ring``; the local stack runs the same at provision time); ``sethub
signing-keys rotate`` makes the next one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from threading import Lock
from typing import TYPE_CHECKING, Any, Protocol, cast

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.utils import der_to_raw_signature

from sethub import sets
from sethub.errors import ConfigurationError, UpstreamError, aws_error_code
from sethub.signing import KmsSigner, thumbprint

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient

    from sethub.clients import AwsClients
    from sethub.settings import Settings

# The encryption context of a wrapped key: IAM conditions name PURPOSE_KEY (template.yaml).
PURPOSE_KEY = "sethub:purpose"
PURPOSE = "set-signing-key"
KID_KEY = "sethub:kid"

RING_PARTITION = "SIGNING"
RING_SORT_KEY = "KEYRING"

KEY_SPECS: Mapping[str, sets.Alg] = {
    "ECC_NIST_P256": "ES256",
    "RSA_2048": "RS256",
    "RSA_3072": "RS256",
    "RSA_4096": "RS256",
}
DEFAULT_KEY_SPEC = "ECC_NIST_P256"

JWKS_MAX_AGE_SECONDS = 300
"""The JWKS's ``Cache-Control: max-age`` (websub): how long a receiver may hold an old copy."""
DEFAULT_ACTIVATE_SECONDS = JWKS_MAX_AGE_SECONDS
"""A rotated-in key signs only after every cached JWKS has had time to refresh."""
DEFAULT_PUBLISH_SECONDS = 16 * 24 * 3600
"""How long a replaced key stays in the JWKS: a SET it signed can be retried for about a day,
wait 14 days in the dead-letter queue and be replayed for another day."""
REFRESH_SECONDS = 300
"""How often a warm dispatcher re-reads the ring (one GetItem) to pick up a rotation."""

Clock = Callable[[], float]


def wrap_context(kid: str) -> dict[str, str]:
    """The KMS encryption context of a wrapped key: its purpose (IAM's condition) and its kid
    (so a ciphertext copied onto another ring entry does not decrypt)."""
    return {PURPOSE_KEY: PURPOSE, KID_KEY: kid}


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def public_jwk(private_key: PrivateKey) -> tuple[sets.Alg, dict[str, str]]:
    """The published JWK of ``private_key``'s public half: members, ``kid``, ``alg``, ``use``."""
    public = private_key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        alg: sets.Alg = "ES256"
        jwk = json.loads(ECAlgorithm.to_jwk(public))
    else:
        alg = "RS256"
        jwk = json.loads(RSAAlgorithm.to_jwk(public))
    return alg, {**jwk, "kid": thumbprint(jwk), "alg": alg, "use": "sig"}


def generate_private_key(spec: str) -> PrivateKey:
    if spec == "ECC_NIST_P256":
        return ec.generate_private_key(ec.SECP256R1())
    if spec in KEY_SPECS:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(spec.removeprefix("RSA_")))
    raise ConfigurationError(f"signing key spec must be one of {', '.join(KEY_SPECS)}, not {spec!r}")


def sign_with(private_key: PrivateKey, alg: sets.Alg, kid: str, claims: Mapping[str, Any]) -> str:
    """The compact JWS of ``claims`` signed in process (header ``alg``, ``typ``, ``kid``)."""
    signing_input = sets.signing_input(claims, alg=alg, kid=kid)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        # cryptography gives DER; JOSE wants the raw r||s (RFC 7518 3.4).
        der = private_key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        signature = der_to_raw_signature(der, private_key.curve)
    else:
        signature = private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return sets.compact(signing_input, signature)


# ---------------------------------------------------------------------------- the ring


@dataclass(frozen=True)
class RingKey:
    """One key of the ring: its public half always, its wrapped private half while it may sign."""

    kid: str
    alg: sets.Alg
    spec: str
    jwk: Mapping[str, str]
    created_at: int
    not_before: int
    """Signs from this time (until a newer key's ``not_before``)."""
    retired_at: int | None = None
    """When a newer key took over signing."""
    publish_until: int | None = None
    """Dropped from the JWKS after this time (set once retired)."""
    wrapped: bytes | None = None

    def published(self, now: float) -> bool:
        return self.publish_until is None or now < self.publish_until


@dataclass(frozen=True)
class KeyRing:
    """The ring as stored: newest key first; ``version`` guards concurrent rotations."""

    keys: tuple[RingKey, ...] = ()
    version: int = 0

    def signing_key(self, now: float) -> RingKey | None:
        """The newest key allowed to sign at ``now`` (and still holding its private half)."""
        for key in self.keys:
            if key.not_before <= now and key.wrapped is not None:
                return key
        return None

    def published(self, now: float) -> list[RingKey]:
        return [key for key in self.keys if key.published(now)]

    def jwks(self, now: float) -> list[dict[str, str]]:
        return [dict(key.jwk) for key in self.published(now)]

    def rotated(self, new: RingKey, *, now: int, publish_seconds: int) -> KeyRing:
        """The ring with ``new`` added: keys it replaces are retired (published for
        ``publish_seconds`` more), a key that can no longer sign loses its ciphertext, and a
        key no longer published leaves the ring."""
        keys = sorted((new, *self.keys), key=lambda key: (key.not_before, key.created_at), reverse=True)
        result: list[RingKey] = []
        newer: RingKey | None = None
        for stored in keys:
            key = stored
            if newer is not None and key.retired_at is None:
                retired_at = max(newer.not_before, key.not_before)
                key = replace(key, retired_at=retired_at, publish_until=retired_at + publish_seconds)
            if key.retired_at is not None and key.retired_at <= now:
                key = replace(key, wrapped=None)
            if key.published(now):
                result.append(key)
            newer = key
        return KeyRing(keys=tuple(result), version=self.version + 1)


def new_key(kms: KMSClient, data_key_id: str, spec: str, *, now: int, activate_in: int = 0) -> RingKey:
    """A fresh private key, encrypted under ``data_key_id``: only its ciphertext leaves here."""
    if not data_key_id:
        raise ConfigurationError("SETHUB_DATA_KEY_ID is not set: the signing key is wrapped under it")
    private_key = generate_private_key(spec)
    alg, jwk = public_jwk(private_key)
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        wrapped = kms.encrypt(KeyId=data_key_id, Plaintext=der, EncryptionContext=wrap_context(jwk["kid"]))
    except (ClientError, BotoCoreError) as exc:
        raise UpstreamError(f"KMS could not wrap the new signing key: {aws_error_code(exc)}") from exc
    return RingKey(
        kid=jwk["kid"],
        alg=alg,
        spec=spec,
        jwk=jwk,
        created_at=now,
        not_before=now + activate_in,
        wrapped=wrapped["CiphertextBlob"],
    )


def unwrap(kms: KMSClient, data_key_id: str, key: RingKey) -> PrivateKey:
    """``key``'s private half (one KMS Decrypt), checked against its published kid."""
    if key.wrapped is None:
        raise ConfigurationError(f"signing key {key.kid} is retired: it no longer signs")
    try:
        if data_key_id:
            # Naming the key makes KMS refuse a ciphertext made under any other key.
            result = kms.decrypt(
                CiphertextBlob=key.wrapped, EncryptionContext=wrap_context(key.kid), KeyId=data_key_id
            )
        else:
            result = kms.decrypt(CiphertextBlob=key.wrapped, EncryptionContext=wrap_context(key.kid))
    except (ClientError, BotoCoreError) as exc:
        raise UpstreamError(f"KMS could not unwrap the signing key: {aws_error_code(exc)}") from exc
    private_key = serialization.load_der_private_key(result["Plaintext"], password=None)
    if not isinstance(private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ConfigurationError(f"signing key {key.kid} is neither EC nor RSA")
    if public_jwk(private_key)[1]["kid"] != key.kid:
        raise ConfigurationError(f"signing key {key.kid}: the private key does not match its kid")
    return private_key


# ---------------------------------------------------------------------------- storage


class RingStore:
    """The ring's one item in the hub table: GetItem to read, a versioned PutItem to change."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        if not table_name:
            raise ConfigurationError("SETHUB_TABLE_NAME is not set")
        self._dynamodb = dynamodb
        self._table = table_name

    def load(self, *, consistent: bool = False) -> KeyRing:
        try:
            response = self._dynamodb.get_item(
                TableName=self._table,
                Key={"pk": {"S": RING_PARTITION}, "sk": {"S": RING_SORT_KEY}},
                ConsistentRead=consistent,
            )
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"could not read the signing key ring: {aws_error_code(exc)}") from exc
        item = response.get("Item")
        return KeyRing() if item is None else _ring_from_item(item)

    def save(self, ring: KeyRing) -> None:
        """Store ``ring`` (version N+1) only if the stored ring is still version N."""
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if ring.version == 1
            else {
                "ConditionExpression": "#version = :previous",
                "ExpressionAttributeNames": {"#version": "version"},
                "ExpressionAttributeValues": {":previous": {"N": str(ring.version - 1)}},
            }
        )
        try:
            self._dynamodb.put_item(TableName=self._table, Item=_ring_to_item(ring), **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise RingChangedError(
                    "the signing key ring changed meanwhile: run the command again"
                ) from exc
            raise UpstreamError(f"could not store the signing key ring: {aws_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise UpstreamError(f"could not store the signing key ring: {aws_error_code(exc)}") from exc


class RingChangedError(UpstreamError):
    """Another rotation stored the ring first."""


def _ring_to_item(ring: KeyRing) -> dict[str, Any]:
    def entry(key: RingKey) -> dict[str, Any]:
        member: dict[str, Any] = {
            "kid": {"S": key.kid},
            "alg": {"S": key.alg},
            "spec": {"S": key.spec},
            "jwk": {"S": json.dumps(dict(key.jwk), sort_keys=True)},
            "created_at": {"N": str(key.created_at)},
            "not_before": {"N": str(key.not_before)},
        }
        if key.retired_at is not None:
            member["retired_at"] = {"N": str(key.retired_at)}
        if key.publish_until is not None:
            member["publish_until"] = {"N": str(key.publish_until)}
        if key.wrapped is not None:
            member["wrapped"] = {"B": key.wrapped}
        return {"M": member}

    return {
        "pk": {"S": RING_PARTITION},
        "sk": {"S": RING_SORT_KEY},
        "version": {"N": str(ring.version)},
        "keys": {"L": [entry(key) for key in ring.keys]},
    }


def _ring_from_item(item: Mapping[str, Any]) -> KeyRing:
    def number(member: Mapping[str, Any], name: str) -> int | None:
        return int(member[name]["N"]) if name in member else None

    keys = []
    for entry in item.get("keys", {}).get("L", []):
        member = entry["M"]
        alg = member["alg"]["S"]
        if alg not in ("ES256", "RS256"):
            raise ConfigurationError(f"signing key ring: unknown alg {alg!r}")
        keys.append(
            RingKey(
                kid=member["kid"]["S"],
                alg=cast("sets.Alg", alg),
                spec=member["spec"]["S"],
                jwk=json.loads(member["jwk"]["S"]),
                created_at=int(member["created_at"]["N"]),
                not_before=int(member["not_before"]["N"]),
                retired_at=number(member, "retired_at"),
                publish_until=number(member, "publish_until"),
                wrapped=bytes(member["wrapped"]["B"]) if "wrapped" in member else None,
            )
        )
    return KeyRing(keys=tuple(keys), version=int(item["version"]["N"]))


# ---------------------------------------------------------------------------- operations


def rotate(
    kms: KMSClient,
    dynamodb: DynamoDBClient,
    *,
    table_name: str,
    data_key_id: str,
    spec: str = DEFAULT_KEY_SPEC,
    activate_in: int = DEFAULT_ACTIVATE_SECONDS,
    publish_seconds: int = DEFAULT_PUBLISH_SECONDS,
    now: Clock = time.time,
) -> tuple[RingKey, KeyRing]:
    """Add a new key to the ring (signing ``activate_in`` seconds from now): the new key, the ring."""
    if spec not in KEY_SPECS:
        raise ConfigurationError(f"signing key spec must be one of {', '.join(KEY_SPECS)}, not {spec!r}")
    store = RingStore(dynamodb, table_name)
    ring = store.load(consistent=True)
    at = int(now())
    # The first key has no cached JWKS to wait for.
    key = new_key(kms, data_key_id, spec, now=at, activate_in=activate_in if ring.keys else 0)
    rotated = ring.rotated(key, now=at, publish_seconds=publish_seconds)
    store.save(rotated)
    return key, rotated


def ensure_ring(
    kms: KMSClient,
    dynamodb: DynamoDBClient,
    *,
    table_name: str,
    data_key_id: str,
    spec: str = DEFAULT_KEY_SPEC,
    now: Clock = time.time,
) -> KeyRing:
    """What a deploy does: a ring whose newest key has ``spec``, created (or rotated to that
    spec at once) when it has none; an existing matching ring is left alone."""
    ring = RingStore(dynamodb, table_name).load(consistent=True)
    newest = ring.keys[0] if ring.keys else None
    if newest is not None and newest.spec == spec and newest.wrapped is not None:
        return ring
    return rotate(
        kms, dynamodb, table_name=table_name, data_key_id=data_key_id, spec=spec, activate_in=0, now=now
    )[1]


# ---------------------------------------------------------------------------- signers


class Signer(Protocol):
    def sign(self, claims: Mapping[str, Any]) -> str: ...

    def jwks(self) -> dict[str, list[dict[str, str]]]: ...


@dataclass
class _Cached:
    ring: KeyRing
    read_at: float


class WrappedSigner:
    """Signs with the ring's current key in process; one Decrypt per key per container.

    The ring is re-read every ``refresh_seconds`` (``0``: on every call, which is what the
    JWKS endpoint wants); when the read fails, the ring already held keeps signing.
    ``extra_jwks`` adds KMS keys still published (a hub that moved from kms to wrapped).
    """

    def __init__(
        self,
        kms: KMSClient,
        dynamodb: DynamoDBClient,
        *,
        table_name: str,
        data_key_id: str,
        refresh_seconds: float = REFRESH_SECONDS,
        now: Clock = time.time,
        extra_jwks: Callable[[], Sequence[Mapping[str, str]]] | None = None,
    ) -> None:
        self._kms = kms
        self._store = RingStore(dynamodb, table_name)
        self._data_key_id = data_key_id
        self._refresh = refresh_seconds
        self._now = now
        self._extra = extra_jwks
        self._cached: _Cached | None = None
        self._private: dict[str, PrivateKey] = {}
        self._lock = Lock()

    def ring(self) -> KeyRing:
        with self._lock:
            at = self._now()
            cached = self._cached
            if cached is not None and at - cached.read_at < self._refresh:
                return cached.ring
            try:
                ring = self._store.load()
            except UpstreamError:
                if cached is None:
                    raise
                return cached.ring
            self._cached = _Cached(ring=ring, read_at=at)
            return ring

    def signing_key(self) -> RingKey:
        key = self.ring().signing_key(self._now())
        if key is None:
            raise ConfigurationError(
                "no signing key in the key ring: the deploy creates one (sethub signing-keys rotate)"
            )
        return key

    def sign(self, claims: Mapping[str, Any]) -> str:
        key = self.signing_key()
        private_key = self._private.get(key.kid)
        if private_key is None:
            with self._lock:
                if key.kid not in self._private:
                    self._private[key.kid] = unwrap(self._kms, self._data_key_id, key)
                private_key = self._private[key.kid]
        return sign_with(private_key, key.alg, key.kid, claims)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        keys = self.ring().jwks(self._now())
        if self._extra is not None:
            seen = {key["kid"] for key in keys}
            keys += [dict(key) for key in self._extra() if key["kid"] not in seen]
        return {"keys": keys}


def signer_for(
    clients: AwsClients,
    settings: Settings,
    *,
    refresh_seconds: float = REFRESH_SECONDS,
    now: Clock = time.time,
) -> Signer:
    """The signer of ``settings.signing_mode``: wrapped (the ring) or kms (KMS Sign per SET).

    In wrapped mode, KMS keys listed in SETHUB_SIGNING_KEY_IDS are still published (keys
    retired when the hub moved from kms to wrapped); they never sign.
    """
    if settings.signing_mode == "kms":
        return KmsSigner(clients.kms, settings.signing_key_ids)
    extra: Callable[[], Sequence[Mapping[str, str]]] | None = None
    if settings.signing_key_ids:
        retired = KmsSigner(clients.kms, settings.signing_key_ids)

        def extra() -> Sequence[Mapping[str, str]]:
            return retired.jwks()["keys"]

    return WrappedSigner(
        clients.kms,
        clients.dynamodb,
        table_name=settings.table_name,
        data_key_id=settings.data_key_id,
        refresh_seconds=refresh_seconds,
        now=now,
        extra_jwks=extra,
    )


__all__ = [
    "PURPOSE",
    "PURPOSE_KEY",
    "KeyRing",
    "RingChangedError",
    "RingKey",
    "RingStore",
    "Signer",
    "WrappedSigner",
    "ensure_ring",
    "rotate",
    "sign_with",
    "signer_for",
    "thumbprint",
    "unwrap",
    "wrap_context",
]
