"""Shared fixtures: one moto server per test session, and a freshly provisioned hub per test.

``moto_endpoint`` points boto3 at an in-process moto server (``AWS_ENDPOINT_URL``), with a
region and fake credentials, for the whole session. ``hub`` creates template.yaml's
queues, table, keys and secret in it under a fresh prefix, so every test gets an
isolated hub: ``hub.settings``, ``hub.clients`` (the test's own, straight to moto), ``hub.env``
(the functions' environment) and ``hub.provisioned`` (queue URLs by logical id, event sources,
routes). ``hub.function(name)`` loads a handler that runs with its role's authorising AWS
endpoint (``hub.endpoint_for(name)``), so every AWS call it makes is checked as AWS would.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from authorized import AuthorizedFunction
from moto.server import ThreadedMotoServer

from devstack.awsgate import AuthorizingEndpoint, endpoint_for
from devstack.credentials import seed_local_keys
from devstack.functions import load_function
from devstack.provision import Provisioned, provision
from devstack.template import load_template
from sethub.clients import DEFAULT_CONFIG, AwsClients
from sethub.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"

# What the local stack runs with: subscribers on 127.0.0.1 over plain http.
LOCAL_OVERRIDES = {
    "SETHUB_ALLOW_PRIVATE_CALLBACKS": "true",
    "SETHUB_ALLOW_HTTP_CALLBACKS": "true",
    "SETHUB_PUBLIC_URL": "http://127.0.0.1:3000",
}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The URL of a moto server on 127.0.0.1, with boto3's environment pointed at it."""
    # moto logs every call through werkzeug at INFO: too much noise in test reports.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", url)
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.delenv("AWS_PROFILE", raising=False)
        patch.delenv("AWS_SESSION_TOKEN", raising=False)
        yield url
    server.stop()


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """template.yaml, with its short tags in their long form."""
    return load_template(TEMPLATE)


class DirectClients(AwsClients):
    """The test's own clients: straight to moto, whatever endpoint a function runs with."""

    def __init__(self, endpoint_url: str, **overrides: Any) -> None:
        super().__init__(**overrides)
        self._endpoint_url = endpoint_url

    def _client(self, service: str) -> Any:
        if service in self._overrides:
            return self._overrides[service]
        return boto3.Session().client(service, endpoint_url=self._endpoint_url, config=DEFAULT_CONFIG)  # type: ignore[call-overload]


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


@pytest.fixture
def hub(moto_endpoint: str, template: dict[str, Any]) -> Iterator[Hub]:
    created = build_hub(moto_endpoint, template)
    yield created
    created.close()


@pytest.fixture
def hub_factory(moto_endpoint: str) -> Iterator[Callable[[dict[str, Any]], Hub]]:
    """Hubs from edited templates (e.g. a role missing an action), closed after the test."""
    built: list[Hub] = []

    def build(template: dict[str, Any]) -> Hub:
        built.append(build_hub(moto_endpoint, template))
        return built[-1]

    yield build
    for created in built:
        created.close()
