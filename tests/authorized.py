"""Handlers run in-process with their own role applied to every AWS call they make.

Each function has an ``AuthorizingEndpoint`` (devstack.awsgate) that applies its role of the
SAM-transformed template; an ``AuthorizedFunction`` invokes its handler with
``AWS_ENDPOINT_URL`` pointing there. The handlers build their clients once per ``AWS_*``
environment (``sethub.runtime``), so each function gets clients bound to its own endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from devstack.awsgate import AuthorizingEndpoint
from devstack.functions import LocalFunction
from devstack.provision import FunctionSpec


@contextmanager
def aws_endpoint(url: str) -> Iterator[None]:
    """For the block, boto3 clients created in this process call ``url``."""
    before = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = url
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = before


@dataclass(frozen=True)
class AuthorizedFunction:
    """A loaded handler whose invocations call AWS through its function's authorising endpoint."""

    local: LocalFunction
    endpoint: AuthorizingEndpoint

    @property
    def handler(self) -> Any:
        return self.local.handler

    @property
    def spec(self) -> FunctionSpec:
        return self.local.spec

    def invoke(self, event: dict[str, Any]) -> Any:
        with aws_endpoint(self.endpoint.url):
            return self.local.invoke(event)
