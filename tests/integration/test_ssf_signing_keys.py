"""The SSF signing keys on moto, in both signing modes: the metadata's ``jwks_uri`` is the
hub's one JWKS, which publishes the SSF streams' RS256 keys beside the hub's own, and a
receiver that verifies with it (jwcrypto, an independent JOSE library) keeps verifying
across a rotation: SETs signed before it and SETs signed after it alike.

The metadata and the JWKS are read through the SSF and WebSub functions' handlers (each
with its role), the SETs are signed by the dispatcher's code with the dispatch role, and
the rotation is ``sethub ssf signing-key rotate`` as an operator runs it.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from hubs import LOCAL_OVERRIDES, DirectClients, Hub
from jwcrypto import jwk, jws

from devstack.gateway import proxy_event
from devstack.provision import provision
from sethub.cli import parser
from sethub.cli.context import Context
from sethub.cli.target import CliClients
from sethub.settings import Settings
from sethub.ssf.keys import REFRESH_SECONDS, SsfKeys

VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"


class Clock:
    def __init__(self) -> None:
        self.at = time.time()

    def __call__(self) -> float:
        return self.at


@pytest.fixture(params=["wrapped", "kms"])
def any_hub(request: pytest.FixtureRequest, moto_endpoint: str, template: dict[str, Any]) -> Iterator[Hub]:
    """A hub in either signing mode (its first hub key made as the deploy makes it)."""
    stack = provision(
        template,
        endpoint_url=moto_endpoint,
        prefix=f"t{uuid.uuid4().hex[:10]}",
        parameters={"SigningMode": request.param},
        overrides=LOCAL_OVERRIDES,
    )
    env = stack.union_env()
    created = Hub(
        settings=Settings.from_env(env), clients=DirectClients(moto_endpoint), env=env, provisioned=stack
    )
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
    """``sethub ssf signing-key ARGS`` as an operator runs it (admin credentials), at the clock's time."""
    out = io.StringIO()
    arguments = parser().parse_args(["ssf", "signing-key", *args])
    context = Context(
        args=arguments,
        clients=CliClients(),  # at moto, as every boto3 client of the fixture (AWS_ENDPOINT_URL)
        env={"SETHUB_TABLE_NAME": hub.settings.table_name, "SETHUB_DATA_KEY_ID": hub.settings.data_key_id},
        out=out,
        err=io.StringIO(),
        stdin=io.StringIO(),
        now=clock,
    )
    assert arguments.run(context) == 0
    return out.getvalue()


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


def test_receivers_verify_with_the_metadata_jwks_across_a_rotation(
    any_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = any_hub
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
