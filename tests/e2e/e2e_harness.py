"""The e2e harness: the local stack (``python -m devstack``) as a subprocess on free ports.

``start_local_stack(**env)`` starts one with extra environment variables (settings such
as ``SETHUB_OPEN_TOPICS="true"``) and waits for ``/health``; ``moto_endpoint=`` and
``prefix=`` attach it to an existing moto server instead of its embedded one (so a
test can kill a stack and start another on the same queues). ``local_stack`` is one
started with the defaults. Every stack started is stopped at the end of the test.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from devstack.provision import Provisioned, provision
from devstack.sam import bridge_address
from devstack.template import load_template
from sethub.clients import AwsClients, new_session
from sethub.settings import Settings
from sethub.store import SubscriptionStore

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_ENV = "SETHUB_LOCAL_FUNCTIONS"
FUNCTIONS_MODE = os.environ.get(FUNCTIONS_ENV) or "process"
"""How the stacks under test run their functions; ``make test-sam`` sets ``sam``."""
# Deadlines, not waits: a loaded machine starts slowly, and in sam mode a stack builds (when
# the sources changed) and starts a container per function.
START_DEADLINE_SECONDS = 300.0 if FUNCTIONS_MODE == "sam" else 90.0
# In sam mode each function's first invocation creates its container (and, when the layer
# changed since the last run, sam's image of it), and the emulator runs one invocation per
# function at a time: the same deadlines, stretched.
TIME_SCALE = 6.0 if FUNCTIONS_MODE == "sam" else 1.0
# In sam mode stopping includes the emulator's containers.
STOP_DEADLINE_SECONDS = 60.0 if FUNCTIONS_MODE == "sam" else 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@functools.cache
def callback_host() -> str:
    """Where test subscribers listen: an address the stack's functions reach (in sam mode
    they run in containers on Docker's bridge, so the bridge's address, as the banner says)."""
    if FUNCTIONS_MODE == "sam":
        return bridge_address()
    return "127.0.0.1"


def http(
    method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request; any status (4xx/5xx included) is returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10 * TIME_SCALE) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def wait_for(condition: Callable[[], Any], *, timeout: float, message: str) -> Any:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout`` seconds
    (times ``TIME_SCALE``)."""
    timeout *= TIME_SCALE
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s: {message}")
        time.sleep(0.05)


@functools.cache
def moto_clients(endpoint: str) -> AwsClients:
    """Clients of the moto at ``endpoint``, built once per test process: ``subscribe`` polls
    through them every 50 ms, and four clients cost ~25 ms of CPU to build (they are thread-safe)."""
    session = boto3.Session(
        botocore_session=new_session(),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    return AwsClients(
        None,
        **{
            name: session.client(name, endpoint_url=endpoint)  # type: ignore[call-overload]
            for name in ("sqs", "dynamodb", "kms", "secretsmanager")
        },
    )


@dataclass
class LocalStackProcess:
    """A running ``python -m devstack`` and what a test needs to talk to it."""

    process: subprocess.Popen[bytes]
    base_url: str
    api_key: str
    env: dict[str, str]
    moto_endpoint: str
    prefix: str
    log_path: Path
    _provisioned: Provisioned | None = field(default=None, repr=False)

    @property
    def hub_url(self) -> str:
        return f"{self.base_url}/hub"

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def clients(self) -> AwsClients:
        """boto3 clients pointed at this stack's moto, for assertions."""
        return moto_clients(self.moto_endpoint)

    @property
    def provisioned(self) -> Provisioned:
        """The stack's resources (provisioning the same prefix again only looks them up)."""
        if self._provisioned is None:
            self._provisioned = provision(
                load_template(ROOT / "template.yaml"),
                endpoint_url=self.moto_endpoint,
                prefix=self.prefix,
                api_key=self.api_key,
            )
        return self._provisioned

    def active_callbacks(self, topic: str) -> list[str]:
        """Callbacks with a verified, unexpired subscription to ``topic``, as the hub sees them."""
        settings = Settings.from_env(self.provisioned.env_for("DispatchFunction"))
        subscriptions, _ = SubscriptionStore(self.clients, settings).list_active(topic, now=time.time())
        return [subscription.callback for subscription in subscriptions]

    def subscribe(self, topic: str, callback: str, *, register: bool = True, **extra: str) -> None:
        """Subscribe ``callback`` to ``topic`` (registering it first) and wait until it is verified."""
        if register:
            assert self.hub(**{"hub.mode": "register", "hub.topic": topic})[0] == 200
        status, body = self.hub(
            **{"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": callback}, **extra
        )
        assert (status, body) == (202, b"hub.mode=accepted")
        wait_for(lambda: callback in self.active_callbacks(topic), timeout=20, message=f"{callback} verified")

    def request(
        self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        return http(method, f"{self.base_url}{path}", body=body, headers=headers)

    def publish(self, *events: dict[str, Any]) -> list[str]:
        """POST /events with the API key; the accepted jtis."""
        status, _, body = self.request(
            "POST",
            "/events",
            body=json.dumps({"events": list(events)}).encode(),
            headers={"x-api-key": self.api_key, "Content-Type": "application/json"},
        )
        assert status == 202, body
        return [item["jti"] for item in json.loads(body)["accepted"]]

    def hub(self, **params: str) -> tuple[int, bytes]:
        """POST /hub with form parameters and the API key."""
        status, _, body = self.request(
            "POST",
            "/hub",
            body=urlencode(params).encode(),
            headers={"x-api-key": self.api_key, "Content-Type": "application/x-www-form-urlencoded"},
        )
        return status, body

    def stop(self) -> int:
        """Ctrl-C, and wait for the process to exit; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"devstack did not stop within {STOP_DEADLINE_SECONDS}s of Ctrl-C")
        return int(self.process.returncode)

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, like a crashed Lambda host."""
        self.process.kill()
        self.process.wait()


StartLocalStack = Callable[..., LocalStackProcess]


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    # The child builds its own AWS environment; inherited test settings must not leak in.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "SETHUB_", "POWERTOOLS_")) and name not in ("PORT", "MOTO_PORT")
    }
    env.update(extra)
    return env
