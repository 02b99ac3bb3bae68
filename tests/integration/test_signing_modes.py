"""The two signing modes under moto, each function calling AWS with its own role.

wrapped (the default): the dispatcher decrypts the signing key once per container and then
signs in process (no AWS call per SET); only the dispatch role may decrypt it. kms: every
SET is one KMS Sign. Either way the SET verifies against the hub's JWKS.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import jwt
import pytest
from cfn_responses import cfn_responses
from counting import Counting
from hubs import LOCAL_OVERRIDES, DirectClients, Hub

from devstack.provision import provision
from sethub.errors import UpstreamError
from sethub.keyring import RingStore, WrappedSigner, signer_for, unwrap
from sethub.settings import Settings
from sethub.signing import KmsSigner

if TYPE_CHECKING:
    from collections.abc import Iterator

LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"


def claims(jti: str) -> dict[str, Any]:
    return {"iss": "https://hub.example", "jti": jti, "iat": 1764190000, "events": {LOGIN: {}}}


def verify(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    header = jwt.get_unverified_header(token)
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    verified: dict[str, Any] = jwt.decode(token, key=key.key, algorithms=[header["alg"]])
    return verified


@pytest.fixture
def kms_hub(moto_endpoint: str, template: dict[str, Any]) -> Iterator[Hub]:
    stack = provision(
        template,
        endpoint_url=moto_endpoint,
        prefix=f"t{uuid.uuid4().hex[:10]}",
        parameters={"SigningMode": "kms"},
        overrides=LOCAL_OVERRIDES,
    )
    env = stack.union_env()
    created = Hub(
        settings=Settings.from_env(env), clients=DirectClients(moto_endpoint), env=env, provisioned=stack
    )
    yield created
    created.close()


def test_wrapped_one_decrypt_per_container_and_no_aws_call_per_set(hub: Hub) -> None:
    assert hub.settings.signing_mode == "wrapped"
    # GIVEN two dispatch containers, each with its own clients (the dispatch role's)
    containers = []
    for _ in range(2):
        kms = Counting(hub.clients_for("DispatchFunction").kms)
        dynamodb = Counting(hub.clients_for("DispatchFunction").dynamodb)
        signer = signer_for(DirectClients("unused", kms=kms, dynamodb=dynamodb), hub.settings)
        containers.append((signer, kms, dynamodb))

    # WHEN each signs 25 SETs
    tokens = [
        signer.sign(claims(f"{n}-{i}")) for n, (signer, _, _) in enumerate(containers) for i in range(25)
    ]

    # THEN each container made one Decrypt and one read of the key ring, and nothing else
    for _, kms, dynamodb in containers:
        assert kms.calls == {"decrypt": 1}
        assert dynamodb.calls == {"get_item": 1}
    # ...and every SET verifies against the JWKS (one kid: the deploy's key).
    jwks = signer_for(hub.clients_for("WebSubFunction"), hub.settings, refresh_seconds=0).jwks()
    assert len(jwks["keys"]) == 1
    assert [verify(token, jwks)["jti"] for token in tokens[:2]] == ["0-0", "0-1"]
    assert {jwt.get_unverified_header(token)["kid"] for token in tokens} == {jwks["keys"][0]["kid"]}


def test_wrapped_only_the_dispatch_role_can_unwrap_the_signing_key(hub: Hub) -> None:
    ring = RingStore(hub.clients.dynamodb, hub.settings.table_name).load()
    key = ring.keys[0]
    # The table holds the public JWK and a ciphertext, never the private key.
    assert "d" not in key.jwk
    assert key.wrapped is not None
    assert b"PRIVATE" not in key.wrapped

    unwrap(hub.clients_for("DispatchFunction").kms, hub.settings.data_key_id, key)
    for function in ("WebSubFunction", "IngestFunction", "VerifierFunction", "KeyRingFunction"):
        with pytest.raises(UpstreamError, match="AccessDenied"):
            unwrap(hub.clients_for(function).kms, hub.settings.data_key_id, key)


def test_wrapped_the_dispatch_role_cannot_decrypt_the_signing_key_under_another_purpose(hub: Hub) -> None:
    # GIVEN the wrapped key's ciphertext presented with a hub.secret's context instead
    key = RingStore(hub.clients.dynamodb, hub.settings.table_name).load().keys[0]
    assert key.wrapped is not None
    kms = hub.clients_for("DispatchFunction").kms
    # THEN the IAM condition admits the call, but KMS refuses: the context is part of the ciphertext.
    with pytest.raises(Exception, match="InvalidCiphertext"):
        kms.decrypt(
            CiphertextBlob=key.wrapped,
            EncryptionContext={"sethub:subscription": "x"},
            KeyId=hub.settings.data_key_id,
        )


def test_kms_every_set_is_one_kms_sign_and_verifies_against_the_jwks(kms_hub: Hub) -> None:
    assert kms_hub.settings.signing_mode == "kms"
    assert RingStore(kms_hub.clients.dynamodb, kms_hub.settings.table_name).load().keys == ()
    kms = Counting(kms_hub.clients_for("DispatchFunction").kms)
    signer = signer_for(DirectClients("unused", kms=kms), kms_hub.settings)
    assert isinstance(signer, KmsSigner)

    tokens = [signer.sign(claims(f"k-{i}")) for i in range(3)]

    assert kms.calls == {"get_public_key": 1, "sign": 3}
    jwks = signer_for(kms_hub.clients_for("WebSubFunction"), kms_hub.settings).jwks()
    assert [verify(token, jwks)["jti"] for token in tokens] == ["k-0", "k-1", "k-2"]
    # The dispatch role has no wrapped key to decrypt in kms mode, and websub cannot sign.
    assert not isinstance(signer, WrappedSigner)
    with pytest.raises(UpstreamError, match="AccessDenied"):
        KmsSigner(kms_hub.clients_for("WebSubFunction").kms, kms_hub.settings.signing_key_ids).sign(
            claims("x")
        )


def test_the_custom_resource_function_makes_the_ring_under_its_role_and_always_answers(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in hub.env_for("KeyRingFunction").items():
        monkeypatch.setenv(name, value)
    keyring = hub.function("KeyRingFunction")
    store = RingStore(hub.clients.dynamodb, hub.settings.table_name)
    deployed = store.load().keys[0]
    properties = {"TableName": hub.settings.table_name, "DataKeyId": hub.settings.data_key_id}

    with cfn_responses() as cfn:
        # A re-deploy with the same spec keeps the key; a spec change rotates to the new spec at once.
        keyring.invoke(cfn.event("Update", {**properties, "KeySpec": "ECC_NIST_P256"}, "ring"))
        keyring.invoke(cfn.event("Update", {**properties, "KeySpec": "RSA_2048"}, "ring"))
        # A failure is answered too (CloudFormation would otherwise wait an hour).
        keyring.invoke(
            cfn.event("Create", {**properties, "TableName": "no-such-table", "KeySpec": "RSA_2048"})
        )
        keyring.invoke(cfn.event("Delete", properties, "ring"))

    same, rotated, failed, deleted = cfn.received
    assert (same["Status"], same["Data"], same["PhysicalResourceId"]) == (
        "SUCCESS",
        {"Kid": deployed.kid},
        "ring",
    )
    ring = store.load()
    assert (rotated["Status"], rotated["Data"]) == ("SUCCESS", {"Kid": ring.keys[0].kid})
    assert [(key.kid, key.alg) for key in ring.keys] == [(ring.keys[0].kid, "RS256"), (deployed.kid, "ES256")]
    assert failed["Status"] == "FAILED"
    assert "AccessDenied" in failed["Reason"] or "ResourceNotFound" in failed["Reason"]
    assert deleted["Status"] == "SUCCESS"
    assert store.load() == ring  # Delete leaves the ring: retired keys stay published
    # The new key signs for dispatch (decrypted under the dispatch role).
    token = signer_for(hub.clients_for("DispatchFunction"), hub.settings).sign(claims("rsa"))
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert verify(token, signer_for(hub.clients, hub.settings, refresh_seconds=0).jwks())["jti"] == "rsa"
