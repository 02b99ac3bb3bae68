"""What ``POST /hub`` refuses at its door, against moto: control characters in a topic,
callback or Content-Type, a ``hub.secret`` in the query string; and refusals that say
no more than a caller needs (no resolved address, no reason a topic fetch failed).

Each refusal is a 400 with a one-line reason, and nothing is written: no table item,
no queue message, no request to the callback.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from websub_peer import CallbackServer, websub_peer

from sethub.errors import BadRequestError
from sethub.settings import Settings
from sethub.websub import FETCH_FAILED, Hub, HubReply, parse_hub_request

BASE_URL = "http://127.0.0.1:3000"
TOPIC = "acme.login"
FORM = "application/x-www-form-urlencoded"
CONTROLS = ["\r\n", "\x00", "\x7f", "\x85", "\u2028"]


class Door:
    """The hub of the ``hub`` fixture, and what it has written so far."""

    def __init__(self, fixture: Any, **changes: Any) -> None:
        self.fixture = fixture
        self.settings: Settings = dataclasses.replace(fixture.settings, **changes)
        self.clients = fixture.clients
        self.hub = Hub(self.clients, self.settings)

    def post(
        self,
        params: dict[str, str] | None = None,
        *,
        query: dict[str, str] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> HubReply:
        if params is not None:
            body, content_type = urlencode(params).encode(), FORM
        try:
            request = parse_hub_request(query=query, body=body, content_type=content_type)
        except BadRequestError as exc:  # as the handler answers it
            return HubReply(status=exc.status, body=exc.reason)
        return self.hub.handle(request, headers={"X-Api-Key": self.fixture.api_key}, base_url=BASE_URL)

    def written(self) -> tuple[list[Any], int, int]:
        """Every table item, and how many messages the verify and events queues hold."""
        items = self.clients.dynamodb.scan(TableName=self.settings.table_name)["Items"]
        return (
            sorted(items, key=repr),
            self._depth(self.settings.verify_queue_url),
            self._depth(self.settings.events_queue_url),
        )

    def _depth(self, queue_url: str) -> int:
        attributes = self.clients.sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())


@pytest.fixture
def callbacks() -> Iterator[CallbackServer]:
    with websub_peer() as server:
        yield server


@pytest.fixture
def door(hub: Any) -> Door:
    door = Door(hub)
    assert door.post({"hub.mode": "register", "hub.topic": TOPIC}).status == 200
    return door


def assert_refused(reply: HubReply, *, mentions: str) -> None:
    assert reply.status == 400
    assert mentions in reply.body
    assert "\n" not in reply.body
    assert "\r" not in reply.body


@pytest.mark.parametrize("control", CONTROLS)
def test_a_callback_with_a_control_character_is_refused_and_nothing_is_written(
    door: Door, callbacks: CallbackServer, control: str
) -> None:
    before = door.written()

    reply = door.post(
        {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": callbacks.url(f"/cb{control}x")}
    )

    assert_refused(reply, mentions="hub.callback must not contain control characters")
    assert door.written() == before
    assert callbacks.received == []


@pytest.mark.parametrize(
    ("mode", "control"),
    [
        ("subscribe", "\n"),
        ("unsubscribe", "\t"),
        ("register", "\x1b"),
        ("deregister", "\x9b"),
        ("publish", "\u2029"),
    ],
)
def test_a_topic_with_a_control_character_is_refused_in_every_mode(
    door: Door, callbacks: CallbackServer, mode: str, control: str
) -> None:
    before = door.written()

    reply = door.post({"hub.mode": mode, "hub.topic": f"acme{control}login", "hub.callback": callbacks.url()})

    assert_refused(reply, mentions="hub.topic must not contain control characters")
    assert door.written() == before
    assert callbacks.received == []


def test_a_newline_cannot_make_two_subscriptions_share_an_id(door: Door, callbacks: CallbackServer) -> None:
    # sha256(topic "\n" callback) names a subscription: "a\nb" + "c" would equal "a" + "b\nc".
    reply = door.post({"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": f"{callbacks.url()}\nx"})

    assert reply.status == 400


def test_published_content_with_a_control_character_in_its_content_type_is_refused(door: Door) -> None:
    before = door.written()

    reply = door.post(
        query={"hub.mode": "publish", "hub.topic": TOPIC},
        body=b"<feed/>",
        content_type="application/atom+xml\x01; charset=utf-8",
    )

    assert_refused(reply, mentions="Content-Type must not contain control characters")
    assert door.written() == before


def test_hub_secret_in_the_query_string_is_refused(door: Door, callbacks: CallbackServer) -> None:
    before = door.written()
    params = {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": callbacks.url()}

    reply = door.post(params, query={"hub.secret": "s3cret"})

    assert_refused(reply, mentions="hub.secret must be sent in the form body")
    assert "s3cret" not in reply.body
    assert door.written() == before


def test_hub_secret_in_the_form_body_is_still_accepted(door: Door, callbacks: CallbackServer) -> None:
    params = {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": callbacks.url()}

    assert door.post({**params, "hub.secret": "s3cret"}).status == 202


def test_a_refused_callback_is_not_told_which_address_its_host_resolved_to(
    hub: Any, callbacks: CallbackServer
) -> None:
    strict = Door(hub, allow_private_callbacks=False)
    assert strict.post({"hub.mode": "register", "hub.topic": TOPIC}).status == 200
    port = callbacks.base_url.rsplit(":", 1)[1]
    addresses = {str(info[4][0]) for info in socket.getaddrinfo("localhost", None)}

    reply = strict.post(
        {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": f"http://localhost:{port}/cb"}
    )

    assert_refused(reply, mentions="hub.callback refused")
    assert not [address for address in addresses if address in reply.body]
    assert callbacks.received == []


def test_every_failed_topic_fetch_gets_the_same_answer(hub: Any, callbacks: CallbackServer) -> None:
    # A key holder must not learn from the hub which ports answer, what a host resolves
    # to, or what a URL answered: a closed port, a 404, a private address all read alike.
    door = Door(hub, open_topics=True)
    strict = Door(hub, open_topics=True, allow_private_callbacks=False)
    callbacks.behaviour["/missing"] = 404
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}/feed"
    port = callbacks.base_url.rsplit(":", 1)[1]

    replies = [
        door.post({"hub.mode": "publish", "hub.url": callbacks.url("/missing")}),
        door.post({"hub.mode": "publish", "hub.url": closed}),
        strict.post({"hub.mode": "publish", "hub.url": f"http://localhost:{port}/feed"}),
    ]

    assert {(reply.status, reply.body) for reply in replies} == {(400, FETCH_FAILED)}
    assert door.written()[2] == 0
