"""Shared fixtures: one moto server per test session, and a freshly provisioned hub per test.

``moto_endpoint`` points boto3 at an in-process moto server (``AWS_ENDPOINT_URL``), with a
region and fake credentials, for the whole session. ``hub`` creates template.yaml's
queues, table, keys and secret in it under a fresh prefix, so every test gets an
isolated hub: ``hub.settings``, ``hub.clients``, ``hub.env`` (the functions' environment)
and ``hub.provisioned`` (queue URLs by logical id, event sources, routes).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from devstack.provision import Provisioned, provision
from devstack.template import load_template
from sethub.clients import AwsClients
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


@dataclass
class Hub:
    """An isolated hub in moto: what a deployed stack's functions would see."""

    settings: Settings
    clients: AwsClients
    env: dict[str, str]
    provisioned: Provisioned

    @property
    def api_key(self) -> str:
        return self.provisioned.api_key


@pytest.fixture
def hub(moto_endpoint: str, template: dict[str, Any]) -> Hub:
    provisioned = provision(
        template,
        endpoint_url=moto_endpoint,
        prefix=f"t{uuid.uuid4().hex[:10]}",
        overrides=LOCAL_OVERRIDES,
    )
    env = provisioned.union_env()
    return Hub(settings=Settings.from_env(env), clients=AwsClients(), env=env, provisioned=provisioned)
