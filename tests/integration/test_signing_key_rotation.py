"""Signing key rotation under moto: the new key signs, the retired one stays in the JWKS.

A retry carries the JWS signed before the rotation for up to about a day, so a receiver
that verifies it against the hub's JWKS after the rotation must still find its key.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import pytest

from devstack.functions import load_function
from devstack.gateway import proxy_event
from devstack.provision import provision
from sethub.settings import Settings
from sethub.signing import KmsSigner

if TYPE_CHECKING:
    from conftest import Hub
    from mypy_boto3_kms import KMSClient

ROOT = Path(__file__).resolve().parents[2]
LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"


def claims(jti: str) -> dict[str, Any]:
    return {"iss": "https://hub.example", "jti": jti, "iat": 1764190000, "events": {LOGIN: {}}}


def verify(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """What a receiver does: pick the JWKS key named by the token's kid, verify."""
    header = jwt.get_unverified_header(token)
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    verified: dict[str, Any] = jwt.decode(token, key=key.key, algorithms=[header["alg"]])
    return verified


def new_key(kms: KMSClient, spec: str = "ECC_NIST_P256") -> str:
    return kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]  # type: ignore[arg-type]


@pytest.mark.parametrize("new_spec", ["ECC_NIST_P256", "RSA_2048"])
def test_the_first_key_signs_and_a_set_signed_by_the_retired_key_still_verifies(
    hub: Hub, new_spec: str
) -> None:
    kms = hub.clients.kms
    retired, current = new_key(kms), new_key(kms, new_spec)
    # GIVEN a SET signed before the rotation (a retry still carries it)
    in_flight = KmsSigner(kms, [retired]).sign(claims("before"))

    # WHEN the hub runs with the new key first and the retired one after it
    signer = KmsSigner(kms, [current, retired])
    fresh = signer.sign(claims("after"))
    jwks = signer.jwks()

    # THEN new SETs carry the new key's kid, the JWKS publishes both, and both verify
    kids = [key["kid"] for key in jwks["keys"]]
    assert len(set(kids)) == 2
    assert jwt.get_unverified_header(fresh)["kid"] == kids[0]
    assert jwt.get_unverified_header(fresh)["alg"] == ("RS256" if new_spec == "RSA_2048" else "ES256")
    assert jwt.get_unverified_header(in_flight)["kid"] == kids[1]
    assert verify(fresh, jwks)["jti"] == "after"
    assert verify(in_flight, jwks)["jti"] == "before"
    # ...and a receiver holding only the new key could not have verified the old SET.
    with pytest.raises(KeyError):
        verify(in_flight, {"keys": jwks["keys"][:1]})


def test_a_stack_rotated_to_slot_b_serves_both_keys_from_its_jwks_url(
    hub: Hub, template: dict[str, Any], moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a deployed hub (slot a) that signed a SET still being retried
    kms = hub.clients.kms
    in_flight = KmsSigner(kms, hub.settings.signing_key_ids).sign(claims("before"))
    old_arn = kms.describe_key(KeyId=hub.provisioned.key_ids["SigningKey"])["KeyMetadata"]["Arn"]

    # WHEN the stack is deployed with the other slot and the old key listed as retired
    rotated = provision(
        template,
        endpoint_url=moto_endpoint,
        prefix=f"t{uuid.uuid4().hex[:10]}",
        parameters={"SigningKeySlot": "b", "PreviousSigningKeyArns": old_arn},
        overrides={"SETHUB_PUBLIC_URL": "http://127.0.0.1:3000"},
    )

    # THEN the template made a new key in slot b, which signs first, and both are published
    assert "SigningKey" not in rotated.key_ids
    new_id = rotated.key_ids["SigningKeyB"]
    for function in ("WebSubFunction", "DispatchFunction"):
        assert rotated.env_for(function)["SETHUB_SIGNING_KEY_IDS"] == f"{new_id},{old_arn}"

    env = rotated.env_for("WebSubFunction")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    websub = load_function(rotated.functions["WebSubFunction"], ROOT, "us-east-1")
    answer = websub.invoke(_get("/.well-known/jwks.json"))
    assert answer["statusCode"] == 200
    jwks = json.loads(answer["body"])
    assert len(jwks["keys"]) == 2
    assert verify(in_flight, jwks)["jti"] == "before"
    fresh = KmsSigner(kms, Settings.from_env(env).signing_key_ids).sign(claims("after"))
    assert jwt.get_unverified_header(fresh)["kid"] == jwks["keys"][0]["kid"]
    assert verify(fresh, jwks)["jti"] == "after"


def _get(path: str) -> dict[str, Any]:
    return proxy_event(resource=path, method="GET", headers=[("Host", "127.0.0.1:3000")])
