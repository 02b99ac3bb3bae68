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

In ``kms`` signing mode the private key never leaves KMS: the template creates an RSA_2048
KMS key for SSF SETs (``SsfSigningKey``, slot ``SigningKeySlot`` as the hub's key), and its
deploy-time custom resource records it in the ring (``record_kms_key``: its public JWK, and
the key ARN that signs it). Every SSF SET is then one KMS ``Sign`` (``sign_rs256_kms``), made
once per event and stream and shared by its retries. Flipping ``SigningKeySlot`` (``sethub
signing-keys rotate``) creates the next KMS key, and the custom resource records it; the key
it replaces stays published ``PUBLISH_SECONDS``, from the ring, like a wrapped key.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from threading import Lock
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from sethub import sets
from sethub.errors import ConfigurationError, UpstreamError, aws_error_code

# cryptography and PyJWT are imported where a key is made, published or used: metadata,
# tokens and stream management (most of the SSF function's requests) never load them,
# and they are a third of the function's cold start.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient

    from sethub.keyring import RingKey
    from sethub.ssf.ring import SsfRing

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
KMS_RAW_LIMIT = 4096
"""KMS signs at most 4096 bytes as RAW; a longer signing input is sent as its SHA-256 digest."""
KMS_ALGORITHM: Final = "RSASSA_PKCS1_V1_5_SHA_256"
"""RS256 (RFC 7518 3.3)."""


def public_jwk(private: rsa.RSAPrivateKey) -> dict[str, str]:
    """The published JWK: RFC 7638 ``kid``, ``alg: RS256``, ``use: sig`` (no ``key_ops`` beside ``use``)."""
    from jwt.algorithms import RSAAlgorithm  # noqa: PLC0415 - see the imports

    return _published(json.loads(RSAAlgorithm.to_jwk(private.public_key())))


def _published(jwk: Mapping[str, str]) -> dict[str, str]:
    from sethub.signing import thumbprint  # noqa: PLC0415 - it imports cryptography

    members = {name: jwk[name] for name in ("kty", "n", "e")}
    return {**members, "kid": thumbprint(members), "alg": "RS256", "use": "sig"}


def sign_rs256(private: rsa.RSAPrivateKey, kid: str, claims: Mapping[str, Any]) -> str:
    """The compact JWS of ``claims`` (header ``alg: RS256``, ``typ: secevent+jwt``, ``kid``)."""
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - see the imports
    from cryptography.hazmat.primitives.asymmetric import padding  # noqa: PLC0415

    signing_input = sets.signing_input(claims, alg="RS256", kid=kid)
    return sets.compact(signing_input, private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256()))


def sign_rs256_kms(kms: KMSClient, key_id: str, kid: str, claims: Mapping[str, Any]) -> str:
    """The compact JWS of ``claims`` signed by KMS ``Sign`` with ``key_id`` (one request)."""
    signing_input = sets.signing_input(claims, alg="RS256", kid=kid)
    if len(signing_input) <= KMS_RAW_LIMIT:
        message, message_type = signing_input, "RAW"
    else:
        message, message_type = hashlib.sha256(signing_input).digest(), "DIGEST"
    try:
        signature = kms.sign(
            KeyId=key_id,
            Message=message,
            MessageType=message_type,  # type: ignore[arg-type]
            SigningAlgorithm=KMS_ALGORITHM,
        )["Signature"]
    except (ClientError, BotoCoreError) as exc:
        raise UpstreamError(f"KMS could not sign the SSF SET: {aws_error_code(exc)}") from exc
    return sets.compact(signing_input, signature)


def _context(kid: str) -> dict[str, str]:
    return {PURPOSE_KEY: PURPOSE, "sethub:kid": kid}


def load_ring(dynamodb: DynamoDBClient, table_name: str) -> SsfRing:
    """The SSF key ring as stored (one GetItem; an empty ring when there is none yet)."""
    from sethub.ssf.ring import SsfRing, ring_from_item  # noqa: PLC0415 - see the imports

    try:
        item = dynamodb.get_item(TableName=table_name, Key=ITEM_KEY, ConsistentRead=True).get("Item")  # type: ignore[arg-type]
    except (ClientError, BotoCoreError) as exc:
        raise UpstreamError(f"could not read the SSF signing keys: {aws_error_code(exc)}") from exc
    return SsfRing() if item is None else ring_from_item(item)


def _has_signer(item: Mapping[str, Any]) -> bool:
    """Whether the stored ring's newest key can sign (wrapped, or in KMS), read from the item
    itself: cryptography stays unloaded on the SSF function's common path."""
    if "keys" not in item:
        return "wrapped" in item  # the one-key item of before rotation
    keys = item["keys"].get("L", [])
    if not keys:
        return False
    newest = keys[0]["M"]
    return "wrapped" in newest or newest["kid"]["S"] in item.get("kms_keys", {}).get("M", {})


