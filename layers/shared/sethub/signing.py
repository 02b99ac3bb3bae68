"""Signing SETs with KMS, and the JWKS that verifies them.

One KMS ``Sign`` per event (the dispatcher shares the JWS among all deliveries); public
keys are fetched with ``GetPublicKey`` once per key and cached for the life of the
signer, which a handler builds once per container. Key rotation: several key ids, the
first signs and all are published, so receivers holding the JWKS keep verifying SETs
signed with the previous key while caches refresh.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from threading import Lock
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.utils import der_to_raw_signature

from sethub import sets
from sethub.errors import ConfigurationError, UpstreamError, aws_error_code

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

# KMS signs at most 4096 bytes in RAW mode; longer inputs are sent as their SHA-256 digest.
KMS_RAW_LIMIT = 4096
MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class SigningKey:
    """A KMS key's public half as sethub uses it."""

    key_id: str
    alg: sets.Alg
    kid: str
    kms_algorithm: str
    jwk: Mapping[str, str]


class KmsSigner:
    """Signs SET claims with the first of ``key_ids``; publishes all of them as a JWKS."""

    def __init__(self, kms_client: KMSClient, key_ids: Sequence[str]) -> None:
        if not key_ids:
            raise ConfigurationError("SETHUB_SIGNING_KEY_IDS is not set")
        self._kms = kms_client
        self._key_ids = tuple(key_ids)
        self._keys: dict[str, SigningKey] = {}
        self._lock = Lock()

    def key(self, key_id: str) -> SigningKey:
        """The public key of ``key_id``, fetched once."""
        cached = self._keys.get(key_id)
        if cached is not None:
            return cached
        with self._lock:
            if key_id not in self._keys:
                self._keys[key_id] = self._fetch(key_id)
            return self._keys[key_id]

    def sign(self, claims: Mapping[str, Any]) -> str:
        """The compact JWS of ``claims`` (header alg, ``typ: secevent+jwt``, kid): one KMS Sign."""
        key = self.key(self._key_ids[0])
        signing_input = sets.signing_input(claims, alg=key.alg, kid=key.kid)
        if len(signing_input) <= KMS_RAW_LIMIT:
            message, message_type = signing_input, "RAW"
        else:
            message, message_type = hashlib.sha256(signing_input).digest(), "DIGEST"
        try:
            response = self._kms.sign(
                KeyId=key.key_id,
                Message=message,
                MessageType=message_type,  # type: ignore[arg-type]
                SigningAlgorithm=key.kms_algorithm,  # type: ignore[arg-type]
            )
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"KMS Sign failed: {aws_error_code(exc)}") from exc
        signature = response["Signature"]
        if key.alg == "ES256":
            # KMS returns an ASN.1 DER ECDSA signature; JOSE wants the raw r||s (RFC 7518 3.4).
            signature = der_to_raw_signature(signature, ec.SECP256R1())
        return sets.compact(signing_input, signature)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """``{"keys": [...]}`` for every key id, each with ``kid``, ``alg`` and ``use: sig``."""
        return {"keys": [dict(self.key(key_id).jwk) for key_id in self._key_ids]}

    def _fetch(self, key_id: str) -> SigningKey:
        try:
            response = self._kms.get_public_key(KeyId=key_id)
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"KMS GetPublicKey failed: {aws_error_code(exc)}") from exc
        # moto omits KeySpec, so the key type comes from the public key itself.
        public_key = load_der_public_key(response["PublicKey"])
        jwk: dict[str, str]
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            if not isinstance(public_key.curve, ec.SECP256R1):
                raise ConfigurationError(f"signing key {key_id} must be ECC_NIST_P256 or RSA")
            alg: sets.Alg = "ES256"
            kms_algorithm = "ECDSA_SHA_256"
            jwk = json.loads(ECAlgorithm.to_jwk(public_key))
        elif isinstance(public_key, rsa.RSAPublicKey):
            if public_key.key_size < MIN_RSA_BITS:
                raise ConfigurationError(f"signing key {key_id} must have at least {MIN_RSA_BITS} bits")
            alg = "RS256"
            kms_algorithm = "RSASSA_PKCS1_V1_5_SHA_256"
            jwk = json.loads(RSAAlgorithm.to_jwk(public_key))
        else:
            raise ConfigurationError(f"signing key {key_id} must be ECC_NIST_P256 or RSA")
        kid = thumbprint(jwk)
        published = {**jwk, "kid": kid, "alg": alg, "use": "sig"}
        return SigningKey(key_id=key_id, alg=alg, kid=kid, kms_algorithm=kms_algorithm, jwk=published)


def thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url without padding)."""
    members = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


__all__ = ["KmsSigner", "SigningKey", "thumbprint"]
