"""Signing key rotation under moto, in both signing modes: new SETs carry the new key's kid,
and a SET signed before the rotation still verifies against the hub's JWKS.

A retry (or a replay from the dead-letter queue) carries the JWS signed before the rotation,
so a receiver that verifies it against the JWKS after the rotation must still find its key.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import pytest
from hubs import LOCAL_OVERRIDES, DirectClients, Hub, operator_command

from devstack.gateway import proxy_event
from devstack.provision import provision
from sethub.keyring import DEFAULT_ACTIVATE_SECONDS, RingStore, WrappedSigner, signer_for
from sethub.settings import Settings
from sethub.signing import KmsSigner
from sethub.signingkeys import kms_rotation_parameters

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from mypy_boto3_kms import KMSClient

ROOT = Path(__file__).resolve().parents[2]
LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"


def claims(jti: str) -> dict[str, Any]:
    return {"iss": "https://hub.example", "jti": jti, "iat": 1764190000, "events": {LOGIN: {}}}


def verify(token: str, jwks: Mapping[str, Any]) -> dict[str, Any]:
    """What a receiver does: pick the JWKS key named by the token's kid, verify."""
    header = jwt.get_unverified_header(token)
    key = jwt.PyJWKSet.from_dict(dict(jwks))[header["kid"]]
    verified: dict[str, Any] = jwt.decode(token, key=key.key, algorithms=[header["alg"]])
    return verified


def kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def new_key(kms: KMSClient, spec: str = "ECC_NIST_P256") -> str:
    return kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]  # type: ignore[arg-type]


def provisioned_hub(moto_endpoint: str, template: dict[str, Any], parameters: dict[str, str]) -> Hub:
    stack = provision(
        template,
        endpoint_url=moto_endpoint,
        prefix=f"t{uuid.uuid4().hex[:10]}",
        parameters=parameters,
        overrides=LOCAL_OVERRIDES,
    )
    env = stack.union_env()
    return Hub(
        settings=Settings.from_env(env), clients=DirectClients(moto_endpoint), env=env, provisioned=stack
    )


@pytest.fixture
def kms_hub(moto_endpoint: str, template: dict[str, Any]) -> Iterator[Hub]:
    created = provisioned_hub(moto_endpoint, template, {"SigningMode": "kms"})
    yield created
    created.close()


