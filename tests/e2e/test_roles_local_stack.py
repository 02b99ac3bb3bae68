"""Keys with roles through the local stack over HTTP (issue 11): each role refused outside its
rights with nothing changed, a scoped publisher, a revoked key, and subscriptions that belong
to the key that made them (the takeover of finding 2, replayed against sethub.receiver).

Keys other than the local ones are made with the operator command, as an operator would:
``sethub keys`` against the stack's embedded AWS, through the CLI's entry function in this
process (test_operator_cli_local_stack runs the installed script as a child).
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from e2e_harness import callback_host, wait_for

from sethub.cli import main
from sethub.cli.target import CliClients
from sethub.receiver import Receiver
from sethub.settings import Settings
from sethub.store import SubscriptionStore

pytestmark = pytest.mark.e2e

LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"
ADMIN, PUBLISHER, SUBSCRIBER = "local-dev-key", "local-publisher-key", "local-subscriber-key"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def topic(name: str) -> str:
    return f"e2e-roles-{uuid.uuid4().hex[:8]}.{name}"


def hub(stack: Any, key: str | None, **params: str) -> tuple[int, str]:
    headers = dict(FORM) if key is None else {**FORM, "x-api-key": key}
    status, _, body = stack.request("POST", "/hub", body=urlencode(params).encode(), headers=headers)
    return status, body.decode()


def events(stack: Any, key: str, *topics: str, user: str = "42") -> tuple[int, dict[str, Any]]:
    document = {"events": [{"topic": name, "events": {LOGIN: {"user": {"id": user}}}} for name in topics]}
    status, _, body = stack.request(
        "POST",
        "/events",
        body=json.dumps(document).encode(),
        headers={"x-api-key": key, "Content-Type": "application/json"},
    )
    return status, json.loads(body)


def operator(stack: Any, *argv: str) -> str:
    """``sethub keys ...`` against the stack's table; its output."""
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["keys", *argv],
        clients=CliClients(stack.moto_endpoint, "us-east-1"),
        env={"SETHUB_TABLE_NAME": stack.provisioned.table_names["HubTable"]},
        out=out,
        err=err,
        stdin=io.StringIO(),
    )
    assert code == 0, err.getvalue()
    return out.getvalue()


def create_key(stack: Any, *argv: str) -> tuple[str, str]:
    """A new key made by the operator command: (key, key id)."""
    out = operator(stack, "create", *argv)
    fields = dict(line.split(maxsplit=1) for line in out.splitlines())
    return fields["key"], fields["key_id"]


def topic_exists(stack: Any, name: str) -> bool:
    settings = Settings.from_env(stack.provisioned.env_for("WebSubFunction"))
    return SubscriptionStore(stack.clients, settings).topic_exists(name)


@pytest.fixture
def receiver(local_stack: Any) -> Iterator[Receiver]:
    started = Receiver(hub=local_stack.base_url, host=callback_host()).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def keyed_stack(start_module_stack: Any) -> Any:
    """A stack with two subscriber keys (two owners) and a one-second key cache: with the
    default (30 s, at most 60 s, both unit-tested) the revocation test would only wait for it."""
    return start_module_stack(
        SETHUB_LOCAL_SUBSCRIBER_KEY="victim-subscriber-key,attacker-subscriber-key",
        SETHUB_KEY_CACHE_SECONDS="1",
    )


def delivered_users(receiver: Receiver) -> list[str]:
    return [event.claims["events"][LOGIN]["user"]["id"] for event in receiver.events]


def test_each_role_is_refused_outside_its_rights_and_nothing_changes(local_stack, receiver):
    name = topic("login")
    assert hub(local_stack, ADMIN, **{"hub.mode": "register", "hub.topic": name})[0] == 200
    status, body = receiver.subscribe(local_stack.base_url, name, api_key=SUBSCRIBER)
    assert status == 202, body
    wait_for(lambda: receiver.url in local_stack.active_callbacks(name), timeout=20, message="verified")

    # A subscriber key cannot publish, register or deregister...
    refused = [
        events(local_stack, SUBSCRIBER, name, user="from-subscriber")[0],
        hub(local_stack, SUBSCRIBER, **{"hub.mode": "publish", "hub.topic": name})[0],
        hub(local_stack, SUBSCRIBER, **{"hub.mode": "register", "hub.topic": topic("new")})[0],
        hub(local_stack, SUBSCRIBER, **{"hub.mode": "deregister", "hub.topic": name})[0],
    ]
    # ...a publisher key cannot subscribe or unsubscribe, and no key at all is refused before anything.
    publisher_unsubscribes = hub(
        local_stack, PUBLISHER, **{"hub.mode": "unsubscribe", "hub.topic": name, "hub.callback": receiver.url}
    )
    other = Receiver(hub=local_stack.base_url, host=callback_host()).start()
    try:
        publisher_subscribes = other.subscribe(local_stack.base_url, name, api_key=PUBLISHER)
        anonymous = hub(
            local_stack, None, **{"hub.mode": "subscribe", "hub.topic": name, "hub.callback": other.url}
        )
    finally:
        other.stop()

    assert refused == [403, 403, 403, 403]
    assert publisher_subscribes[0] == publisher_unsubscribes[0] == 403
    assert "cannot subscribe" in publisher_subscribes[1]
    assert anonymous[0] == 403  # API Gateway's answer: /hub needs a key of the usage plan
    assert other.verifications == []
    # Nothing changed: the topic and its subscription are there, and only the publisher's
    # event (sent after the refused ones) is delivered.
    assert topic_exists(local_stack, name)
    assert events(local_stack, PUBLISHER, name, user="from-publisher")[0] == 202
    wait_for(lambda: receiver.events, timeout=20, message="the publisher's event delivered")
    assert delivered_users(receiver) == ["from-publisher"]


