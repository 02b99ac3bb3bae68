"""Wrapped signing keys without AWS: the ring's rotation rules, in-process signatures that a
receiver verifies, RFC 7638 kids, and the kms mode's rotation parameters."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from sethub.keyring import KeyRing, RingKey, generate_private_key, public_jwk, sign_with
from sethub.signing import thumbprint
from sethub.signingkeys import kms_rotation_parameters

DAY = 86400
LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"
CLAIMS = {"iss": "https://hub.example", "jti": "j1", "iat": 1764190000, "events": {LOGIN: {}}}


def key(name: str, *, at: int, not_before: int | None = None) -> RingKey:
    return RingKey(
        kid=name,
        alg="ES256",
        spec="ECC_NIST_P256",
        jwk={"kty": "EC", "kid": name},
        created_at=at,
        not_before=at if not_before is None else not_before,
        wrapped=f"ciphertext of {name}".encode(),
    )


def verify(token: str, jwks: list[dict[str, Any]]) -> dict[str, Any]:
    header = jwt.get_unverified_header(token)
    found = jwt.PyJWKSet.from_dict({"keys": jwks})[header["kid"]]
    claims: dict[str, Any] = jwt.decode(token, key=found.key, algorithms=[header["alg"]])
    return claims


def test_rfc_7638_example_thumbprint() -> None:
    # RFC 7638 section 3.1: the RSA key and its SHA-256 thumbprint.
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3"
            "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0"
            "zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44"
            "-csFCur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize(("spec", "alg"), [("ECC_NIST_P256", "ES256"), ("RSA_2048", "RS256")])
def test_a_set_signed_in_process_verifies_against_its_published_jwk(spec: str, alg: str) -> None:
    private_key = generate_private_key(spec)
    published_alg, jwk = public_jwk(private_key)
    token = sign_with(private_key, published_alg, jwk["kid"], CLAIMS)

    header = jwt.get_unverified_header(token)
    assert header == {"alg": alg, "typ": "secevent+jwt", "kid": jwk["kid"]}
    assert (jwk["alg"], jwk["use"]) == (alg, "sig")
    assert jwk["kid"] == thumbprint(jwk)
    assert "d" not in jwk  # the public half only
    assert verify(token, [jwk]) == CLAIMS
    # Another key of the same spec does not verify it.
    _, other = public_jwk(generate_private_key(spec))
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, key=jwt.PyJWK(other).key, algorithms=[alg])


def test_the_first_key_signs_at_once() -> None:
    ring = KeyRing().rotated(key("k1", at=100), now=100, publish_seconds=DAY)
    assert ring.version == 1
    assert ring.signing_key(100) == ring.keys[0]
    assert [k.kid for k in ring.published(100)] == ["k1"]


def test_a_rotated_in_key_is_published_at_once_and_signs_from_its_activation() -> None:
    ring = KeyRing().rotated(key("k1", at=100), now=100, publish_seconds=DAY)

    # WHEN k2 is rotated in at t=1000, to sign from t=1300
    ring = ring.rotated(key("k2", at=1000, not_before=1300), now=1000, publish_seconds=DAY)

    # THEN both are published now, k1 still signs until 1300, then k2
    assert [k.kid for k in ring.published(1000)] == ["k2", "k1"]
    signing = ring.signing_key(1299)
    assert signing is not None
    assert signing.kid == "k1"
    signing = ring.signing_key(1300)
    assert signing is not None
    assert signing.kid == "k2"
    # ...and k1 is published for the window after it stopped signing, then dropped from the JWKS.
    k1 = ring.keys[1]
    assert (k1.retired_at, k1.publish_until) == (1300, 1300 + DAY)
    assert [k.kid for k in ring.published(1300 + DAY - 1)] == ["k2", "k1"]
    assert [k.kid for k in ring.published(1300 + DAY)] == ["k2"]
    # k1 can still sign (until 1300): it keeps its ciphertext for now.
    assert k1.wrapped is not None


def test_a_key_that_can_no_longer_sign_loses_its_ciphertext_and_expired_keys_leave_the_ring() -> None:
    ring = KeyRing().rotated(key("k1", at=0), now=0, publish_seconds=DAY)
    ring = ring.rotated(key("k2", at=10, not_before=10), now=10, publish_seconds=DAY)
    # k1 stopped signing at 10: only its public key is kept.
    assert [(k.kid, k.wrapped is not None) for k in ring.keys] == [("k2", True), ("k1", False)]

    ring = ring.rotated(key("k3", at=10 + DAY, not_before=10 + DAY), now=10 + DAY, publish_seconds=DAY)
    # k1's window ended at 10 + DAY: gone; k2 retired now, published a day more, without its ciphertext.
    assert [(k.kid, k.wrapped is not None) for k in ring.keys] == [("k3", True), ("k2", False)]
    assert ring.version == 3


def test_kms_rotation_flips_the_slot_and_keeps_retired_keys_for_the_window() -> None:
    old, older, oldest = (f"arn:aws:kms:us-east-1:111122223333:key/{n}" for n in ("old", "older", "oldest"))
    current = {"SigningMode": "kms", "SigningKeySlot": "a", "PreviousSigningKeyArns": f"{older},{oldest}"}

    changed = kms_rotation_parameters(
        current,
        retiring_arn=old,
        retired_at={older: 20 * DAY - 60, oldest: 2 * DAY},
        now=30 * DAY,
        publish_seconds=16 * DAY,
    )

    # The other slot signs; the key it replaces is published first; one retired 28 days ago drops.
    assert changed == {"SigningKeySlot": "b", "PreviousSigningKeyArns": f"{old},{older}"}
    back = kms_rotation_parameters(
        {**current, **changed}, retiring_arn=older, retired_at={}, now=31 * DAY, publish_seconds=16 * DAY
    )
    # A key with no known retirement time stays published.
    assert back == {"SigningKeySlot": "a", "PreviousSigningKeyArns": f"{older},{old}"}
