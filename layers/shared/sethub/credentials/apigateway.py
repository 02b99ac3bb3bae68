"""API Gateway API keys in the stack's usage plan: per-key throttling and quota at the gateway.

Every hub key also exists as an API Gateway API key with the same value, attached to the
usage plan (output ``UsagePlanId``); API Gateway then throttles each key on its own and
refuses unknown keys before a function runs. The hashed table record stays the source of
truth for roles and scopes: a gateway key is only ever a copy of a live record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sethub.errors import UpstreamError, aws_error_code

APIGatewayClient = Any
"""A boto3 ``apigateway`` client (no type stubs are pinned for it)."""


class GatewayKeys:
    """Creates and deletes the API Gateway copy of a key in one usage plan."""

    def __init__(self, apigateway: APIGatewayClient, usage_plan_id: str) -> None:
        self._api = apigateway
        self._plan = usage_plan_id

    def add(self, value: str, *, name: str, description: str) -> str:
        """Create the API key and attach it to the usage plan; returns its id."""
        try:
            key_id: str = self._api.create_api_key(
                name=name, description=description, enabled=True, value=value
            )["id"]
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"API Gateway could not create the API key: {aws_error_code(exc)}") from exc
        try:
            self._api.create_usage_plan_key(usagePlanId=self._plan, keyId=key_id, keyType="API_KEY")
        except (ClientError, BotoCoreError) as exc:
            self.remove(key_id)  # no orphan key outside the plan
            raise UpstreamError(
                f"API Gateway could not add the key to the usage plan: {aws_error_code(exc)}"
            ) from exc
        return key_id

    def remove(self, gateway_key_id: str) -> None:
        """Take the key out of the usage plan and delete it; gone already is fine."""
        self._call(
            "take the API key out of the usage plan",
            lambda: self._api.delete_usage_plan_key(usagePlanId=self._plan, keyId=gateway_key_id),
        )
        self._call("delete the API key", lambda: self._api.delete_api_key(apiKey=gateway_key_id))

    @staticmethod
    def _call(action: str, call: Callable[[], object]) -> None:
        try:
            call()
        except ClientError as exc:
            if aws_error_code(exc) != "NotFoundException":
                raise UpstreamError(f"API Gateway could not {action}: {aws_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise UpstreamError(f"API Gateway could not {action}: {aws_error_code(exc)}") from exc


__all__ = ["GatewayKeys"]
