"""CAEP 1.0 payloads at ingest: the spec's own examples pass, each broken rule is named."""

from __future__ import annotations

from typing import Any

import pytest

from sethub.caep import REQUIRED_CLAIMS, payload_problems
from sethub.catalog import CAEP_BASE, RISC_BASE
from sethub.errors import BadRequestError
from sethub.events import validate

TOPIC = "https://idp.example.com/topics/sessions"

# CAEP 1.0's examples (section 3), one per checked event type.
VALID: dict[str, dict[str, Any]] = {
    "session-revoked": {
        "initiating_entity": "policy",
        "reason_admin": {"en": "Landspeed Policy Violation: C076E82F"},
        "reason_user": {"en": "Access attempt from multiple regions.", "es-410": "Intento de acceso"},
        "event_timestamp": 1615304991643,
    },
    "token-claims-change": {"event_timestamp": 1615304991643, "claims": {"role": "ro-admin"}},
    "credential-change": {
        "credential_type": "fido2-roaming",
        "change_type": "create",
        "fido2_aaguid": "accced6a-63f5-490a-9eea-e59bc1896cfc",
        "friendly_name": "Jane's USB authenticator",
        "initiating_entity": "user",
        "reason_admin": {"en": "User self-enrollment"},
    },
    "assurance-level-change": {
        "namespace": "NIST-AAL",
        "current_level": "nist-aal2",
        "previous_level": "nist-aal1",
        "change_direction": "increase",
        "initiating_entity": "user",
    },
    "device-compliance-change": {
        "current_status": "not-compliant",
        "previous_status": "compliant",
        "reason_user": {"en": "Device is no longer in a trusted location."},
    },
    "risk-level-change": {
        "principal": "USER",
        "current_level": "HIGH",
        "previous_level": "LOW",
        "risk_reason": "PASSWORD_FOUND_IN_DATA_BREACH",
    },
}


def _validate(event_type: str, payload: Any) -> list[dict[str, Any]]:
    raw = {"topic": TOPIC, "events": {event_type: payload}, "sub_id": {"format": "opaque", "id": "s1"}}
    with pytest.raises(BadRequestError) as refused:
        validate([raw], issuer="https://hub.example", now=lambda: 1_700_000_000.0)
    assert refused.value.status == 400
    return list(refused.value.problems or [])


def test_the_six_types_are_the_checked_ones() -> None:
    assert set(REQUIRED_CLAIMS) == set(VALID)


@pytest.mark.parametrize("name", sorted(VALID))
def test_the_specs_examples_are_accepted(name: str) -> None:
    raw = {
        "topic": TOPIC,
        "events": {CAEP_BASE + name: VALID[name]},
        "sub_id": {"format": "opaque", "id": "s"},
    }
    (event,) = validate([raw], issuer="https://hub.example", now=lambda: 1_700_000_000.0)
    assert event.claims["events"] == {CAEP_BASE + name: VALID[name]}


@pytest.mark.parametrize(
    ("name", "payload", "problem"),
    [
        ("session-revoked", {"reason_admin": "Policy violation"}, "reason_admin must be a non-empty object"),
        ("session-revoked", {"reason_admin": {}}, "reason_admin must be a non-empty object"),
        ("session-revoked", {"reason_user": {"en": ""}}, "reason_user['en'] must be a non-empty string"),
        ("session-revoked", {"reason_user": {"en": 3}}, "reason_user['en'] must be a non-empty string"),
        (
            "session-revoked",
            {"reason_admin": {"english!": "x"}},
            "reason_admin key 'english!' is not a BCP47",
        ),
        ("session-revoked", {"initiating_entity": "robot"}, "initiating_entity must be one of admin, policy"),
        (
            "session-revoked",
            {"event_timestamp": "yesterday"},
            "event_timestamp must be a non-negative number",
        ),
        ("session-revoked", {"event_timestamp": True}, "event_timestamp must be a non-negative number"),
        ("token-claims-change", {}, "claims is required"),
        ("token-claims-change", {"claims": {}}, "claims must be a non-empty object"),
        ("token-claims-change", {"claims": ["role"]}, "claims must be a non-empty object"),
        ("credential-change", {"change_type": "create"}, "credential_type is required"),
        ("credential-change", {"credential_type": "password"}, "change_type is required"),
        (
            "credential-change",
            {"credential_type": "password", "change_type": "rotate"},
            "change_type must be one of create, delete, revoke, update (got 'rotate')",
        ),
        (
            "credential-change",
            {"credential_type": "", "change_type": "create"},
            "credential_type must be a non",
        ),
        ("assurance-level-change", {"namespace": "NIST-AAL"}, "current_level is required"),
        (
            "assurance-level-change",
            {"namespace": "NIST-AAL", "current_level": "nist-aal2", "change_direction": "up"},
            "change_direction must be one of decrease, increase",
        ),
        ("device-compliance-change", {"current_status": "compliant"}, "previous_status is required"),
        (
            "device-compliance-change",
            {"current_status": "Compliant", "previous_status": "compliant"},
            "current_status must be one of compliant, not-compliant (got 'Compliant')",
        ),
        ("risk-level-change", {"current_level": "HIGH"}, "principal is required"),
        (
            "risk-level-change",
            {"principal": "USER", "current_level": "high"},
            "current_level must be one of HIGH, LOW, MEDIUM (got 'high')",
        ),
        (
            "risk-level-change",
            {"principal": "USER", "current_level": "HIGH", "previous_level": "SEVERE"},
            "previous_level must be one of HIGH, LOW, MEDIUM",
        ),
    ],
)
def test_a_broken_rule_is_refused_with_its_name(name: str, payload: dict[str, Any], problem: str) -> None:
    problems = _validate(CAEP_BASE + name, payload)
    assert problems[0]["index"] == 0
    assert any(line.startswith(f"{name}: {problem}") for line in problems[0]["problems"]), problems


def test_every_problem_of_every_event_is_listed() -> None:
    good = {"topic": TOPIC, "events": {CAEP_BASE + "session-revoked": VALID["session-revoked"]}}
    bad = {
        "topic": TOPIC,
        "events": {CAEP_BASE + "credential-change": {"change_type": "rotate", "reason_admin": "changed"}},
    }
    with pytest.raises(BadRequestError) as refused:
        validate([good, bad], issuer="https://hub.example", now=lambda: 1.0)
    assert refused.value.problems == [
        {
            "index": 1,
            "problems": [
                "credential-change: reason_admin must be a non-empty object of language tag to message, "
                'e.g. {"en": "..."}',
                "credential-change: credential_type is required",
                "credential-change: change_type must be one of create, delete, revoke, update (got 'rotate')",
            ],
        }
    ]


def test_extension_claims_and_other_credential_types_pass() -> None:
    payload = {"credential_type": "passkey-sync", "change_type": "update", "vendor_extra": {"any": 1}}
    assert payload_problems(CAEP_BASE + "credential-change", payload) == []


def test_types_not_checked_here_pass_whatever_their_payload() -> None:
    assert payload_problems(CAEP_BASE + "session-established", {"reason_admin": "text"}) == []
    assert payload_problems(RISC_BASE + "account-disabled", {"reason_admin": "text"}) == []
    assert payload_problems("https://example.com/caep/event-type/session-revoked", {"reason_admin": 1}) == []
