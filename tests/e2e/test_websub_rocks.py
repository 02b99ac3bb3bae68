"""websub.rocks hub tests 100-106, ported: the local stack as the hub under test, and a
publisher and subscribers on 127.0.0.1, everything over real HTTP.

The topics are URLs served by the test's peer; publishing is W3C style (``hub.mode=publish``
with ``hub.url``), so the hub fetches the topic and distributes it byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_harness import LocalStackProcess, wait_for
from websub_peer import CallbackServer, websub_peer

pytestmark = pytest.mark.e2e

HTML = ("text/html; charset=utf-8", b"<!doctype html><title>websub.rocks</title><p>post 1</p>\n")


@pytest.fixture
def peer() -> Iterator[CallbackServer]:
    with websub_peer() as server:
        yield server


def _topic(stack: LocalStackProcess, peer: CallbackServer, path: str, content: tuple[str, bytes]) -> str:
    peer.topics[path] = content
    topic = peer.url(path)
    assert stack.hub(**{"hub.mode": "register", "hub.topic": topic})[0] == 200
    return topic


def _publish(stack: LocalStackProcess, topic: str) -> None:
    status, body = stack.hub(**{"hub.mode": "publish", "hub.url": topic})
    assert 200 <= status < 300, body


def _deliveries(peer: CallbackServer, path: str, count: int) -> list[Any]:
    peer.wait_for(lambda: len(peer.posts(path)) >= count, timeout=15)
    return peer.posts(path)


def test_100_typical_subscriber_request(local_stack: LocalStackProcess, peer: CallbackServer) -> None:
    topic = _topic(local_stack, peer, "/topics/100", HTML)
    local_stack.subscribe(topic, peer.url("/sub/100"), register=False)

    [verification] = peer.gets("/sub/100")
    assert verification.params["hub.mode"] == "subscribe"
    assert verification.params["hub.topic"] == topic
    assert int(verification.params["hub.lease_seconds"]) > 0

    _publish(local_stack, topic)
    [delivery] = _deliveries(peer, "/sub/100", 1)

    assert delivery.body == HTML[1]
    assert delivery.headers["Content-Type"] == HTML[0]
    assert "X-Hub-Signature" not in delivery.headers
    link = delivery.headers["Link"]
    assert 'rel="hub"' in link
    assert f'<{topic}>; rel="self"' in link


def test_101_subscriber_includes_a_secret(local_stack: LocalStackProcess, peer: CallbackServer) -> None:
    secret = "websub.rocks-secret-101"
    topic = _topic(local_stack, peer, "/topics/101", HTML)
    local_stack.subscribe(topic, peer.url("/sub/101"), **{"hub.secret": secret}, register=False)

    _publish(local_stack, topic)
    [delivery] = _deliveries(peer, "/sub/101", 1)

    method, _, signature = delivery.headers["X-Hub-Signature"].partition("=")
    expected = hmac.new(secret.encode(), delivery.body, getattr(hashlib, method)).hexdigest()
    assert method in ("sha256", "sha384", "sha512")
    assert hmac.compare_digest(signature, expected)
    assert delivery.body == HTML[1]


def test_102_subscriber_sends_additional_parameters(
    local_stack: LocalStackProcess, peer: CallbackServer
) -> None:
    topic = _topic(local_stack, peer, "/topics/102", HTML)
    local_stack.subscribe(topic, peer.url("/sub/102"), foo="bar", **{"hub.foo": "baz"}, register=False)

    _publish(local_stack, topic)
    [delivery] = _deliveries(peer, "/sub/102", 1)

    assert delivery.body == HTML[1]


def test_103_subscriber_resubscribes_before_expiry(
    local_stack: LocalStackProcess, peer: CallbackServer
) -> None:
    topic = _topic(local_stack, peer, "/topics/103", HTML)
    local_stack.subscribe(topic, peer.url("/sub/103"), register=False)
    status, _ = local_stack.hub(
        **{"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": peer.url("/sub/103")}
    )
    assert status == 202
    peer.wait_for(lambda: len(peer.gets("/sub/103")) == 2, timeout=15)

    peer.topics["/topics/103"] = ("text/plain", b"first")
    _publish(local_stack, topic)
    _deliveries(peer, "/sub/103", 1)
    peer.topics["/topics/103"] = ("text/plain", b"second")
    _publish(local_stack, topic)
    deliveries = _deliveries(peer, "/sub/103", 2)

    assert sorted(delivery.body for delivery in deliveries) == [b"first", b"second"]


def test_104_unsubscribe(local_stack: LocalStackProcess, peer: CallbackServer) -> None:
    topic = _topic(local_stack, peer, "/topics/104", HTML)
    local_stack.subscribe(topic, peer.url("/sub/104"), register=False)
    local_stack.subscribe(topic, peer.url("/control/104"), register=False)

    status, body = local_stack.hub(
        **{"hub.mode": "unsubscribe", "hub.topic": topic, "hub.callback": peer.url("/sub/104")}
    )
    assert (status, body) == (202, b"hub.mode=accepted")
    wait_for(
        lambda: peer.url("/sub/104") not in local_stack.active_callbacks(topic),
        timeout=15,
        message="unsubscribed",
    )
    assert peer.gets("/sub/104")[-1].params["hub.mode"] == "unsubscribe"

    _publish(local_stack, topic)
    _deliveries(peer, "/control/104", 1)

    assert peer.posts("/sub/104") == []


@pytest.mark.parametrize(
    ("test_id", "content"),
    [
        ("105", ("text/plain", b"websub.rocks plaintext content\r\nwith \x00 odd bytes \xff")),
        ("106", ("application/json", b'{"hello": "websub.rocks",  "n": [1, 2, 3]}')),
    ],
)
def test_105_106_content_is_delivered_byte_for_byte_with_its_content_type(
    local_stack: LocalStackProcess, peer: CallbackServer, test_id: str, content: tuple[str, bytes]
) -> None:
    topic = _topic(local_stack, peer, f"/topics/{test_id}", content)
    local_stack.subscribe(topic, peer.url(f"/sub/{test_id}"), register=False)

    _publish(local_stack, topic)
    [delivery] = _deliveries(peer, f"/sub/{test_id}", 1)

    assert delivery.body == content[1]
    assert delivery.headers["Content-Type"] == content[0]
