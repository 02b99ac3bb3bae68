"""KMS signing (``SETHUB_SIGNING_MODE=kms``): SETs a receiver verifies with the published JWKS.

KMS is moto, in process, behind ``StrictKms``: moto signs any message as RAW, so the proxy
adds what real KMS does (RAW messages up to 4096 bytes, a DIGEST of exactly the hash's size,
signed as a digest). Receivers are pyjwt and jwcrypto, fed only the JWKS.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from jwcrypto import jwk as jwcrypto_jwk
from lean_aws import REGION, client, in_process_aws
from moto.kms.models import kms_backends

from sethub import sets
from sethub.errors import ConfigurationError, UpstreamError
from sethub.signing import KMS_RAW_LIMIT, KmsSigner, thumbprint

MOTO_ACCOUNT = "123456789012"
"""moto's default account, where the clients' fake credentials land."""
LOGIN = "https://schemas.openid.net/secevent/caep/event-type/session-established"


class StrictKms:
    """moto's KMS with AWS's message limits, counting the calls, failing those told to."""

    def __init__(self, kms: Any) -> None:
        self._kms = kms
        self.calls: list[str] = []
        self.sent: list[tuple[int, str]] = []
        self.fail: dict[str, Exception] = {}
        self.public_keys: dict[str, bytes] = {}

    def sign(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("Sign")
        message, kind = kwargs["Message"], kwargs["MessageType"]
        self.sent.append((len(message), kind))
        if "Sign" in self.fail:
            raise self.fail["Sign"]
        if (kind == "RAW" and len(message) > KMS_RAW_LIMIT) or (kind == "DIGEST" and len(message) != 32):
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "bad length"}}, "Sign")
        if kind == "DIGEST":
            return {"KeyId": kwargs["KeyId"], "Signature": _sign_digest(kwargs["KeyId"], message)}
        return self._kms.sign(**kwargs)  # type: ignore[no-any-return]

    def get_public_key(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("GetPublicKey")
        if "GetPublicKey" in self.fail:
            raise self.fail["GetPublicKey"]
        if kwargs["KeyId"] in self.public_keys:
            return {"KeyId": kwargs["KeyId"], "PublicKey": self.public_keys[kwargs["KeyId"]]}
        return self._kms.get_public_key(**kwargs)  # type: ignore[no-any-return]


def _sign_digest(key_id: str, digest: bytes) -> bytes:
    """What KMS does with a DIGEST message (moto signs it as RAW, hashing it again): signs the
    SHA-256 digest as is, with the private key moto holds."""
    held: Any = kms_backends[MOTO_ACCOUNT][REGION].describe_key(key_id).private_key
    private = held.private_key
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return private.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    return private.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def moto_kms() -> Iterator[Any]:
    with in_process_aws():
        yield client("kms")


@pytest.fixture(scope="module")
def key_ids(moto_kms: Any) -> dict[str, str]:
    """One KMS key of each spec, made once for the module."""
    return {
        spec: moto_kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        for spec in ("ECC_NIST_P256", "RSA_2048", "ECC_NIST_P384", "ECC_SECG_P256K1")
    } | {
        "ECC_NIST_P256 b": moto_kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")[
            "KeyMetadata"
        ]["KeyId"]
    }


@pytest.fixture
def kms(moto_kms: Any) -> StrictKms:
    return StrictKms(moto_kms)


def claims(**extra: Any) -> dict[str, Any]:
    return {"iss": "https://hub.example", "jti": "e1", "iat": 1_764_190_000, "events": {LOGIN: {}}, **extra}


def verify(token: str, jwks: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a receiver does: pick the JWKS key by the header's kid, check alg and signature."""
    header = jwt.get_unverified_header(token)
    (key,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    verified = jwt.PyJWS().decode_complete(token, key=jwt.PyJWK(key).key, algorithms=[key["alg"]])
    return verified["header"], json.loads(verified["payload"])


@pytest.mark.parametrize(("spec", "alg"), [("ECC_NIST_P256", "ES256"), ("RSA_2048", "RS256")])
def test_a_signed_set_verifies_against_the_published_jwks(kms, key_ids, spec, alg):
    signer = KmsSigner(kms, [key_ids[spec]])  # type: ignore[arg-type]

    token = signer.sign(claims())

    header, payload = verify(token, signer.jwks())
    assert header == {"alg": alg, "typ": "secevent+jwt", "kid": signer.jwks()["keys"][0]["kid"]}
    assert payload == claims()


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "RSA_2048"])
def test_the_jwks_publishes_the_public_key_with_its_thumbprint_as_kid(kms, key_ids, spec):
    (published,) = KmsSigner(kms, [key_ids[spec]]).jwks()["keys"]  # type: ignore[arg-type]

    # jwcrypto computes the RFC 7638 thumbprint on its own.
    assert published["kid"] == jwcrypto_jwk.JWK(**published).thumbprint()
    assert published["use"] == "sig"
    assert published["alg"] == ("ES256" if spec.startswith("ECC") else "RS256")
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(published)
    public = kms._kms.get_public_key(KeyId=key_ids[spec])["PublicKey"]
    assert (
        jwt.PyJWK(published).key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == public
    )


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "RSA_2048"])
def test_a_set_too_long_for_a_raw_kms_message_is_signed_as_a_digest_and_still_verifies(kms, key_ids, spec):
    signer = KmsSigner(kms, [key_ids[spec]])  # type: ignore[arg-type]
    big = claims(note="x" * 5000)

    _, payload = verify(signer.sign(big), signer.jwks())

    assert payload == big
    assert kms.sent == [(32, "DIGEST")]


