"""Interop: a real WebSub subscriber library (PyPI flask-websub's ``Subscriber``), served
by werkzeug on 127.0.0.1, subscribes to the local stack with a secret and accepts what
sethub delivers as validly signed (flask-websub only hands a body whose X-Hub-Signature
verifies to its listeners)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask_websub.subscriber as websub_subscriber
import pytest
from e2e_harness import LocalStackProcess, free_port, wait_for
from flask import Flask
from jwcrypto import jwk, jws
from werkzeug.serving import make_server

pytestmark = pytest.mark.e2e

LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"
TOPIC = "interop.login"
UNREGISTERED_TOPIC = "interop.never-registered"


class FlaskSubscriber:
    """A Flask app whose only job is being a flask-websub subscriber."""

    def __init__(self, storage_dir: Path) -> None:
        self.port = free_port()
        self.app = Flask("sethub-interop")
        self.app.config["SERVER_NAME"] = f"127.0.0.1:{self.port}"
        self.subscriber = websub_subscriber.Subscriber(
            websub_subscriber.SQLite3SubscriberStorage(str(storage_dir / "subscriptions.db")),
            websub_subscriber.SQLite3TempSubscriberStorage(str(storage_dir / "requests.db")),
        )
        self.app.register_blueprint(self.subscriber.build_blueprint(url_prefix="/callbacks"))
        self.notifications: list[tuple[str, str, bytes]] = []
        self.successes: list[tuple[str, str, str]] = []
        self.errors: list[tuple[str, str, str]] = []
        self.subscriber.add_listener(lambda *args: self.notifications.append(args))
        self.subscriber.add_success_handler(lambda *args: self.successes.append(args))
        self.subscriber.add_error_handler(lambda *args: self.errors.append(args))
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def subscribe(self, stack: LocalStackProcess, secret: str, topic: str = TOPIC) -> str:
        with self.app.app_context():
            return str(
                self.subscriber.subscribe(
                    topic_url=topic,
                    hub_url=stack.hub_url,
                    secret=secret,
                    lease_seconds=3600,
                    requests_opts={"headers": {"x-api-key": stack.api_key}},
                )
            )


@pytest.fixture
def flask_subscriber(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlaskSubscriber]:
    # flask-websub refuses to send a secret to a hub that is not https; the local stack is
    # plain http on 127.0.0.1 (a deployed sethub is https), so tell it this hub is secure.
    monkeypatch.setattr(websub_subscriber, "is_secure", lambda url: True)
    subscriber = FlaskSubscriber(tmp_path)
    subscriber.thread.start()
    yield subscriber
    subscriber.server.shutdown()
    subscriber.thread.join()


def _payload(compact: bytes, jwks: dict[str, Any]) -> dict[str, Any]:
    """The SET's claims, once its signature verifies against the hub's JWKS."""
    token = jws.JWS()
    token.deserialize(compact.decode())
    header = token.jose_header
    key = jwk.JWKSet.from_json(json.dumps(jwks)).get_key(header["kid"])
    token.verify(key, alg=header["alg"])
    return json.loads(token.payload)  # type: ignore[no-any-return]


def test_flask_websub_subscribes_with_a_secret_and_accepts_signed_deliveries(
    local_stack: LocalStackProcess, flask_subscriber: FlaskSubscriber
) -> None:
    assert local_stack.hub(**{"hub.mode": "register", "hub.topic": TOPIC})[0] == 200
    secret = f"interop-{uuid.uuid4().hex}"

    callback_id = flask_subscriber.subscribe(local_stack, secret)
    wait_for(lambda: flask_subscriber.successes, timeout=15, message="flask-websub answered the challenge")
    # flask-websub records success before it answers; the hub applies the subscription after.
    wait_for(
        lambda: any(url.endswith(f"/{callback_id}") for url in local_stack.active_callbacks(TOPIC)),
        timeout=15,
        message="the hub applied the subscription",
    )
    [jti] = local_stack.publish({"topic": TOPIC, "events": {LOGIN: {"user": {"id": "42"}}}})
    wait_for(lambda: flask_subscriber.notifications, timeout=15, message="flask-websub accepted a delivery")

    assert flask_subscriber.successes == [(TOPIC, callback_id, "subscribe")]
    assert flask_subscriber.errors == []
    [(topic, notified_id, body)] = flask_subscriber.notifications
    assert (topic, notified_id) == (TOPIC, callback_id)
    status, _, jwks = local_stack.request("GET", "/.well-known/jwks.json")
    assert status == 200
    claims = _payload(body, json.loads(jwks))
    assert claims["jti"] == jti
    assert claims["events"] == {LOGIN: {"user": {"id": "42"}}}


def test_flask_websub_is_told_when_its_subscription_is_denied(
    local_stack: LocalStackProcess, flask_subscriber: FlaskSubscriber
) -> None:
    callback_id = flask_subscriber.subscribe(local_stack, "some-secret", topic=UNREGISTERED_TOPIC)

    wait_for(lambda: flask_subscriber.errors, timeout=15, message="flask-websub saw the denial")

    [(topic, denied_id, reason)] = flask_subscriber.errors
    assert (topic, denied_id) == (UNREGISTERED_TOPIC, callback_id)
    assert reason
    assert flask_subscriber.successes == []