def test_a_scoped_publisher_publishes_only_on_its_topics(local_stack, receiver):
    prefix = f"e2e-scoped-{uuid.uuid4().hex[:8]}"
    key, _ = create_key(local_stack, "--role", "publisher", "--topics", f"{prefix}.*", "--name", "scoped")
    inside, outside = f"{prefix}.login", topic("login")
    for name in (inside, outside):
        assert hub(local_stack, ADMIN, **{"hub.mode": "register", "hub.topic": name})[0] == 200
        assert receiver.subscribe(local_stack.base_url, name, api_key=SUBSCRIBER)[0] == 202
    wait_for(
        lambda: all(receiver.url in local_stack.active_callbacks(name) for name in (inside, outside)),
        timeout=20,
        message="both verified",
    )

    mixed = events(local_stack, key, inside, outside, user="mixed")
    out_of_scope = hub(local_stack, key, **{"hub.mode": "register", "hub.topic": f"x{prefix}.login"})
    deregister_outside = hub(local_stack, key, **{"hub.mode": "deregister", "hub.topic": outside})
    allowed = events(local_stack, key, inside, user="inside")

    assert mixed[0] == 403
    assert "not allowed on this topic" in mixed[1]["error"]
    assert (out_of_scope[0], deregister_outside[0]) == (403, 403)
    assert allowed[0] == 202
    assert topic_exists(local_stack, outside)
    wait_for(lambda: receiver.events, timeout=20, message="the in-scope event delivered")
    assert delivered_users(receiver) == ["inside"]
    assert [event.topic for event in receiver.events] == [inside]


def test_a_revoked_key_stops_working_within_a_minute(keyed_stack):
    local_stack = keyed_stack
    key, key_id = create_key(local_stack, "--role", "publisher", "--name", "to-revoke")
    name = topic("login")
    # Used on both routes first, so every container has it cached.
    assert hub(local_stack, key, **{"hub.mode": "register", "hub.topic": name})[0] == 200
    assert events(local_stack, key, name)[0] == 202

    assert "revoked" in operator(local_stack, "revoke", key_id)

    # The gateway refuses it at once; the hub function once its cache expires.
    assert events(local_stack, key, name)[0] == 403
    wait_for(
        lambda: hub(local_stack, key, **{"hub.mode": "register", "hub.topic": name})[0] == 403,
        timeout=60,
        message="the revoked key refused by /hub",
    )
    assert key not in operator(local_stack, "list")
    assert f"{key_id}  publisher" in operator(local_stack, "list")


def test_a_subscription_belongs_to_the_key_that_made_it(keyed_stack):
    stack = keyed_stack
    name = topic("login")
    assert hub(stack, ADMIN, **{"hub.mode": "register", "hub.topic": name})[0] == 200
    victim = Receiver(hub=stack.base_url, secret=b"victim-secret", host=callback_host()).start()
    try:
        status, _ = victim.subscribe(
            stack.base_url, name, api_key="victim-subscriber-key", secret="victim-secret"
        )
        assert status == 202
        wait_for(lambda: victim.url in stack.active_callbacks(name), timeout=20, message="victim verified")

        # Issue 11, finding 2: another subscriber re-points the victim's subscription at its
        # own secret, shortens its lease, or unsubscribes it.
        takeover = hub(
            stack,
            "attacker-subscriber-key",
            **{
                "hub.mode": "subscribe",
                "hub.topic": name,
                "hub.callback": victim.url,
                "hub.secret": "attacker-secret",
                "hub.lease_seconds": "300",
            },
        )
        removal = hub(
            stack,
            "attacker-subscriber-key",
            **{"hub.mode": "unsubscribe", "hub.topic": name, "hub.callback": victim.url},
        )
        assert (takeover[0], removal[0]) == (403, 403)
        assert "belongs to another key" in takeover[1]

        # Still the victim's: a delivery carries the victim's signature, which its receiver checks.
        assert events(stack, PUBLISHER, name, user="after")[0] == 202
        wait_for(lambda: victim.events, timeout=20, message="delivered to the victim")
        assert delivered_users(victim) == ["after"]
        assert victim.rejected == []
        assert [query["hub.mode"] for query in victim.verifications] == ["subscribe"]
    finally:
        victim.stop()
