"""Event type URIs sethub knows: WSO2/Asgardeo, OpenID CAEP, RISC and SSF.

The hub delivers any absolute-URI event type; the catalog exists so that samples,
tests and receivers share one spelling of the well-known ones, and so that the
ingest can tell a publisher which profile an event belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping

WSO2_BASE = "https://schemas.identity.wso2.org/events/"
CAEP_BASE = "https://schemas.openid.net/secevent/caep/event-type/"
RISC_BASE = "https://schemas.openid.net/secevent/risc/event-type/"
SSF_BASE = "https://schemas.openid.net/secevent/ssf/event-type/"

_WSO2_TYPES: Mapping[str, tuple[str, ...]] = {
    "login": ("loginSuccess", "loginFailed"),
    "registration": ("registrationSuccess", "registrationFailed"),
    "token": ("accessTokenIssued", "accessTokenRevoked"),
    "session": ("sessionEstablished", "sessionPresented", "sessionRevoked"),
    "credential": ("credentialUpdated",),
    "user": (
        "userCreated",
        "userProfileUpdated",
        "userAccountLocked",
        "userAccountUnlocked",
        "userDisabled",
        "userEnabled",
        "userDeleted",
    ),
    "consent": ("consentAdded", "consentRevoked"),
    "role": ("roleCreated", "roleMetaUpdated", "roleDeleted", "roleUsersUpdated", "roleGroupsUpdated"),
}


def wso2_event_type(channel: str, name: str) -> str:
    """``https://schemas.identity.wso2.org/events/<channel>/event-type/<name>``."""
    return f"{WSO2_BASE}{channel}/event-type/{name}"


def wso2_channel(channel: str) -> str:
    return f"{WSO2_BASE}{channel}"


WSO2_CHANNELS: tuple[str, ...] = tuple(_WSO2_TYPES)
WSO2_EVENT_TYPES: Mapping[str, str] = {
    name: wso2_event_type(channel, name) for channel, names in _WSO2_TYPES.items() for name in names
}
"""Short name (``loginSuccess``) → URI."""

CAEP_EVENT_TYPES: Mapping[str, str] = {
    name: CAEP_BASE + name
    for name in (
        "session-revoked",
        "token-claims-change",
        "credential-change",
        "assurance-level-change",
        "device-compliance-change",
        "session-established",
        "session-presented",
        "risk-level-change",
    )
}

RISC_EVENT_TYPES: Mapping[str, str] = {
    name: RISC_BASE + name
    for name in (
        "account-credential-change-required",
        "account-purged",
        "account-disabled",
        "account-enabled",
        "identifier-changed",
        "identifier-recycled",
        "credential-compromise",
        "opt-in",
        "opt-out-initiated",
        "opt-out-cancelled",
        "opt-out-effective",
        "recovery-activated",
        "recovery-information-changed",
        "sessions-revoked",
    )
}

SSF_EVENT_TYPES: Mapping[str, str] = {name: SSF_BASE + name for name in ("verification", "stream-updated")}

PROFILES: Mapping[str, Mapping[str, str]] = {
    "wso2": WSO2_EVENT_TYPES,
    "caep": CAEP_EVENT_TYPES,
    "risc": RISC_EVENT_TYPES,
    "ssf": SSF_EVENT_TYPES,
}

KNOWN_EVENT_TYPES: frozenset[str] = frozenset(uri for types in PROFILES.values() for uri in types.values())


def profile_of(event_type: str) -> str | None:
    """The profile (``wso2``, ``caep``, ``risc``, ``ssf``) an event type URI belongs to, if known."""
    for profile, types in PROFILES.items():
        if event_type in types.values():
            return profile
    return None


__all__ = [
    "CAEP_EVENT_TYPES",
    "KNOWN_EVENT_TYPES",
    "PROFILES",
    "RISC_EVENT_TYPES",
    "SSF_EVENT_TYPES",
    "WSO2_CHANNELS",
    "WSO2_EVENT_TYPES",
    "profile_of",
    "wso2_channel",
    "wso2_event_type",
]
