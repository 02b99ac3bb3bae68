"""Hypothesis strategies for hostile input to ``/hub`` and ``/events``, shared by the parser
tests (tests/unit) and the handler tests (tests/integration)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

TOPIC = "acme.login"
EVENT_TYPE = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"
FORM = "application/x-www-form-urlencoded"

HYPOTHESIS = settings(
    max_examples=200,
    deadline=None,  # moto round trips vary; correctness is the property, not speed
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

HUB_NAMES = [
    "hub.mode",
    "hub.topic",
    "hub.callback",
    "hub.secret",
    "hub.lease_seconds",
    "hub.url",
    "hub.challenge",
    "format",
]
CALLBACK = "http://127.0.0.1:9/cb"
CALLBACKS = [
    CALLBACK,
    "https://127.0.0.1:9/cb?x=1",
    "http://[::1]:9/cb",
    "http://0x7f.1:9/cb",
    "http://user:pw@127.0.0.1:9/cb",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "//127.0.0.1/cb",
    "http://",
]
HUB_VALUES = [
    "subscribe",
    "unsubscribe",
    "register",
    "deregister",
    "publish",
    "denied",
    TOPIC,
    *CALLBACKS,
    "-1",
    "0",
    "1e9",
    "99999999999999999999999",
    "json",
    "jwt",
    "xml",
    "x" * 3000,
    "é" * 700,
    "\x00",
    "%00",
    "\r\nX-Injected: 1",
]
CONTENT_TYPES = [
    FORM,
    f"{FORM}; charset=utf-8",
    "FORM",
    "application/json",
    "text/plain",
    "application/secevent+jwt",
    "multipart/form-data; boundary=x",
    "",
]

hub_names = st.one_of(st.sampled_from(HUB_NAMES), st.text(max_size=20))
hub_values = st.one_of(st.sampled_from(HUB_VALUES), st.text(max_size=200))
# Most requests name a real mode, the registered topic and a callback, so that they get past
# the mode switch into the code of each mode; the rest are free-form parameters.
plausible_hub_params = st.builds(
    lambda core, noise: {**noise, **core},
    st.fixed_dictionaries(
        {
            "hub.mode": st.sampled_from(["subscribe", "unsubscribe", "register", "deregister", "publish"]),
            "hub.topic": st.one_of(st.just(TOPIC), st.just(TOPIC), hub_values),
            # Modes that take no callback ignore it; the local stack accepts the first one.
            "hub.callback": st.one_of(
                st.just(CALLBACK), st.just(CALLBACK), st.sampled_from(CALLBACKS), hub_values
            ),
        },
        optional={"hub.url": hub_values, "hub.secret": hub_values, "hub.lease_seconds": hub_values},
    ),
    st.dictionaries(hub_names, hub_values, max_size=4),
)
hub_params = st.one_of(
    plausible_hub_params, plausible_hub_params, st.dictionaries(hub_names, hub_values, max_size=7)
)
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=0x10FFFF), max_size=60)
content_types = st.one_of(st.sampled_from(CONTENT_TYPES), header_values)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=15,
)
event_type_uris = st.one_of(
    st.sampled_from(
        [EVENT_TYPE, "urn:x", "https://schemas.openid.net/secevent/caep/event-type/session-revoked"]
    ),
    st.text(max_size=40),
)
sub_ids = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"format": st.sampled_from(["email", "iss_sub", "opaque", "complex", "aliases", "nope"])},
        optional={"email": json_values, "iss": json_values, "sub": json_values, "id": json_values},
    ),
)
events_members = st.dictionaries(event_type_uris, json_values, max_size=3)
published_events = st.fixed_dictionaries(
    {},
    optional={
        "topic": st.one_of(st.just(TOPIC), st.text(max_size=40), json_values),
        "events": st.one_of(events_members, json_values),
        "sub_id": sub_ids,
        "jti": st.one_of(st.text(max_size=40), json_values),
        "iat": json_values,
        "toe": json_values,
        "txn": json_values,
        "rci": json_values,
        "iss": json_values,
        "aud": json_values,
    },
)
# Events that are valid or nearly so: they get past the parser and the field checks to the
# topic check, the jti markers and the queue, where the hostile part is in the values.
printable = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=40)
claim_strings = st.one_of(st.uuids().map(str), printable, printable, st.text(min_size=1, max_size=40))
plausible_events = st.fixed_dictionaries(
    {
        "topic": st.one_of(st.just(TOPIC), st.just(TOPIC), st.just(TOPIC), printable),
        "events": st.dictionaries(
            st.sampled_from(
                [EVENT_TYPE, "https://schemas.openid.net/secevent/caep/event-type/session-revoked"]
            ),
            st.dictionaries(st.text(max_size=12), json_values, max_size=4),
            min_size=1,
            max_size=2,
        ),
    },
    optional={
        "sub_id": st.fixed_dictionaries({"format": st.just("email"), "email": st.emails()}),
        "jti": claim_strings,
        "txn": claim_strings,
        "rci": claim_strings,
        "iat": st.integers(min_value=0, max_value=2**53),
        "toe": st.integers(min_value=0, max_value=2**53),
    },
)
events_documents = st.one_of(
    # Weighted by repetition (one_of picks a branch uniformly): four in seven plausible.
    plausible_events,
    plausible_events,
    st.fixed_dictionaries({"events": st.lists(plausible_events, min_size=1, max_size=5)}),
    st.fixed_dictionaries({"events": st.lists(plausible_events, min_size=1, max_size=5)}),
    published_events,
    st.fixed_dictionaries({"events": st.lists(st.one_of(published_events, json_values), max_size=5)}),
    json_values,
)
# Most requests carry the right key, so that they reach the parsers behind the key check.
key_choices = st.sampled_from(["real"] * 8 + ["wrong", "none"])
