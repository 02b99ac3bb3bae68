"""Delivery through the local stack over HTTP: publish, receive, verify, retry."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from e2e_harness import http, wait_for
from jwcrypto import jwk, jws
from subscribers import Subscriber  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e

LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"


@pytest.fixture
def callback(subscribers: Callable[..., Subscriber]) -> Subscriber:
    return subscribers(ok_status=202, path="/cb")


@pytest.mark.sam
def test_a_published_event_arrives_as_a_set_that_verifies_from_the_jwks_url(local_stack, callback):
    local_stack.subscribe("jwks.login", callback.url)

    (jti,) = local_stack.publish({"topic": "jwks.login", "events": {LOGIN: {"user": {"id": "42"}}}})

    wait_for(lambda: callback.posts, timeout=20, message="delivery")
    headers, body = callback.posts[0]
    status, _, jwks = http("GET", f"{local_stack.base_url}/.well-known/jwks.json")
    assert status == 200
    token = jws.JWS()
    token.deserialize(body.decode())
    token.verify(jwk.JWKSet.from_json(jwks.decode()))
    claims = json.loads(token.payload)
    assert claims["jti"] == jti == headers["x-hub-messageid"]
    assert headers["content-type"] == "application/secevent+jwt"


@pytest.mark.sam
def test_a_subscriber_failing_twice_gets_the_same_delivery_three_times(start_local_stack, callback):
    stack = start_local_stack(SETHUB_RETRY_SCHEDULE="0,0,0")
    callback.failures = 2
    stack.subscribe("acme.login", callback.url)

    stack.publish({"topic": "acme.login", "events": {LOGIN: {}}})

    wait_for(lambda: len(callback.posts) >= 3, timeout=40, message="three attempts")
    assert len({body for _, body in callback.posts}) == 1
    assert len({headers["x-hub-messageid"] for headers, _ in callback.posts}) == 1


@pytest.mark.sam
def test_a_wso2_publish_to_the_hub_is_delivered_as_the_publisher_signed_claims(local_stack, callback):
    # GIVEN a subscriber, and a WSO2 publisher that puts mode and topic in the query string
    local_stack.subscribe("wso2.login", callback.url)
    claims = {
        "iss": "https://api.asgardeo.io/t/acme",
        "jti": str(uuid.uuid4()),
        "iat": 1764190000,
        "events": {LOGIN: {"user": {"id": "ada"}, "tenant": {"name": "acme"}}},
    }

    # WHEN it publishes a SET payload as the body
    status, _, body = local_stack.request(
        "POST",
        "/hub?hub.mode=publish&hub.topic=wso2.login",
        body=json.dumps(claims).encode(),
        headers={"x-api-key": local_stack.api_key, "Content-Type": "application/json"},
    )

    # THEN the subscriber receives a SET with the publisher's jti and events, signed by the hub
    assert 200 <= status < 300, body
    wait_for(lambda: callback.posts, timeout=20, message="delivery of the WSO2 publish")
    headers, token_bytes = callback.posts[0]
    _, _, jwks = http("GET", f"{local_stack.base_url}/.well-known/jwks.json")
    token = jws.JWS()
    token.deserialize(token_bytes.decode())
    token.verify(jwk.JWKSet.from_json(jwks.decode()))
    delivered = json.loads(token.payload)
    assert delivered["jti"] == claims["jti"] == headers["x-hub-messageid"]
    assert delivered["events"] == claims["events"]
    assert headers["content-type"] == "application/secevent+jwt"