def test_signing_inputs_around_the_raw_limit_go_raw_below_it_and_as_a_digest_above(kms, key_ids):
    signer = KmsSigner(kms, [key_ids["ECC_NIST_P256"]])  # type: ignore[arg-type]
    key = signer.key(key_ids["ECC_NIST_P256"])
    sizes = {
        n: len(sets.signing_input(claims(note="x" * n), alg=key.alg, kid=key.kid)) for n in range(2800, 3000)
    }
    # The header's length is fixed, and base64 never ends a length of 4k+1: exactly 4096 cannot
    # occur, so the largest input below the limit and the smallest above it are the edges.
    below = max((n for n, size in sizes.items() if size <= KMS_RAW_LIMIT), key=sizes.__getitem__)
    above = min((n for n, size in sizes.items() if size > KMS_RAW_LIMIT), key=sizes.__getitem__)

    for pad in (below, above):
        verify(signer.sign(claims(note="x" * pad)), signer.jwks())

    assert kms.sent == [(sizes[below], "RAW"), (32, "DIGEST")]
    assert sizes[above] == KMS_RAW_LIMIT + 1


def test_the_first_key_signs_and_every_key_is_published(kms, key_ids):
    first, second, third = key_ids["ECC_NIST_P256 b"], key_ids["ECC_NIST_P256"], key_ids["RSA_2048"]
    signer = KmsSigner(kms, [first, second, third])  # type: ignore[arg-type]

    token = signer.sign(claims())

    published = signer.jwks()["keys"]
    assert [k["kid"] for k in published] == [signer.key(k).kid for k in (first, second, third)]
    assert len({k["kid"] for k in published}) == 3
    header, _ = verify(token, signer.jwks())
    assert header["kid"] == published[0]["kid"]
    # The other P-256 key does not verify it: the first key is the one that signed.
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.PyJWS().decode_complete(token, key=jwt.PyJWK(published[1]).key, algorithms=["ES256"])


def test_a_key_describes_itself(kms, key_ids):
    key = KmsSigner(kms, [key_ids["RSA_2048"]]).key(key_ids["RSA_2048"])  # type: ignore[arg-type]

    assert (key.key_id, key.alg, key.kms_algorithm) == (
        key_ids["RSA_2048"],
        "RS256",
        "RSASSA_PKCS1_V1_5_SHA_256",
    )
    assert key.kid == key.jwk["kid"]
    ec = KmsSigner(kms, [key_ids["ECC_NIST_P256"]]).key(key_ids["ECC_NIST_P256"])  # type: ignore[arg-type]
    assert (ec.alg, ec.kms_algorithm) == ("ES256", "ECDSA_SHA_256")