def served_jwks(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """GET /.well-known/jwks.json of the hub's WebSub function, called as a receiver would."""
    for name, value in hub.env_for("WebSubFunction").items():
        monkeypatch.setenv(name, value)
    answer = hub.function("WebSubFunction").invoke(
        proxy_event(resource="/.well-known/jwks.json", method="GET", headers=[("Host", "127.0.0.1:3000")])
    )
    assert answer["statusCode"] == 200
    jwks: dict[str, Any] = json.loads(answer["body"])
    return jwks


# ---------------------------------------------------------------------------- kms mode


@pytest.mark.parametrize("new_spec", ["ECC_NIST_P256", "RSA_2048"])
def test_kms_the_first_key_signs_and_a_set_signed_by_the_retired_key_still_verifies(
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
    assert kid(fresh) == kids[0]
    assert jwt.get_unverified_header(fresh)["alg"] == ("RS256" if new_spec == "RSA_2048" else "ES256")
    assert kid(in_flight) == kids[1]
    assert verify(fresh, jwks)["jti"] == "after"
    assert verify(in_flight, jwks)["jti"] == "before"
    # ...and a receiver holding only the new key could not have verified the old SET.
    with pytest.raises(KeyError):
        verify(in_flight, {"keys": jwks["keys"][:1]})


def test_kms_a_stack_rotated_by_the_command_serves_both_keys_from_its_jwks_url(
    kms_hub: Hub, template: dict[str, Any], moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a kms-mode hub (slot a) that signed a SET still being retried
    kms = kms_hub.clients.kms
    in_flight = signer_for(kms_hub.clients, kms_hub.settings).sign(claims("before"))
    old_arn = kms.describe_key(KeyId=kms_hub.provisioned.key_ids["SigningKey"])["KeyMetadata"]["Arn"]

    # WHEN the stack is updated with the parameters the rotate command computes
    changed = kms_rotation_parameters(
        {"SigningMode": "kms", "SigningKeySlot": "a", "PreviousSigningKeyArns": ""},
        retiring_arn=old_arn,
        retired_at={},
        now=1764190000,
    )
    assert changed == {"SigningKeySlot": "b", "PreviousSigningKeyArns": old_arn}
    rotated = provisioned_hub(moto_endpoint, template, {"SigningMode": "kms", **changed})
    try:
        # THEN the template made a new key in slot b, which signs first, and both are published
        assert "SigningKey" not in rotated.provisioned.key_ids
        new_id = rotated.provisioned.key_ids["SigningKeyB"]
        for function in ("WebSubFunction", "DispatchFunction"):
            assert rotated.provisioned.env_for(function)["SETHUB_SIGNING_KEY_IDS"] == f"{new_id},{old_arn}"
        jwks = served_jwks(rotated, monkeypatch)
        # The one JWKS also publishes the SSF streams' RS256 key; the hub's keys are ES256.
        hub_keys = [key for key in jwks["keys"] if key["kty"] == "EC"]
        assert len(hub_keys) == 2
        assert verify(in_flight, jwks)["jti"] == "before"
        fresh = signer_for(rotated.clients, rotated.settings).sign(claims("after"))
        assert kid(fresh) == hub_keys[0]["kid"] != kid(in_flight)
        assert kid(in_flight) == hub_keys[1]["kid"]
        assert verify(fresh, jwks)["jti"] == "after"
    finally:
        rotated.close()


# ---------------------------------------------------------------------------- wrapped mode


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rotate_command(hub: Hub, *args: str, clock: Clock) -> str:
    """``sethub signing-keys rotate`` as an operator runs it, at the clock's time."""
    return operator_command(hub, clock, "signing-keys", "rotate", *args)


def dispatch_signer(hub: Hub, clock: Clock) -> WrappedSigner:
    """The dispatcher's signer in one container, calling AWS with the dispatch role."""
    signer = signer_for(hub.clients_for("DispatchFunction"), hub.settings, now=clock)
    assert isinstance(signer, WrappedSigner)
    return signer


@pytest.mark.parametrize("new_spec", ["ECC_NIST_P256", "RSA_2048"])
def test_wrapped_rotation_new_sets_carry_the_new_kid_and_old_ones_still_verify(
    hub: Hub, new_spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a deployed hub (the deploy made its first key) whose warm dispatcher signed a SET
    clock = Clock(time.time())  # the deploy made the first key at the real time
    warm = dispatch_signer(hub, clock)
    in_flight = warm.sign(claims("before"))
    assert [key["kid"] for key in served_jwks(hub, monkeypatch)["keys"]] == [kid(in_flight)]

    # WHEN the operator rotates (the default: the new key signs after the JWKS max-age)
    output = rotate_command(hub, "--key-spec", new_spec, clock=clock)
    ring = RingStore(hub.clients.dynamodb, hub.settings.table_name).load()
    new_kid = ring.keys[0].kid
    assert new_kid in output

    # THEN the JWKS publishes the new key at once, while the old one still signs
    jwks = served_jwks(hub, monkeypatch)
    assert [key["kid"] for key in jwks["keys"]] == [new_kid, kid(in_flight)]
    assert kid(dispatch_signer(hub, clock).sign(claims("cold, early"))) == kid(in_flight)

    # WHEN the activation time has passed
    clock.now += DEFAULT_ACTIVATE_SECONDS
    # THEN a new container signs with the new key, and the warm one after its next ring read
    fresh = dispatch_signer(hub, clock).sign(claims("after"))
    assert kid(fresh) == new_kid
    assert jwt.get_unverified_header(fresh)["alg"] == ("RS256" if new_spec == "RSA_2048" else "ES256")
    clock.now += 300
    assert kid(warm.sign(claims("warm, after"))) == new_kid
    # ...and both SETs verify against the JWKS a receiver fetches now.
    jwks = served_jwks(hub, monkeypatch)
    assert verify(fresh, jwks)["jti"] == "after"
    assert verify(in_flight, jwks)["jti"] == "before"
    # The retired key's private half is gone from the table once it can no longer sign.
    rotate_command(hub, "--activate-in", "0", clock=clock)
    ring = RingStore(hub.clients.dynamodb, hub.settings.table_name).load()
    assert [(key.kid, key.wrapped is not None) for key in ring.keys] == [
        (ring.keys[0].kid, True),
        (new_kid, False),
        (kid(in_flight), False),
    ]


def test_wrapped_a_retired_key_leaves_the_jwks_after_its_window(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(time.time())  # the deploy made the first key at the real time
    old = dispatch_signer(hub, clock).sign(claims("before"))
    rotate_command(hub, "--activate-in", "0", "--publish-days", "1", clock=clock)

    clock.now += 86400 - 1
    signer = signer_for(hub.clients_for("WebSubFunction"), hub.settings, refresh_seconds=0, now=clock)
    assert verify(old, signer.jwks())["jti"] == "before"
    clock.now += 1
    assert kid(old) not in [key["kid"] for key in signer.jwks()["keys"]]
