"""The SSF signing keys on moto, in both signing modes: the metadata's ``jwks_uri`` is the
hub's one JWKS, which publishes the SSF streams' RS256 keys beside the hub's own, and a
receiver that verifies with it (jwcrypto, an independent JOSE library) keeps verifying
across a rotation: SETs signed before it and SETs signed after it alike.

The metadata and the JWKS are read through the SSF and WebSub functions' handlers (each
with its role), the SETs are signed by the dispatcher's code with the dispatch role. In
wrapped mode the rotation is ``sethub ssf signing-key rotate`` as an operator runs it; in kms
mode every SSF SET is a KMS ``Sign`` with the template's RSA KMS key, and the rotation is the
deploy that flips ``SigningKeySlot`` (what ``sethub signing-keys rotate`` starts).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from cfn_responses import cfn_responses
from cryptography.hazmat.primitives.serialization import load_der_public_key
from hubs import LOCAL_OVERRIDES, DirectClients, Hub, operator_command
from jwcrypto import jwk, jws
from mypy_boto3_kms import KMSClient

from devstack.gateway import proxy_event
from devstack.provision import provision
from sethub.errors import ConfigurationError
from sethub.settings import Settings
from sethub.ssf.keys import ITEM_KEY, REFRESH_SECONDS, SsfKeys

VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"


class Clock:
    def __init__(self) -> None:
        self.at = time.time()

    def __call__(self) -> float:
        return self.at


def deploy(moto_endpoint: str, template: dict[str, Any], prefix: str, **parameters: str) -> Hub:
    """The stack ``prefix`` deployed (again) with ``parameters``, as ``sam deploy`` would update it."""
    stack = provision(
        template, endpoint_url=moto_endpoint, prefix=prefix, parameters=parameters, overrides=LOCAL_OVERRIDES
    )
    env = stack.union_env()
    return Hub(
        settings=Settings.from_env(env), clients=DirectClients(moto_endpoint), env=env, provisioned=stack
    )


@pytest.fixture
def kms_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def kms_hub(moto_endpoint: str, template: dict[str, Any], kms_prefix: str) -> Iterator[Hub]:
    """A hub in kms signing mode, slot a (the deploy recorded its SSF KMS key)."""
    created = deploy(moto_endpoint, template, kms_prefix, SigningMode="kms", SigningKeySlot="a")
    yield created
    created.close()


def get(hub: Hub, function: str, path: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """GET ``path`` of a function's API routes, as a receiver calls it (no credentials)."""
    for name, value in hub.env_for(function).items():
        monkeypatch.setenv(name, value)
    answer = hub.function(function).invoke(
        proxy_event(resource=path, method="GET", headers=[("Host", "127.0.0.1:3000")])
    )
    assert answer["statusCode"] == 200, answer
    document: dict[str, Any] = json.loads(answer["body"])
    return document


def jwks_from_metadata(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> jwk.JWKSet:
    """What a receiver does: the metadata, then the JWKS at its ``jwks_uri``."""
    metadata = get(hub, "SsfFunction", "/.well-known/ssf-configuration", monkeypatch)
    path = urlsplit(metadata["jwks_uri"]).path
    assert path == "/.well-known/jwks.json"  # the hub's one JWKS (DESIGN.md)
    return jwk.JWKSet.from_json(json.dumps(get(hub, "WebSubFunction", path, monkeypatch)))


def verify(compact: str, keys: jwk.JWKSet) -> dict[str, Any]:
    token = jws.JWS()
    token.deserialize(compact)
    header = token.jose_header
    assert header["alg"] == "RS256"
    key = keys.get_key(header["kid"])
    assert key is not None, "the JWKS does not have the SET's key"
    assert key.get_op_key("verify").key_size >= 2048
    token.verify(key, alg="RS256")
    return dict(json.loads(token.payload))


def rotate(hub: Hub, clock: Clock, *args: str) -> str:
    """``sethub ssf signing-key rotate`` as an operator runs it, at the clock's time."""
    return signing_key(hub, clock, "rotate", *args)


def signing_key(hub: Hub, clock: Clock, *args: str) -> str:
    """``sethub ssf signing-key ARGS`` as an operator runs it, at the clock's time."""
    return operator_command(hub, clock, "ssf", "signing-key", *args)


def published(keys: jwk.JWKSet) -> list[dict[str, Any]]:
    return list(json.loads(keys.export(private_keys=False))["keys"])


def kid(compact: str) -> str:
    token = jws.JWS()
    token.deserialize(compact)
    return str(token.jose_header["kid"])


def claims(jti: str) -> dict[str, Any]:
    return {
        "iss": "http://127.0.0.1:3000",
        "aud": "acme-siem",
        "jti": jti,
        "iat": 1_764_190_000,
        "sub_id": {"format": "opaque", "id": "stream-1"},
        "events": {VERIFICATION: {"state": jti}},
    }


def dispatcher(hub: Hub, clock: Clock) -> SsfKeys:
    """The SSF signer of a warm dispatch container, calling AWS with the dispatch role."""
    dispatch = hub.clients_for("DispatchFunction")
    return SsfKeys(
        dispatch.kms,
        dispatch.dynamodb,
        table_name=hub.settings.table_name,
        data_key_id=hub.settings.data_key_id,
        now=clock,
    )


def kms_kid(kms: KMSClient, key_id: str) -> str:
    """The RFC 7638 thumbprint of a KMS key's public half (jwcrypto's, not sethub's)."""
    return str(
        jwk.JWK.from_pyca(load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])).thumbprint()
    )


