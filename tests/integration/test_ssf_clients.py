"""``sethub ssf receivers`` on moto: a created receiver gets tokens from the SSF function's
code (called with SsfFunction's role), and deleting it revokes them at once."""

from __future__ import annotations

import base64

import pytest
from operator_cli import run_cli, table_rows

from sethub.ssf.auth import Authority, InvalidTokenError, TokenError
from sethub.ssf.store import SsfStore


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def test_created_receiver_gets_tokens_until_deleted(hub) -> None:
    def receivers(*argv: str) -> tuple[int, str, str]:
        return run_cli(["ssf", "receivers", *argv, "--table", hub.settings.table_name], clients=hub.clients)

    code, out, _ = receivers("create", "acme-siem", "--scope", "ssf.read")
    assert code == 0
    secret = out.split("client_secret", 1)[1].split()[0]
    assert receivers("create", "acme-siem")[0] == 1  # taken

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

    code, listed, _ = receivers("list")
    assert code == 0
    assert [row[:2] for row in table_rows(listed)[1:]] == [["acme-siem", "ssf.read"]]
    assert secret not in listed
    assert receivers("delete", "acme-siem")[0] == 0
    with pytest.raises(InvalidTokenError):
        authority.authenticate(bearer, now=1001)
