"""Receivers' OAuth 2.0 client credentials and the bearer tokens they buy (RFC 6749 4.4, RFC 6750).

The hub is its own authorization server: ``POST /oauth2/token`` with
``grant_type=client_credentials`` and the client's id and secret (HTTP Basic or form
fields) answers an access token valid for ``TOKEN_SECONDS`` (at most 60 minutes, CAEP
interoperability profile 2.7.1). Tokens are 256 random bits, stored only as their
SHA-256 with their client, scopes and expiry: checking one is a read, and deleting the
receiver revokes its tokens at once (every check also reads the receiver). Client
secrets are stored the same way (``sethub ssf receivers create`` makes them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from sethub.errors import BadRequestError, ForbiddenError, UnauthorizedError
from sethub.ssf.store import ClientRecord, SsfStore, TokenRecord

READ = "ssf.read"
MANAGE = "ssf.manage"
SCOPES = frozenset((READ, MANAGE))
TOKEN_SECONDS = 3600
MAX_TOKEN_CHARS = 512
MAX_CLIENT_ID_CHARS = 128
MAX_SECRET_CHARS = 512


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class TokenError(BadRequestError):
    """An RFC 6749 5.2 error of the token endpoint: ``error`` is its code."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.status = status


@dataclass(frozen=True)
class Receiver:
    """The authenticated caller of the SSF endpoints."""

    client_id: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        # ssf.manage includes reading: a receiver that may change a stream may read it.
        if scope not in self.scopes and not (scope == READ and MANAGE in self.scopes):
            raise InsufficientScopeError(f"this request needs the {scope} scope")


class InvalidTokenError(UnauthorizedError):
    """401 with ``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750 3.1)."""


class InsufficientScopeError(ForbiddenError):
    """403 with ``WWW-Authenticate: Bearer error="insufficient_scope"``."""


def _client_credentials(headers: Mapping[str, str], form: Mapping[str, str]) -> tuple[str, str]:
    authorization = next((value for name, value in headers.items() if name.lower() == "authorization"), "")
    if authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise TokenError("invalid_client", "malformed HTTP Basic credentials", status=401) from None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise TokenError("invalid_client", "malformed HTTP Basic credentials", status=401)
        # RFC 6749 2.3.1: both parts are form-urlencoded before Basic encoding.
        return unquote(client_id), unquote(secret)
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if not client_id or not secret:
        raise TokenError("invalid_client", "client authentication is required", status=401)
    return client_id, secret


def parse_form(body: bytes) -> dict[str, str]:
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise TokenError("invalid_request", "the body must be application/x-www-form-urlencoded") from None
    return {name: values[0] for name, values in fields.items()}


class Authority:
    """Issues and checks access tokens; one per container."""

    def __init__(self, store: SsfStore) -> None:
        self._store = store

    def issue(self, headers: Mapping[str, str], body: bytes, *, now: int) -> dict[str, object]:
        """The token endpoint's answer for a client-credentials request, or a ``TokenError``."""
        form = parse_form(body)
        client_id, secret = _client_credentials(headers, form)
        if form.get("grant_type") != "client_credentials":
            raise TokenError("unsupported_grant_type", "grant_type must be client_credentials")
        client = None
        if len(client_id) <= MAX_CLIENT_ID_CHARS and len(secret) <= MAX_SECRET_CHARS:
            client = self._store.get_client(client_id)
        # Compared in constant time, and a hash is computed even for an unknown client.
        expected = client.secret_hash if client else secret_hash(new_secret())
        if not hmac.compare_digest(expected, secret_hash(secret)) or client is None:
            raise TokenError("invalid_client", "unknown client or wrong secret", status=401)
        requested = frozenset(form.get("scope", "").split())
        if requested - client.scopes:
            raise TokenError("invalid_scope", "the client may not have the requested scope")
        scopes = requested or client.scopes
        token = secrets.token_urlsafe(32)
        self._store.put_token(
            secret_hash(token),
            TokenRecord(client_id=client.client_id, scopes=scopes, expires_at=now + TOKEN_SECONDS),
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_SECONDS,
            "scope": " ".join(sorted(scopes)),
        }

    def authenticate(self, headers: Mapping[str, str] | None, *, now: int) -> Receiver:
        """The receiver behind ``Authorization: Bearer``, or 401 (RFC 6750: the header only)."""
        authorization = next(
            (value for name, value in (headers or {}).items() if name.lower() == "authorization"), ""
        )
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidTokenError("a bearer access token is required (Authorization: Bearer ...)")
        record = self._store.get_token(secret_hash(token))
        if record is None or record.expires_at <= now:
            raise InvalidTokenError("the access token is invalid or expired")
        client = self._store.get_client(record.client_id)
        if client is None:
            raise InvalidTokenError("the access token's receiver no longer exists")
        return Receiver(client_id=record.client_id, scopes=record.scopes & client.scopes)


def parse_clients(value: str) -> list[tuple[str, str]]:
    """``id:secret`` pairs, comma-separated (``SETHUB_LOCAL_SSF_CLIENTS``)."""
    pairs = []
    for part in value.split(","):
        client_id, sep, secret = part.strip().partition(":")
        if sep and client_id and secret:
            pairs.append((client_id, secret))
    return pairs


def client_record(
    client_id: str, secret: str, *, scopes: frozenset[str] = SCOPES, name: str = "", now: int = 0
) -> ClientRecord:
    if (
        not client_id
        or len(client_id) > MAX_CLIENT_ID_CHARS
        or any(ord(c) < 0x21 or c in ":,\x7f" for c in client_id)
    ):
        raise BadRequestError(
            f"a client id is 1 to {MAX_CLIENT_ID_CHARS} printable characters, no ':' or ','"
        )
    unknown = scopes - SCOPES
    if unknown:
        raise BadRequestError(f"unknown scope {sorted(unknown)[0]!r}: use {READ} and/or {MANAGE}")
    return ClientRecord(
        client_id=client_id, secret_hash=secret_hash(secret), scopes=scopes, name=name, created_at=now
    )


LOCAL_CLIENTS_ENV = "SETHUB_LOCAL_SSF_CLIENTS"
DEFAULT_LOCAL_CLIENTS = "local-ssf-receiver:local-ssf-secret"

__all__ = [
    "DEFAULT_LOCAL_CLIENTS",
    "LOCAL_CLIENTS_ENV",
    "MANAGE",
    "READ",
    "SCOPES",
    "TOKEN_SECONDS",
    "Authority",
    "InsufficientScopeError",
    "InvalidTokenError",
    "Receiver",
    "TokenError",
    "client_record",
    "new_secret",
    "parse_clients",
    "secret_hash",
]