def test_a_public_key_is_fetched_once_for_the_life_of_the_signer(kms, key_ids):
    signer = KmsSigner(kms, [key_ids["ECC_NIST_P256"], key_ids["RSA_2048"]])  # type: ignore[arg-type]

    for _ in range(3):
        signer.sign(claims())
        signer.jwks()

    assert kms.calls.count("GetPublicKey") == 2
    assert kms.calls.count("Sign") == 3


def test_no_key_ids_is_a_configuration_error(kms):
    with pytest.raises(ConfigurationError, match=r"^SETHUB_SIGNING_KEY_IDS is not set$"):
        KmsSigner(kms, [])  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", ["ECC_NIST_P384", "ECC_SECG_P256K1"])
def test_a_key_of_another_curve_is_refused(kms, key_ids, spec):
    key_id = key_ids[spec]

    with pytest.raises(ConfigurationError) as raised:
        KmsSigner(kms, [key_id]).jwks()  # type: ignore[arg-type]

    assert str(raised.value) == f"signing key {key_id} must be ECC_NIST_P256 or RSA"


def _der(public_key: Any) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_an_rsa_key_under_2048_bits_is_refused(kms):
    kms.public_keys["weak"] = _der(
        rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    )

    with pytest.raises(ConfigurationError) as raised:
        KmsSigner(kms, ["weak"]).jwks()  # type: ignore[arg-type]

    assert str(raised.value) == "signing key weak must have at least 2048 bits"


def test_a_key_neither_ec_nor_rsa_is_refused(kms):
    kms.public_keys["ed"] = _der(ed25519.Ed25519PrivateKey.generate().public_key())

    with pytest.raises(ConfigurationError) as raised:
        KmsSigner(kms, ["ed"]).jwks()  # type: ignore[arg-type]

    assert str(raised.value) == "signing key ed must be ECC_NIST_P256 or RSA"


def test_an_unknown_key_is_an_upstream_error_naming_kms_answer(kms):
    with pytest.raises(UpstreamError) as raised:
        KmsSigner(kms, ["alias/none"]).jwks()  # type: ignore[arg-type]

    assert str(raised.value) == "KMS GetPublicKey failed: NotFoundException"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ClientError({"Error": {"Code": "DisabledException"}}, "Sign"), "DisabledException"),
        (ClientError({}, "Sign"), "ClientError"),
        (EndpointConnectionError(endpoint_url="https://kms"), "EndpointConnectionError"),
    ],
)
def test_a_failed_kms_call_is_an_upstream_error_naming_what_failed(kms, key_ids, error, reason):
    signer = KmsSigner(kms, [key_ids["ECC_NIST_P256"]])  # type: ignore[arg-type]
    kms.fail["GetPublicKey"] = error

    with pytest.raises(UpstreamError) as raised:
        signer.sign(claims())
    assert str(raised.value) == f"KMS GetPublicKey failed: {reason}"

    del kms.fail["GetPublicKey"]
    kms.fail["Sign"] = error
    with pytest.raises(UpstreamError) as raised:
        signer.sign(claims())
    assert str(raised.value) == f"KMS Sign failed: {reason}"


def test_rfc_7638_example_thumbprint() -> None:
    # RFC 7638 section 3.1; members other than the required ones are ignored.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs"
        "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91"
        "CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    jwk = {"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}

    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_an_ec_thumbprint_is_what_jwcrypto_computes() -> None:
    key = jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256")
    public = json.loads(key.export_public())

    assert thumbprint({**public, "use": "sig"}) == key.thumbprint()
    assert "=" not in thumbprint(public)
    assert len(base64.urlsafe_b64decode(thumbprint(public) + "=")) == 32
