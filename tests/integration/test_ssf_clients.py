"""python -m sethub.ssf.clients on moto: a created receiver gets tokens from the SSF
function's code (called with SsfFunction's role), and deleting it revokes them at once."""

from __future__ import annotations

import base64
import io

import pytest

from sethub.ssf.auth import Authority, InvalidTokenError, TokenError
from sethub.ssf.clients import main
from sethub.ssf.store import SsfStore


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def test_created_receiver_gets_tokens_until_deleted(hub) -> None:
    out = io.StringIO()
    table = ["--table", hub.settings.table_name]
    assert main(["create", "acme-siem", "--scope", "ssf.read", *table], clients=hub.clients, out=out) == 0
    secret = out.getvalue().split("client_secret", 1)[1].split()[0]
    assert main(["create", "acme-siem", *table], clients=hub.clients, out=io.StringIO()) == 1  # taken

    authority = Authority(SsfStore(hub.clients_for("SsfFunction").dynamodb, hub.settings.table_name))
    answer = authority.issue(_basic("acme-siem", secret), b"grant_type=client_credentials", now=1000)
    assert answer["scope"] == "ssf.read"
    bearer = {"Authorization": f"Bearer {answer['access_token']}"}
    assert authority.authenticate(bearer, now=1001).client_id == "acme-siem"
    with pytest.raises(InvalidTokenError):
        authority.authenticate(bearer, now=1000 + 3600)  # expired after 60 minutes
    with pytest.raises(TokenError):
        authority.issue(
            _basic("acme-siem", secret), b"grant_type=client_credentials&scope=ssf.manage", now=1000
        )

    listed = io.StringIO()
    assert main(["list", *table], clients=hub.clients, out=listed) == 0
    assert "acme-siem\tssf.read" in listed.getvalue()
    assert secret not in listed.getvalue()
    assert main(["delete", "acme-siem", *table], clients=hub.clients, out=io.StringIO()) == 0
    with pytest.raises(InvalidTokenError):
        authority.authenticate(bearer, now=1001)
