"""An isolated hub in the test session's moto server, and the clients tests use on it.

Shared by tests/conftest.py's fixtures and the test modules that build hubs themselves (a
module named after what it holds: ``conftest`` is ambiguous with two test roots in one run).
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from authorized import AuthorizedFunction

from devstack.awsgate import AuthorizingEndpoint, endpoint_for
from devstack.credentials import seed_local_keys
from devstack.functions import load_function
from devstack.gateway import proxy_event
from devstack.provision import Provisioned, provision
from devstack.ssf import seed_ssf_clients
from sethub.cli import parser
from sethub.cli.context import Context
from sethub.cli.target import CliClients
from sethub.clients import DEFAULT_CONFIG, AwsClients, new_session
from sethub.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

# What the local stack runs with: subscribers on 127.0.0.1 over plain http.
LOCAL_OVERRIDES = {
    "SETHUB_ALLOW_PRIVATE_CALLBACKS": "true",
    "SETHUB_ALLOW_HTTP_CALLBACKS": "true",
    "SETHUB_PUBLIC_URL": "http://127.0.0.1:3000",
}


@cache
def _client_at(service: str, endpoint_url: str) -> Any:
    """One client per service and endpoint for the whole test process: the hubs of a session
    share one moto, and a client costs ~20 ms of CPU to build (clients are thread-safe)."""
    return new_session().create_client(service, endpoint_url=endpoint_url, config=DEFAULT_CONFIG)


class DirectClients(AwsClients):
    """The test's own clients: straight to moto, whatever endpoint a function runs with."""

    def __init__(self, endpoint_url: str, **overrides: Any) -> None:
        super().__init__(**overrides)
        self._endpoint_url = endpoint_url

    def _client(self, service: str) -> Any:
        if service in self._overrides:
            return self._overrides[service]
        return _client_at(service, self._endpoint_url)


@dataclass
class Hub:
    """An isolated hub in moto: what a deployed stack's functions would see."""

    settings: Settings
    clients: AwsClients
    env: dict[str, str]
    provisioned: Provisioned
    endpoints: dict[str, AuthorizingEndpoint] = field(default_factory=dict)

    @property
    def api_key(self) -> str:
        return self.provisioned.api_key

    def endpoint_for(self, function: str) -> AuthorizingEndpoint:
        """``function``'s AWS endpoint, applying its role (started on first use, stopped with the hub)."""
        if function not in self.endpoints:
            self.endpoints[function] = endpoint_for(self.provisioned, function).start()
        return self.endpoints[function]

    def env_for(self, function: str) -> dict[str, str]:
        """``function``'s environment, its AWS calls going through its role's endpoint."""
        return {**self.provisioned.env_for(function), "AWS_ENDPOINT_URL": self.endpoint_for(function).url}

    def clients_for(self, function: str, **overrides: Any) -> AwsClients:
        """Clients that call AWS as ``function`` does, through its role's endpoint."""
        return DirectClients(self.endpoint_for(function).url, **overrides)

    def function(self, name: str) -> AuthorizedFunction:
        """The handler of function ``name``, loaded in-process, invoked with its role applied."""
        spec = self.provisioned.functions[name]
        return AuthorizedFunction(load_function(spec, ROOT, self.provisioned.region), self.endpoint_for(name))

    def close(self) -> None:
        for endpoint in self.endpoints.values():
            endpoint.stop()
        self.endpoints.clear()


def build_hub(moto_endpoint: str, template: dict[str, Any]) -> Hub:
    """A hub provisioned from ``template`` under a fresh prefix (close it when done)."""
    provisioned = provision(
        template,
        endpoint_url=moto_endpoint,
        prefix=f"t{uuid.uuid4().hex[:10]}",
        overrides=LOCAL_OVERRIDES,
    )
    # The local keys of DESIGN.md (admin local-dev-key, publisher, subscriber), as the stack seeds them.
    seed_local_keys(provisioned, {})
    env = provisioned.union_env()
    return Hub(
        settings=Settings.from_env(env),
        clients=DirectClients(moto_endpoint),
        env=env,
        provisioned=provisioned,
    )


def operator_command(hub: Hub, clock: Callable[[], float], *argv: str) -> str:
    """``sethub ARGV`` as an operator runs it (admin credentials) against ``hub``, at the
    clock's time; its output (it must succeed)."""
    out = io.StringIO()
    arguments = parser().parse_args(list(argv))
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


def local_receiver_token(hub: Hub, scope: str) -> str:
    """An access token of the local SSF receiver (``devstack.ssf``), from the SSF function's
    token endpoint as a receiver gets one (client credentials)."""
    seed_ssf_clients(hub.provisioned, {})
    basic = base64.b64encode(b"local-ssf-receiver:local-ssf-secret").decode()
    token = hub.function("SsfFunction").invoke(
        proxy_event(
            resource="/oauth2/token",
            method="POST",
            headers=[
                ("Authorization", f"Basic {basic}"),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body=f"grant_type=client_credentials&scope={scope}".encode(),
        )
    )
    assert token["statusCode"] == 200, token["body"]
    access: str = json.loads(token["body"])["access_token"]
    return access
