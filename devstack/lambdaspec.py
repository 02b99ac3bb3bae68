"""A function as the template declares it, and the local account: what a worker process needs.

Kept apart from devstack.provision so that a worker (one per function, each a fresh
interpreter) does not import boto3, YAML and the IAM rules only the stack itself uses.
"""

from __future__ import annotations

from dataclasses import dataclass

ACCOUNT_ID = "123456789012"


@dataclass(frozen=True)
class FunctionSpec:
    """A function as the template declares it (Globals merged in)."""

    logical_id: str
    code_uri: str
    handler: str
    timeout: int
    memory_size: int
    environment: dict[str, str]