def published_jwks(dynamodb: DynamoDBClient, table_name: str, *, now: float) -> list[dict[str, str]]:
    """The SSF keys the hub's JWKS publishes beside its own (none before the first stream)."""
    return load_ring(dynamodb, table_name).jwks(now)


class SsfKeys:
    """The SSF key ring: the first key made on first need, re-read every ``refresh_seconds``,
    each wrapped private key unwrapped once per container, a KMS key used by ``Sign``."""

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
        self._ring: SsfRing | None = None
        self._read_at = 0.0
        self._private: dict[str, rsa.RSAPrivateKey] = {}
        self._lock = Lock()
        self._exists = False

    def ensure(self) -> None:
        """Make sure the ring has a key that signs (the SSF function, before metadata or a
        stream points to it): one GetItem until one is found; cryptography is loaded only to
        make a key. In kms mode the deploy recorded the KMS key: nothing is made here."""
        if self._exists:
            return
        try:
            found = self._db.get_item(TableName=self._table, Key=ITEM_KEY, ConsistentRead=True).get("Item")  # type: ignore[arg-type]
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"could not read the SSF signing keys: {aws_error_code(exc)}") from exc
        if found is None or not _has_signer(found):
            self.key(create=True)
        self._exists = True

    def ring(self, *, fresh: bool = False) -> SsfRing:
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
        """The key that signs now; ``create``: make one when none signs (the SSF function)."""
        return self._signing(create=create)[1]

    def _signing(self, *, create: bool = False) -> tuple[SsfRing, RingKey]:
        ring = self.ring()
        key = ring.signing_key(self._now())
        if key is None and create:
            with self._lock:
                self._ring = ring = self._first_key()
                self._read_at = self._now()
            key = ring.signing_key(self._now())
        if key is None:
            raise ConfigurationError("there is no SSF signing key yet: it is made when a stream is created")
        return ring, key

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        self.key(create=True)
        return {"keys": self.ring(fresh=True).jwks(self._now())}

    def sign(self, claims: Mapping[str, Any]) -> str:
        ring, key = self._signing()
        key_id = ring.kms_key_id(key.kid)
        if key_id is not None:
            # kms mode: one Sign per SET; the private key never leaves KMS.
            return sign_rs256_kms(self._kms, key_id, key.kid, claims)
        private = self._private.get(key.kid)
        if private is None:
            with self._lock:
                if key.kid not in self._private:
                    self._private[key.kid] = self._unwrap(key)
                private = self._private[key.kid]
        return sign_rs256(private, key.kid, claims)

    def rotate(
        self, *, activate_in: int = ACTIVATE_SECONDS, publish_seconds: int = PUBLISH_SECONDS
    ) -> tuple[RingKey, SsfRing]:
        """A new key: published now, signing ``activate_in`` seconds from now (the operator command)."""
        ring = load_ring(self._db, self._table)
        at = int(self._now())
        if ring.kms_keys:
            # A wrapped key would take over from KMS Sign and put a private key in a function's memory.
            raise ConfigurationError(
                "the SSF signing key is a KMS key (SigningMode kms): rotate it with the hub's, "
                "sethub signing-keys rotate --stack NAME"
            )
        signs_from = at + activate_in if ring.signing_key(at) else _at_once(ring)
        new = self._new_key(now=at, not_before=signs_from)
        rotated = ring.rotated(new, now=at, publish_seconds=publish_seconds)
        _save(self._db, self._table, rotated, previous=ring)
        with self._lock:
            self._ring, self._read_at = rotated, self._now()
        return new, rotated

    def _first_key(self) -> SsfRing:
        """A wrapped key that signs at once, when none signs (none yet, or the stack left kms mode)."""
        ring = load_ring(self._db, self._table)
        at = int(self._now())
        if ring.signing_key(at) is not None:
            return ring
        new = self._new_key(now=at, not_before=_at_once(ring))
        rotated = ring.rotated(new, now=at, publish_seconds=PUBLISH_SECONDS)
        try:
            _save(self._db, self._table, rotated, previous=ring)
        except RingChanged:
            return load_ring(self._db, self._table)  # another container made it first: theirs is the key
        return rotated

    def _new_key(self, *, now: int, not_before: int) -> RingKey:
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
            raise UpstreamError(f"KMS could not wrap the SSF signing key: {aws_error_code(exc)}") from exc
        return RingKey(
            kid=jwk["kid"],
            alg="RS256",
            spec=KEY_SPEC,
            jwk=jwk,
            created_at=now,
            not_before=not_before,
            wrapped=wrapped,
        )

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
            raise UpstreamError(f"KMS could not unwrap the SSF signing key: {aws_error_code(exc)}") from exc
        private = serialization.load_der_private_key(plaintext, password=None)
        if not isinstance(private, rsa.RSAPrivateKey) or public_jwk(private)["kid"] != key.kid:
            raise ConfigurationError("the SSF signing key does not match its published kid")
        return private


