"""The RS256 key that signs SSF SETs (CAEP interoperability profile 2.6: RSA, >= 2048 bits).

Whatever ``SETHUB_SIGNING_MODE`` topic subscribers get, SSF streams need RS256, so SSF
has a key of its own: RSA 2048, generated in memory by the SSF function the first time
it is needed (metadata's JWKS or a stream create), stored in the hub table wrapped under
the stack's data key with an encryption context naming its purpose
(``ssf-signing-key``): the SSF function may only Encrypt under that context, and only the
dispatch function (the key policy's role path) decrypts it, once per container, to sign.
A conditional put makes the first key win when two containers race.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
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

PURPOSE_KEY = "sethub:purpose"
PURPOSE = "ssf-signing-key"
KEY_BITS = 2048
ITEM_KEY = {"pk": {"S": "SIGNING"}, "sk": {"S": "SSFKEY"}}


@dataclass(frozen=True)
class SsfKey:
    kid: str
    jwk: Mapping[str, str]
    wrapped: bytes


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


class SsfKeys:
    """The SSF key: created on first need, public half cached, private half unwrapped once."""

    def __init__(
        self, kms: KMSClient, dynamodb: DynamoDBClient, *, table_name: str, data_key_id: str
    ) -> None:
        self._kms = kms
        self._db = dynamodb
        self._table = table_name
        self._data_key_id = data_key_id
        self._key: SsfKey | None = None
        self._private: rsa.RSAPrivateKey | None = None
        self._lock = Lock()

    def _load(self) -> SsfKey | None:
        try:
            item = self._db.get_item(TableName=self._table, Key=ITEM_KEY, ConsistentRead=True).get("Item")  # type: ignore[arg-type]
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"could not read the SSF signing key: {_code(exc)}") from exc
        if item is None:
            return None
        return SsfKey(
            kid=item["kid"]["S"], jwk=json.loads(item["jwk"]["S"]), wrapped=bytes(item["wrapped"]["B"])
        )  # type: ignore[arg-type]

    def key(self, *, create: bool = False) -> SsfKey:
        """The key; ``create``: make it when there is none (the SSF function only)."""
        with self._lock:
            if self._key is None:
                self._key = self._load()
                if self._key is None and create:
                    self._key = self._create()
            if self._key is None:
                raise ConfigurationError(
                    "there is no SSF signing key yet: it is made when a stream is created"
                )
            return self._key

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [dict(self.key(create=True).jwk)]}

    def sign(self, claims: Mapping[str, Any]) -> str:
        key = self.key()
        with self._lock:
            if self._private is None:
                self._private = self._unwrap(key)
            private = self._private
        return sign_rs256(private, key.kid, claims)

    def _create(self) -> SsfKey:
        if not self._data_key_id:
            raise ConfigurationError("SETHUB_DATA_KEY_ID is not set: the SSF signing key is wrapped under it")
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - see the imports
        from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

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
        item: dict[str, Any] = {
            **ITEM_KEY,
            "kid": {"S": jwk["kid"]},
            "jwk": {"S": json.dumps(jwk, sort_keys=True)},
            "wrapped": {"B": wrapped},
        }
        try:
            self._db.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise UpstreamError(f"could not store the SSF signing key: {_code(exc)}") from exc
            stored = self._load()  # another container made it first: theirs is the key
            if stored is None:
                raise UpstreamError("the SSF signing key vanished while it was being made") from exc
            return stored
        except BotoCoreError as exc:
            raise UpstreamError(f"could not store the SSF signing key: {_code(exc)}") from exc
        return SsfKey(kid=jwk["kid"], jwk=jwk, wrapped=wrapped)

    def _unwrap(self, key: SsfKey) -> rsa.RSAPrivateKey:
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - see the imports
        from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

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


__all__ = ["PURPOSE", "SsfKey", "SsfKeys", "public_jwk", "sign_rs256"]
