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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hubs import Hub, build_hub
from moto.server import ThreadedMotoServer

from devstack.motoatomic import atomic_dynamodb_writes
from devstack.motocost import lighten_moto
from devstack.template import load_template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"

# For every moto of the test process (the session's server, in-process mocks): no unused RSA
# key per hub's data key, no listdir per request (devstack.motocost); DynamoDB writes applied
# one at a time, as DynamoDB does (devstack.motoatomic).
lighten_moto()
atomic_dynamodb_writes()


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


@pytest.fixture
def fresh_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test's requests through GuardedHttp get a deadline watchdog of their own (its thread
    starts with the first one): no other test's requests share its heap, and mutation testing
    sees the watchdog's loop run in each test that relies on it, not only in the first test of
    the process, which started the shared one."""
    from sethub import outbound  # noqa: PLC0415

    monkeypatch.setattr(outbound, "_WATCHDOG", outbound._Watchdog())


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """template.yaml, with its short tags in their long form."""
    return load_template(TEMPLATE)


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