def _at_once(ring: SsfRing) -> int:
    """When a key that must sign at once signs from: nothing else signs, so no cached JWKS to
    wait for, and another container's clock may be a little behind. The newest of the ring's
    times (0 for the first key), so the new key still sorts first and retires the others."""
    return max((key.not_before for key in ring.keys), default=0)


def _save(dynamodb: DynamoDBClient, table_name: str, ring: SsfRing, *, previous: SsfRing) -> None:
    """Store ``ring`` only if the stored one is still ``previous`` (its version)."""
    from sethub.ssf.ring import ring_to_item  # noqa: PLC0415 - see the imports

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
        dynamodb.put_item(
            TableName=table_name,
            Item=item,
            ExpressionAttributeNames={"#version": "version"},
            **condition,
        )
    except ClientError as exc:
        if aws_error_code(exc) == "ConditionalCheckFailedException":
            raise RingChanged("the SSF signing keys changed meanwhile: run the command again") from exc
        raise UpstreamError(f"could not store the SSF signing keys: {aws_error_code(exc)}") from exc
    except BotoCoreError as exc:
        raise UpstreamError(f"could not store the SSF signing keys: {aws_error_code(exc)}") from exc


# ---------------------------------------------------------------------------- kms mode, at deploy

SAVE_ATTEMPTS = 3
"""A deploy's change of the ring is tried again when a rotation or a first key won the race."""


def record_kms_key(
    kms: KMSClient,
    dynamodb: DynamoDBClient,
    *,
    table_name: str,
    key_id: str,
    publish_seconds: int = PUBLISH_SECONDS,
    now: Callable[[], float] = time.time,
) -> SsfRing:
    """What the deploy does in kms mode: the stack's SSF KMS key signs from now on (one
    GetPublicKey for its JWK); the key it replaces, wrapped or KMS, stays published
    ``publish_seconds``. Nothing changes when it already signs."""
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415 - see the imports
    from cryptography.hazmat.primitives.serialization import load_der_public_key  # noqa: PLC0415
    from jwt.algorithms import RSAAlgorithm  # noqa: PLC0415

    from sethub.keyring import RingKey  # noqa: PLC0415

    try:
        public = load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    except (ClientError, BotoCoreError) as exc:
        raise UpstreamError(f"KMS could not read the SSF signing key: {aws_error_code(exc)}") from exc
    if not isinstance(public, rsa.RSAPublicKey) or public.key_size < KEY_BITS:
        raise ConfigurationError(f"the SSF signing key must be RSA of at least {KEY_BITS} bits")
    jwk = _published(json.loads(RSAAlgorithm.to_jwk(public)))
    for _ in range(SAVE_ATTEMPTS):
        ring = load_ring(dynamodb, table_name)
        at = int(now())
        current = ring.signing_key(at)
        if current is not None and current.kid == jwk["kid"] and ring.kms_key_id(current.kid) is not None:
            return ring  # the same public key: the same KMS key, whether named by ARN or id
        # Signs at once: the same stack update gave dispatch kms:Sign on this key only.
        new = RingKey(
            kid=jwk["kid"], alg="RS256", spec=f"RSA_{public.key_size}", jwk=jwk, created_at=at, not_before=at
        )
        rotated = ring.rotated(new, now=at, publish_seconds=publish_seconds, kms_key_id=key_id)
        try:
            _save(dynamodb, table_name, rotated, previous=ring)
        except RingChanged:
            continue
        return rotated
    raise RingChanged("the SSF signing keys kept changing while the KMS key was recorded")


def retire_kms_keys(
    dynamodb: DynamoDBClient,
    *,
    table_name: str,
    publish_seconds: int = PUBLISH_SECONDS,
    now: Callable[[], float] = time.time,
) -> SsfRing:
    """What the deploy does when the stack leaves kms mode: the KMS keys sign no more (still
    published ``publish_seconds``); the SSF function makes a wrapped key on its next request."""
    for _ in range(SAVE_ATTEMPTS):
        ring = load_ring(dynamodb, table_name)
        if not ring.kms_keys:
            return ring
        retired = ring.without_kms_keys(now=int(now()), publish_seconds=publish_seconds)
        try:
            _save(dynamodb, table_name, retired, previous=ring)
        except RingChanged:
            continue
        return retired
    raise RingChanged("the SSF signing keys kept changing while the KMS keys were retired")


class RingChanged(UpstreamError):
    """Another container or rotation stored the SSF key ring first."""


__all__ = [
    "PURPOSE",
    "RingChanged",
    "SsfKeys",
    "load_ring",
    "public_jwk",
    "published_jwks",
    "record_kms_key",
    "retire_kms_keys",
    "sign_rs256",
    "sign_rs256_kms",
]
