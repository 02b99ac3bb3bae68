"""What the two HTTP-facing functions share: the API key check and the hub's own URLs."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sethub.clients import AwsClients
from sethub.errors import BadRequestError
from sethub.settings import Settings

if TYPE_CHECKING:
    from sethub.credentials.checker import KeyChecker


def key_checker(clients: AwsClients, settings: Settings) -> KeyChecker:
    """The container's check of ``x-api-key``: keys with roles in the hub table (``sethub.credentials``)."""
    # Imported here: the SSF function shares this module's URL helpers but checks no API
    # keys, and sethub.credentials is six modules of its cold start.
    from sethub.credentials.checker import KeyChecker  # noqa: PLC0415
    from sethub.credentials.dynamodb import DynamoDBCredentialStore  # noqa: PLC0415

    return KeyChecker(DynamoDBCredentialStore(clients, settings.table_name), ttl=settings.key_cache_seconds)


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A request header by case-insensitive name (API Gateway keeps the caller's case)."""
    if not headers:
        return None
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def base_url(event: Mapping[str, Any], settings: Settings) -> str:
    """The API's public base URL: ``SETHUB_PUBLIC_URL`` if set, else from the request context.

    A function cannot reference its own API's URL in the template without a circular
    dependency, so the handlers learn it from each request and pass it along.
    """
    if settings.public_url:
        return settings.public_url
    context = event.get("requestContext") or {}
    domain = context.get("domainName") or header(event.get("headers"), "host") or "localhost"
    stage = context.get("stage") or ""
    scheme = "http" if domain.startswith(("127.0.0.1", "localhost")) else "https"
    # On the execute-api domain the stage is part of the path; on a custom domain it is not.
    prefix = f"/{stage}" if stage and ".execute-api." in domain else ""
    return f"{scheme}://{domain}{prefix}"


def hub_url(base: str) -> str:
    return f"{base}/hub"


def issuer(base: str, settings: Settings) -> str:
    """The default SET ``iss``: ``SETHUB_ISSUER``, else the API's base URL."""
    return settings.issuer or base


def request_body(body: str | None, *, is_base64_encoded: bool) -> bytes:
    """The raw bytes of an API Gateway proxy event's body."""
    raw = body or ""
    if is_base64_encoded:
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequestError("request body is not valid base64") from None
    return raw.encode("utf-8")
