"""CAEP 1.0 event payloads checked at ingest (OpenID CAEP 1.0, sections 2 and 3).

Receivers of the CAEP interoperability profile reject a SET whose payload breaks CAEP
(the conformance suite fails a transmitter for it), and a SET cannot be fixed once it is
signed and fanned out: so the hub refuses such an event at ``POST /events``, with every
problem named, instead of delivering it. Only the event types listed in
``REQUIRED_CLAIMS`` are checked; other CAEP types (``session-established``,
``session-presented``) and unknown members of a payload pass as they are (CAEP allows
extension claims).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from sethub.catalog import CAEP_BASE

INITIATING_ENTITIES = frozenset({"admin", "user", "policy", "system"})
CREDENTIAL_TYPES = frozenset(
    {
        "password",
        "pin",
        "x509",
        "fido2-platform",
        "fido2-roaming",
        "fido-u2f",
        "verifiable-credential",
        "phone-voice",
        "phone-sms",
        "app",
    }
)
"""CAEP 1.0 3.3's list; it also allows "any other credential type supported mutually", so
any other non-empty string passes (the conformance suite only warns about those)."""
CHANGE_TYPES = frozenset({"create", "revoke", "update", "delete"})
COMPLIANCE_STATUSES = frozenset({"compliant", "not-compliant"})
CHANGE_DIRECTIONS = frozenset({"increase", "decrease"})
RISK_LEVELS = frozenset({"LOW", "MEDIUM", "HIGH"})

# BCP47 (RFC 5646) language tags, by shape: a primary subtag of 2-8 letters, then
# subtags of 1-8 letters or digits ("en", "es-410", "zh-Hant-TW", "x-private").
_LANGUAGE_TAG = re.compile(r"^(?:[A-Za-z]{2,8}|[xX])(?:-[A-Za-z0-9]{1,8})*$")

_STRING = "a non-empty string"

REQUIRED_CLAIMS: Mapping[str, tuple[str, ...]] = {
    "session-revoked": (),
    "token-claims-change": ("claims",),
    "credential-change": ("credential_type", "change_type"),
    "assurance-level-change": ("namespace", "current_level"),
    "device-compliance-change": ("previous_status", "current_status"),
    "risk-level-change": ("principal", "current_level"),
}
"""The CAEP event types checked at ingest, each with its required claims."""

# Claim -> allowed values, per event type (None: any non-empty string).
_ENUMS: Mapping[str, Mapping[str, frozenset[str] | None]] = {
    "session-revoked": {},
    "token-claims-change": {},
    "credential-change": {
        "credential_type": None,
        "change_type": CHANGE_TYPES,
        "friendly_name": None,
        "x509_issuer": None,
        "x509_serial": None,
        "fido2_aaguid": None,
    },
    "assurance-level-change": {
        "namespace": None,
        "current_level": None,
        "previous_level": None,
        "change_direction": CHANGE_DIRECTIONS,
    },
    "device-compliance-change": {
        "previous_status": COMPLIANCE_STATUSES,
        "current_status": COMPLIANCE_STATUSES,
    },
    "risk-level-change": {
        "principal": None,
        "current_level": RISK_LEVELS,
        "previous_level": RISK_LEVELS,
        "risk_reason": None,
    },
}


def caep_name(event_type: str) -> str | None:
    """The short name of a CAEP event type checked here (``session-revoked``), else None."""
    if not event_type.startswith(CAEP_BASE):
        return None
    name = event_type[len(CAEP_BASE) :]
    return name if name in REQUIRED_CLAIMS else None


def payload_problems(event_type: str, payload: Any) -> list[str]:
    """What breaks CAEP 1.0 in ``payload`` of ``event_type`` (empty: fine, or not checked here)."""
    name = caep_name(event_type)
    if name is None or not isinstance(payload, dict):
        return []
    problems = _common_problems(payload)
    problems += [f"{claim} is required" for claim in REQUIRED_CLAIMS[name] if claim not in payload]
    for claim, allowed in _ENUMS[name].items():
        if claim in payload:
            problems += _string_problems(claim, payload[claim], allowed)
    if name == "token-claims-change" and "claims" in payload:
        claims = payload["claims"]
        if not isinstance(claims, dict) or not claims:
            problems.append("claims must be a non-empty object of the changed claims")
    return [f"{name}: {problem}" for problem in problems]


def _common_problems(payload: dict[str, Any]) -> list[str]:
    """CAEP 1.0 section 2: the optional claims every CAEP event may carry."""
    problems: list[str] = []
    if "event_timestamp" in payload:
        stamp = payload["event_timestamp"]
        if (
            isinstance(stamp, bool)
            or not isinstance(stamp, int | float)
            or not math.isfinite(stamp)
            or stamp < 0
        ):
            problems.append("event_timestamp must be a non-negative number (seconds since the epoch)")
    if "initiating_entity" in payload:
        problems += _string_problems("initiating_entity", payload["initiating_entity"], INITIATING_ENTITIES)
    for claim in ("reason_admin", "reason_user"):
        if claim in payload:
            problems += _language_map_problems(claim, payload[claim])
    return problems


def _string_problems(claim: str, value: Any, allowed: frozenset[str] | None) -> list[str]:
    if not isinstance(value, str) or not value:
        return [f"{claim} must be {_STRING}"]
    if allowed is not None and value not in allowed:
        return [f"{claim} must be one of {', '.join(sorted(allowed))} (got {value[:64]!r})"]
    return []


def _language_map_problems(claim: str, value: Any) -> list[str]:
    """``reason_admin``/``reason_user``: an object of BCP47 language tag to message, at least one."""
    if not isinstance(value, dict) or not value:
        return [f'{claim} must be a non-empty object of language tag to message, e.g. {{"en": "..."}}']
    problems = []
    for tag, message in value.items():
        if not _LANGUAGE_TAG.match(tag):
            problems.append(f"{claim} key {tag[:32]!r} is not a BCP47 language tag")
        if not isinstance(message, str) or not message:
            problems.append(f"{claim}[{tag[:32]!r}] must be {_STRING}")
    return problems


__all__ = ["REQUIRED_CLAIMS", "caep_name", "payload_problems"]
