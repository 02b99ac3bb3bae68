"""Hostile input to the real handlers: whatever a caller sends to ``POST /hub`` or
``POST /events``, the answer is a 2xx or a 4xx with a reason, never a 5xx and never an
exception out of the handler.

Property-based (hypothesis), driven with API Gateway proxy events against the moto-backed
``hub`` fixture, with the handlers loaded the way the local stack loads them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from authorized import AuthorizedFunction
from hostile_strategies import (
    EVENT_TYPE,
    FORM,
    HYPOTHESIS,
    TOPIC,
    content_types,
    events_documents,
    header_values,
    hub_params,
    key_choices,
)
from hypothesis import example, given
from hypothesis import strategies as st

from devstack.gateway import proxy_event
from sethub.store import SubscriptionStore

ROOT = Path(__file__).resolve().parents[2]

# --- API Gateway events -----------------------------------------------------------------------


def api_event(
    path: str,
    *,
    body: bytes | str | None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """A REST API (v1) proxy event, as API Gateway sends it."""
    raw = body.encode() if isinstance(body, str) else body or b""
    return proxy_event(
        resource=path,
        method="POST",
        query=urlencode(query or {}),
        headers=list((headers or {}).items()),
        body=raw,
        force_base64=base64_encoded,
    )


class Functions:
    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.api_key: str = hub.api_key
        # Each handler's AWS calls go through its own role's endpoint.
        self.websub: AuthorizedFunction = hub.function("WebSubFunction")
        self.ingest: AuthorizedFunction = hub.function("IngestFunction")

    def key_header(self, choice: str) -> dict[str, str]:
        return {"real": {"x-api-key": self.api_key}, "wrong": {"x-api-key": "not-the-key"}, "none": {}}[
            choice
        ]


@pytest.fixture
def functions(hub: Any, monkeypatch: pytest.MonkeyPatch) -> Functions:
    for name, value in hub.env.items():
        monkeypatch.setenv(name, value)
    loaded = Functions(hub)
    # Handlers build their dependencies once per container; this test's hub is a new "container".
    for name in ("settings", "clients", "hub", "signer"):
        cached = getattr(loaded.websub.handler.__globals__.get(name), "cache_clear", None)
        if cached is not None:
            cached()
    SubscriptionStore(hub.clients, hub.settings).register_topic(TOPIC, now=time.time())
    return loaded


def assert_answered(response: dict[str, Any]) -> None:
    """A 2xx, or a 4xx whose body says why in one line."""
    status = response["statusCode"]
    assert 200 <= status < 300 or 400 <= status < 500, (status, response.get("body"))
    if status >= 400:
        body = response["body"]
        assert isinstance(body, str)
        assert body.strip(), "a refusal must carry a reason"
        headers = {name.lower(): value for name, value in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers.setdefault(name.lower(), values[0])
        if headers["content-type"].startswith("application/json"):
            assert json.loads(body)["error"]
        else:
            assert "\n" not in body.strip()


# --- the handlers, end to end against moto -----------------------------------------------------


@HYPOTHESIS
@given(
    params=hub_params,
    query=hub_params,
    key=key_choices,
    in_query=st.booleans(),
)
@example(
    params={"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": "http://127.0.0.1:9/cb"},
    query={},
    key="real",
    in_query=False,
)
@example(
    params={"hub.mode": "subscribe", "hub.topic": "t" * 2100, "hub.callback": "http://127.0.0.1:9/cb"},
    query={},
    key="real",
    in_query=False,
)
@example(
    params={"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": "http://127.0.0.1:9/" + "é" * 700},
    query={},
    key="real",
    in_query=False,
)
@example(params={"hub.mode": "publish", "hub.topic": "é" * 1100}, query={}, key="real", in_query=True)
@example(params={"hub.mode": "register", "hub.topic": "é" * 1019}, query={}, key="real", in_query=False)
def test_hub_form_requests_are_answered_2xx_or_4xx(
    functions: Functions, params: dict[str, str], query: dict[str, str], key: str, in_query: bool
) -> None:
    headers = {"Content-Type": FORM, **functions.key_header(key)}
    if in_query:
        # WSO2 style: hub parameters in the query, the body is content.
        event = api_event("/hub", body=b'{"events": {}}', headers=headers, query={**query, **params})
    else:
        event = api_event("/hub", body=urlencode(params).encode(), headers=headers, query=query)
    assert_answered(functions.websub.invoke(event))


@HYPOTHESIS
@given(
    body=st.binary(max_size=3000),
    query=hub_params,
    content_type=content_types,
    key=key_choices,
    base64_encoded=st.booleans(),
    extra_headers=st.dictionaries(
        st.sampled_from(["Host", "X-Forwarded-For", "Accept", "X-Api-Key "]), header_values, max_size=3
    ),
)
@example(body=b"not base64!", query={}, content_type=FORM, key="real", base64_encoded=True, extra_headers={})
@example(  # WSO2-style publish whose body nests deeper than the JSON decoder's recursion limit
    body=b'{"events": ' * 5000,
    query={"hub.mode": "publish", "hub.topic": TOPIC},
    content_type="application/json",
    key="real",
    base64_encoded=False,
    extra_headers={},
)
def test_hub_raw_requests_are_answered_2xx_or_4xx(
    functions: Functions,
    body: bytes,
    query: dict[str, str],
    content_type: str,
    key: str,
    base64_encoded: bool,
    extra_headers: dict[str, str],
) -> None:
    headers = {**extra_headers, "Content-Type": content_type, **functions.key_header(key)}
    event = api_event("/hub", body=body, headers=headers, query=query, base64_encoded=base64_encoded)
    if base64_encoded and body == b"not base64!":
        event["body"] = "not base64!"
    assert_answered(functions.websub.invoke(event))


@HYPOTHESIS
@given(document=events_documents, key=key_choices)
@example(document={"topic": TOPIC, "events": {EVENT_TYPE: {}}}, key="real")
@example(document={"topic": "t" * 2048, "events": {EVENT_TYPE: {}}}, key="real")
@example(document={"topic": "é" * 2000, "events": {EVENT_TYPE: {}}}, key="real")
@example(document={"topic": TOPIC, "events": {EVENT_TYPE: {"x": float("nan")}}}, key="real")
@example(document={"topic": TOPIC, "events": {EVENT_TYPE: {}}, "jti": "x" * 2048}, key="real")
@example(document={"events": [{"topic": TOPIC, "events": {EVENT_TYPE: {}}}] * 101}, key="real")
def test_events_requests_are_answered_2xx_or_4xx(functions: Functions, document: Any, key: str) -> None:
    body = json.dumps(document).encode()
    headers = {"Content-Type": "application/json", **functions.key_header(key)}
    assert_answered(functions.ingest.invoke(api_event("/events", body=body, headers=headers)))


@HYPOTHESIS
@given(body=st.binary(max_size=3000), key=key_choices, base64_encoded=st.booleans())
def test_events_raw_bodies_are_answered_2xx_or_4xx(
    functions: Functions, body: bytes, key: str, base64_encoded: bool
) -> None:
    headers = {"Content-Type": "application/json", **functions.key_header(key)}
    event = api_event("/events", body=body, headers=headers, base64_encoded=base64_encoded)
    assert_answered(functions.ingest.invoke(event))


@pytest.mark.parametrize(("path", "size"), [("/hub", 1024 * 1024 + 1), ("/events", 1024 * 1024 + 1)])
def test_oversized_bodies_are_refused_with_413(functions: Functions, path: str, size: int) -> None:
    headers = {"Content-Type": FORM if path == "/hub" else "application/json", "x-api-key": functions.api_key}
    body = b"hub.mode=publish&hub.topic=acme.login&x=" + b"a" * size if path == "/hub" else b" " * size
    function = functions.websub if path == "/hub" else functions.ingest
    response = function.invoke(api_event(path, body=body, headers=headers))
    assert response["statusCode"] == 413
    assert_answered(response)
