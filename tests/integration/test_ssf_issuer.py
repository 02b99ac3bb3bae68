"""The SSF issuer is where receivers fetch the metadata (SSF 7.2.4): the API's public base
URL. Behind a custom domain (``PublicUrl`` -> ``SETHUB_PUBLIC_URL``) that is the domain's
root, with no API Gateway stage in it, whatever ``SETHUB_ISSUER`` says for topic SETs.

Through the SSF function's handler on moto (its role applied), as a receiver calls it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hubs import Hub

from devstack.gateway import proxy_event
from sethub.ssf.auth import client_record
from sethub.ssf.store import SsfStore

PUBLIC_URL = "https://ssf.acme.example"
SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"


def call(
    hub: Hub, monkeypatch: pytest.MonkeyPatch, method: str, path: str, body: bytes = b"", **headers: str
) -> tuple[int, Any]:
    env = {
        **hub.env_for("SsfFunction"),
        "SETHUB_PUBLIC_URL": PUBLIC_URL,
        # Topic SETs' issuer, another host: SSF must not take it (its metadata is not there).
        "SETHUB_ISSUER": "https://idp.acme.example",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # As API Gateway calls it on its execute-api domain, stage Prod.
    event = proxy_event(
        resource=path,
        method=method,
        headers=[("Host", "abc123.execute-api.eu-west-1.amazonaws.com"), *headers.items()],
        body=body,
    )
    event["requestContext"]["stage"] = "Prod"
    answer = hub.function("SsfFunction").invoke(event)
    text = answer.get("body") or ""
    return answer["statusCode"], (json.loads(text) if text else None)


def test_the_issuer_is_the_public_url_in_metadata_streams_and_endpoints(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, metadata = call(hub, monkeypatch, "GET", "/.well-known/ssf-configuration")
    assert status == 200
    assert metadata["issuer"] == PUBLIC_URL
    endpoints = [value for name, value in metadata.items() if name.endswith(("_endpoint", "_uri"))]
    assert endpoints
    assert all(url.startswith(PUBLIC_URL + "/") and "/Prod/" not in url for url in endpoints)

    SsfStore(hub.clients.dynamodb, hub.settings.table_name).put_client(client_record("acme", "s3cret"))
    basic = base64.b64encode(b"acme:s3cret").decode()
    status, token = call(
        hub,
        monkeypatch,
        "POST",
        "/oauth2/token",
        b"grant_type=client_credentials",
        Authorization=f"Basic {basic}",
    )
    assert status == 200
    document = json.dumps({"events_requested": [SESSION_REVOKED]}).encode()
    status, stream = call(
        hub, monkeypatch, "POST", "/ssf/stream", document, Authorization=f"Bearer {token['access_token']}"
    )
    assert status == 201
    # Every SSF SET of the stream carries its iss (sethub.ssf.sets): the metadata issuer.
    assert stream["iss"] == metadata["issuer"]
    assert stream["delivery"]["endpoint_url"].startswith(PUBLIC_URL + "/ssf/poll?stream_id=")
