"""Security Event Tokens (RFC 8417): claims to bytes, and the unsigned JWS signing input.

The signature itself comes from KMS (``sethub.signing``); this module only builds the
``b64url(header).b64url(payload)`` that KMS signs and assembles the compact JWS.

Audience: a SET signed for a topic's subscribers carries ``aud`` = that topic
(``bind_audience``), so a recipient cannot replay it to another topic's subscribers:
their verifiers require their own topic as the audience.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Literal

SET_TYP = "secevent+jwt"
SET_CONTENT_TYPE = "application/secevent+jwt"
JSON_CONTENT_TYPE = "application/json"

Alg = Literal["ES256", "RS256"]


def base64url_encode(data: bytes) -> bytes:
    """RFC 7515's base64url without padding (PyJWT's own, whose import loads every JWS
    algorithm of cryptography: a fifth of the dispatch function's cold start)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def bind_audience(claims: Mapping[str, Any], topic: str) -> dict[str, Any]:
    """The claims as signed for ``topic``'s subscribers: ``aud`` names the topic (RFC 7519 4.1.3)."""
    return {**claims, "aud": topic}


def claims_json(claims: Mapping[str, Any]) -> bytes:
    """The claims as compact UTF-8 JSON: the ``json`` format's body and the JWS payload."""
    return json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()


def header(*, alg: Alg, kid: str) -> dict[str, str]:
    """The JOSE header of a SET (RFC 8417 section 2.3: explicit ``typ``; always a ``kid``)."""
    return {"alg": alg, "typ": SET_TYP, "kid": kid}


def signing_input(claims: Mapping[str, Any], *, alg: Alg, kid: str) -> bytes:
    """``b64url(header) "." b64url(payload)``: the bytes the signature covers."""
    encoded_header = base64url_encode(json.dumps(header(alg=alg, kid=kid), separators=(",", ":")).encode())
    return encoded_header + b"." + base64url_encode(claims_json(claims))


def compact(signing_input_bytes: bytes, signature: bytes) -> str:
    """The compact JWS: the signing input, a dot, and the base64url signature."""
    return (signing_input_bytes + b"." + base64url_encode(signature)).decode("ascii")


__all__ = [
    "JSON_CONTENT_TYPE",
    "SET_CONTENT_TYPE",
    "SET_TYP",
    "Alg",
    "bind_audience",
    "claims_json",
    "compact",
    "header",
    "signing_input",
]