def test_receivers_verify_with_the_metadata_jwks_across_a_rotation(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    # GIVEN the SSF function made the first key (a stream was created) and a warm dispatcher signed
    ssf = hub.clients_for("SsfFunction")
    SsfKeys(
        ssf.kms, ssf.dynamodb, table_name=hub.settings.table_name, data_key_id=hub.settings.data_key_id
    ).key(create=True)
    dispatch = hub.clients_for("DispatchFunction")
    warm = SsfKeys(
        dispatch.kms,
        dispatch.dynamodb,
        table_name=hub.settings.table_name,
        data_key_id=hub.settings.data_key_id,
        now=clock,
    )
    before = warm.sign(claims("before"))
    first = jwks_from_metadata(hub, monkeypatch)
    assert verify(before, first)["jti"] == "before"
    # The hub's own keys are there too (ES256 in either mode): one JWKS for every SET.
    assert {key["alg"] for key in published(first)} == {"ES256", "RS256"}

    # WHEN an operator rotates the SSF key, to sign in 10 minutes
    rotate(hub, clock, "--activate-in", "600")
    # THEN the new key is published at once, and does not sign before cached JWKS have expired
    rotated = jwks_from_metadata(hub, monkeypatch)
    assert verify(before, rotated)["jti"] == "before"
    ssf_kids = {key["kid"] for key in published(rotated) if key["alg"] == "RS256"}
    assert len(ssf_kids) == 2
    states = [line.split()[-1] for line in signing_key(hub, clock, "show").splitlines()[1:]]
    assert states == ["next", "signing"]
    clock.at += REFRESH_SECONDS  # the warm dispatcher reads the ring again
    assert kid(warm.sign(claims("meanwhile"))) == kid(before)

    # WHEN the new key's time comes
    clock.at += 600 - REFRESH_SECONDS
    after = warm.sign(claims("after"))
    # THEN new SETs carry the new key's kid, and both verify with the JWKS of the metadata
    assert kid(after) != kid(before)
    assert kid(after) in ssf_kids
    latest = jwks_from_metadata(hub, monkeypatch)
    assert verify(after, latest)["jti"] == "after"
    assert verify(before, latest)["jti"] == "before"  # a retried or queued SET signed before


def test_a_key_stored_before_rotation_existed_keeps_signing_and_rotates(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the one-key item of before (kid, jwk, wrapped), as a stack deployed earlier has it
    ssf = hub.clients_for("SsfFunction")
    keys = SsfKeys(
        ssf.kms, ssf.dynamodb, table_name=hub.settings.table_name, data_key_id=hub.settings.data_key_id
    )
    key = keys.key(create=True)
    table = hub.settings.table_name
    hub.clients.dynamodb.put_item(
        TableName=table,
        Item={
            "pk": {"S": "SIGNING"},
            "sk": {"S": "SSFKEY"},
            "kid": {"S": key.kid},
            "jwk": {"S": json.dumps(dict(key.jwk))},
            "wrapped": {"B": key.wrapped or b""},
        },
    )
    clock = Clock()
    dispatch = hub.clients_for("DispatchFunction")
    signer = SsfKeys(
        dispatch.kms, dispatch.dynamodb, table_name=table, data_key_id=hub.settings.data_key_id, now=clock
    )
    old = signer.sign(claims("old"))
    assert kid(old) == key.kid
    # WHEN it is rotated (to sign at once)
    rotate(hub, clock, "--activate-in", "0")
    clock.at += REFRESH_SECONDS
    new = signer.sign(claims("new"))
    # THEN both verify with the hub's JWKS
    keys_now = jwks_from_metadata(hub, monkeypatch)
    assert kid(new) != key.kid
    assert verify(old, keys_now)["jti"] == "old"
    assert verify(new, keys_now)["jti"] == "new"


def test_kms_mode_signs_ssf_sets_with_kms_and_a_slot_flip_rotates_the_key(
    kms_hub: Hub,
    kms_prefix: str,
    moto_endpoint: str,
    template: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub, clock = kms_hub, Clock()
    kms = hub.clients.kms
    slot_a = hub.provisioned.key_ids["SsfSigningKey"]
    # GIVEN the deploy recorded the SSF KMS key: the SSF function (no Encrypt in kms mode) finds
    # it, and the ring holds no private key at all
    ssf = hub.clients_for("SsfFunction")
    SsfKeys(
        ssf.kms, ssf.dynamodb, table_name=hub.settings.table_name, data_key_id=hub.settings.data_key_id
    ).ensure()
    item = hub.clients.dynamodb.get_item(TableName=hub.settings.table_name, Key=ITEM_KEY)["Item"]  # type: ignore[arg-type]
    assert [entry["M"]["kid"]["S"] for entry in item["keys"]["L"]] == [kms_kid(kms, slot_a)]
    assert not [entry for entry in item["keys"]["L"] if "wrapped" in entry["M"]]

    # WHEN a warm dispatcher signs a SET
    warm = dispatcher(hub, clock)
    before = warm.sign(claims("before"))
    # THEN KMS signed it (the kid is the KMS key's thumbprint) and it verifies with the metadata's JWKS
    assert kid(before) == kms_kid(kms, slot_a)
    first = jwks_from_metadata(hub, monkeypatch)
    assert verify(before, first)["jti"] == "before"
    assert {key["alg"] for key in published(first)} == {"ES256", "RS256"}
    # ...and the wrapped-key command refuses: a wrapped key would take the signing out of KMS
    with pytest.raises(ConfigurationError, match="KMS key"):
        rotate(hub, clock, "--activate-in", "0")

    # WHEN the stack is deployed with the other slot (sethub signing-keys rotate)
    rotated = deploy(moto_endpoint, template, kms_prefix, SigningMode="kms", SigningKeySlot="b")
    try:
        slot_b = rotated.provisioned.key_ids["SsfSigningKeyB"]
        clock.at = time.time() + REFRESH_SECONDS  # a dispatcher reads the ring again within this
        after = dispatcher(rotated, clock).sign(claims("after"))
        # THEN the new KMS key signs, and both SETs verify with the metadata's JWKS
        assert kid(after) == kms_kid(kms, slot_b) != kid(before)
        latest = jwks_from_metadata(rotated, monkeypatch)
        assert verify(after, latest)["jti"] == "after"
        assert verify(before, latest)["jti"] == "before"  # a retried or queued SET signed before
    finally:
        rotated.close()


def test_a_stack_leaving_kms_mode_signs_with_a_wrapped_key_and_keeps_the_kms_key_published(
    kms_hub: Hub,
    kms_prefix: str,
    moto_endpoint: str,
    template: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub, clock = kms_hub, Clock()
    before = dispatcher(hub, clock).sign(claims("before"))
    for name, value in hub.env_for("KeyRingFunction").items():
        monkeypatch.setenv(name, value)
    keyring = hub.function("KeyRingFunction")
    active = hub.clients.kms.describe_key(KeyId=hub.provisioned.key_ids["SsfSigningKey"])["KeyMetadata"][
        "Arn"
    ]
    properties = {"TableName": hub.settings.table_name, "KeyId": active}
    physical_id = f"{hub.settings.table_name}/ssf-kms-signing-key"
    with cfn_responses() as cfn:
        # A re-deploy that keeps the slot changes nothing; a key its role may not read fails
        # (and is answered); then the stack leaves kms mode: CloudFormation deletes the resource.
        for kind, changed in (("Update", {}), ("Update", {"KeyId": other_key(hub)}), ("Delete", {})):
            event = cfn.event(kind, {**properties, **changed}, physical_id)
            keyring.invoke({**event, "ResourceType": "Custom::SsfSigningKey"})
    same, refused, deleted = cfn.received
    assert (same["Status"], same["Data"], same["PhysicalResourceId"]) == (
        "SUCCESS",
        {"Kid": kid(before)},
        physical_id,
    )
    assert refused["Status"] == "FAILED"
    assert "AccessDenied" in refused["Reason"]
    assert deleted["Status"] == "SUCCESS"

    # WHEN the stack runs in wrapped mode: the SSF function's next request makes a wrapped key
    wrapped = deploy(moto_endpoint, template, kms_prefix, SigningMode="wrapped")
    try:
        jwks = jwks_from_metadata(wrapped, monkeypatch)
        after = dispatcher(wrapped, clock).sign(claims("after"))
        # THEN dispatch signs with the wrapped key, and the KMS-signed SET still verifies
        assert kid(after) != kid(before)
        assert verify(after, jwks)["jti"] == "after"
        assert verify(before, jwks)["jti"] == "before"
    finally:
        wrapped.close()


def other_key(hub: Hub) -> str:
    created = hub.clients.kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    return created["KeyMetadata"]["Arn"]
