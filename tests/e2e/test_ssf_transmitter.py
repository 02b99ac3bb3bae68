"""sethub as an OpenID SSF 1.0 transmitter, over HTTP against the local stack.

Ports the OpenID conformance suite's transmitter checks (metadata, stream CRUD happy
path, negative auth, deleted-stream 404s, verification by push and poll, poll/ack
variants, push without authorization_header, CAEP events): each SET is verified with
jwcrypto (an independent JOSE library) against the keys fetched from the metadata's
``jwks_uri``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from e2e_harness import LocalStackProcess, callback_host, http, wait_for  # type: ignore[import-not-found]
from jwcrypto import jwk, jws

from sethub.settings import Settings
from sethub.ssf.auth import client_record
from sethub.ssf.store import SsfStore

pytestmark = pytest.mark.e2e

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
SESSION_REVOKED = CAEP + "session-revoked"
CREDENTIAL_CHANGE = CAEP + "credential-change"
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"
PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
RECEIVER = ("local-ssf-receiver", "local-ssf-secret")
BROKEN = b";{ broken"


# ---------------------------------------------------------------------------- helpers


def token(stack: LocalStackProcess, client: tuple[str, str] = RECEIVER, scope: str = "") -> str:
    basic = base64.b64encode(f"{client[0]}:{client[1]}".encode()).decode()
    form = "grant_type=client_credentials" + (f"&scope={scope}" if scope else "")
    status, _, body = stack.request(
        "POST",
        "/oauth2/token",
        body=form.encode(),
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200, body
    return str(json.loads(body)["access_token"])


@dataclass
class Receiver:
    """An SSF receiver as the conformance suite drives one: a token and JSON requests."""

    stack: LocalStackProcess
    access_token: str
    metadata: dict[str, Any]

    def call(
        self, method: str, url: str, document: Any = None, *, raw: bytes | None = None
    ) -> tuple[int, Any]:
        body = raw if raw is not None else (None if document is None else json.dumps(document).encode())
        headers = {"Authorization": f"Bearer {self.access_token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        status, _, answer = http(method, url, body=body, headers=headers)
        return status, (json.loads(answer) if answer else None)

    def create(self, delivery: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        document: dict[str, Any] = {
            "description": "Stream for OIDF Conformance Test-Suite",
            "events_requested": [SESSION_REVOKED, CREDENTIAL_CHANGE, CAEP + "device-compliance-change"],
            **extra,
        }
        if delivery is not None:
            document["delivery"] = delivery
        status, config = self.call("POST", self.metadata["configuration_endpoint"], document)
        assert status == 201, config
        return dict(config)

    def poll(self, config: dict[str, Any], **params: Any) -> dict[str, Any]:
        status, answer = self.call("POST", config["delivery"]["endpoint_url"], params)
        assert status == 200, answer
        return dict(answer)


@pytest.fixture(scope="module")
def metadata(local_stack: LocalStackProcess) -> dict[str, Any]:
    status, headers, body = local_stack.request("GET", "/.well-known/ssf-configuration")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    return dict(json.loads(body))


@pytest.fixture
def receiver(local_stack: LocalStackProcess, metadata: dict[str, Any]) -> Receiver:
    return Receiver(local_stack, token(local_stack), metadata)


@pytest.fixture(scope="module")
def keys(local_stack: LocalStackProcess, metadata: dict[str, Any]) -> jwk.JWKSet:
    status, _, body = http("GET", metadata["jwks_uri"])
    assert status == 200
    return jwk.JWKSet.from_json(body)


def verified_claims(
    compact: str, keys: jwk.JWKSet, metadata: dict[str, Any], stream: dict[str, Any]
) -> dict[str, Any]:
    """The conformance suite's checks of every SET, after jwcrypto verified its signature."""
    token_ = jws.JWS()
    token_.deserialize(compact)
    header = token_.jose_header
    assert header["alg"] == "RS256"  # CAEP interoperability profile 2.6
    assert header["typ"] == "secevent+jwt"
    token_.verify(keys.get_key(header["kid"]), alg="RS256")
    claims: dict[str, Any] = json.loads(token_.payload)
    assert len(claims["events"]) == 1
    assert "sub" not in claims
    assert "exp" not in claims
    assert claims["iss"] == metadata["issuer"]  # exactly, no slash normalisation
    assert claims["aud"] == stream["aud"]
    assert claims["iat"] <= time.time() + 1
    assert isinstance(claims["txn"], str)
    assert claims["jti"]
    assert isinstance(claims["sub_id"], dict)
    return claims


@dataclass
class PushEndpoint:
    url: str
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sets(self) -> list[tuple[dict[str, str], str]]:
        with self.lock:
            return [(headers, body.decode()) for headers, body in self.received]


@pytest.fixture
def push_endpoint() -> Iterator[PushEndpoint]:
    holder: dict[str, PushEndpoint] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            endpoint = holder["endpoint"]
            with endpoint.lock:
                endpoint.received.append((dict(self.headers.items()), body))
            self.send_response(202)  # RFC 8935 2.2
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((callback_host(), 0), Handler)
    holder["endpoint"] = PushEndpoint(f"http://{callback_host()}:{server.server_address[1]}/ssf-push")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder["endpoint"]
    server.shutdown()
    server.server_close()


def events_of(
    endpoint: PushEndpoint,
    keys: jwk.JWKSet,
    metadata: dict[str, Any],
    stream: dict[str, Any],
    event_type: str,
) -> list[tuple[dict[str, str], dict[str, Any]]]:
    return [
        (headers, claims)
        for headers, compact in endpoint.sets()
        if event_type in (claims := verified_claims(compact, keys, metadata, stream))["events"]
    ]


def publish_caep(
    stack: LocalStackProcess, topic: str, event_type: str, email: str, payload: dict[str, Any]
) -> str:
    assert stack.hub(**{"hub.mode": "register", "hub.topic": topic})[0] == 200
    return stack.publish(
        {"topic": topic, "events": {event_type: payload}, "sub_id": {"format": "email", "email": email}}
    )[0]


REVOKED = {
    "initiating_entity": "policy",
    "reason_admin": {"en": "Landspeed Policy Violation"},
    "event_timestamp": 1615304991,
}


# ---------------------------------------------------------------------------- metadata


def test_metadata_names_every_endpoint_and_the_oauth_scheme(
    local_stack: LocalStackProcess, metadata: dict[str, Any]
) -> None:
    assert metadata["issuer"] == local_stack.base_url
    assert metadata["spec_version"] == "1_0"
    assert metadata["delivery_methods_supported"] == [PUSH, POLL]
    assert {"spec_urn": "urn:ietf:rfc:6749"} in metadata["authorization_schemes"]
    assert metadata["default_subjects"] == "ALL"
    for name in (
        "jwks_uri",
        "configuration_endpoint",
        "status_endpoint",
        "add_subject_endpoint",
        "remove_subject_endpoint",
        "verification_endpoint",
    ):
        assert metadata[name].startswith(local_stack.base_url + "/"), name
    assert all(value != [] for value in metadata.values())  # empty arrays are omitted


def test_jwks_has_public_keys_only_and_rsa_ones_for_ssf(metadata: dict[str, Any]) -> None:
    # jwks_uri is the hub's one JWKS: its own keys (ES256 by default) and SSF's RS256 ones.
    status, _, body = http("GET", metadata["jwks_uri"])
    assert status == 200
    keys = json.loads(body)["keys"]
    for key in keys:
        assert key["use"] == "sig"
        assert key["kid"]
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key)
    rsa = [key for key in keys if key["kty"] == "RSA"]
    assert rsa
    for key in rsa:
        assert key["alg"] == "RS256"
        assert jwk.JWK(**key).get_op_key("verify").key_size >= 2048


# ---------------------------------------------------------------------------- tokens


def test_token_endpoint_takes_basic_or_form_credentials(local_stack: LocalStackProcess) -> None:
    form = b"grant_type=client_credentials&client_id=local-ssf-receiver&client_secret=local-ssf-secret"
    status, headers, body = local_stack.request(
        "POST", "/oauth2/token", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    answer = json.loads(body)
    assert status == 200
    assert answer["token_type"] == "Bearer"
    assert 0 < answer["expires_in"] <= 3600
    assert set(answer["scope"].split()) == {"ssf.read", "ssf.manage"}
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        (
            b"grant_type=client_credentials&client_id=local-ssf-receiver&client_secret=wrong",
            401,
            "invalid_client",
        ),
        (
            b"grant_type=client_credentials&client_id=nobody&client_secret=local-ssf-secret",
            401,
            "invalid_client",
        ),
        (
            b"grant_type=password&client_id=local-ssf-receiver&client_secret=local-ssf-secret",
            400,
            "unsupported_grant_type",
        ),
        (
            b"grant_type=client_credentials&client_id=local-ssf-receiver&client_secret=local-ssf-secret&scope=admin",
            400,
            "invalid_scope",
        ),
    ],
)
def test_token_endpoint_refusals(
    local_stack: LocalStackProcess, form: bytes, status: int, error: str
) -> None:
    got, _, body = local_stack.request(
        "POST", "/oauth2/token", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert (got, json.loads(body)["error"]) == (status, error)


def test_a_read_only_token_cannot_manage_streams(
    local_stack: LocalStackProcess, metadata: dict[str, Any]
) -> None:
    reader = Receiver(local_stack, token(local_stack, scope="ssf.read"), metadata)
    status, body = reader.call(
        "POST", metadata["configuration_endpoint"], {"events_requested": [SESSION_REVOKED]}
    )
    assert status == 403, body
    assert reader.call("GET", metadata["configuration_endpoint"])[0] == 200


# ---------------------------------------------------------------------------- stream control


def test_stream_control_happy_path(receiver: Receiver, metadata: dict[str, Any]) -> None:
    endpoint = metadata["configuration_endpoint"]
    config = receiver.create({"method": POLL})
    for name in ("stream_id", "iss", "aud", "events_delivered", "delivery"):
        assert name in config, name
    assert config["iss"] == metadata["issuer"]
    assert config["aud"] == "local-ssf-receiver"
    assert config["delivery"]["method"] == POLL
    assert config["delivery"]["endpoint_url"].startswith("http")
    assert SESSION_REVOKED in config["events_supported"]
    assert set(config["events_delivered"]) == set(config["events_requested"])
    stream = f"?stream_id={config['stream_id']}"

    status, read = receiver.call("GET", endpoint + stream)
    assert (status, read) == (200, config)
    status, listed = receiver.call("GET", endpoint)
    assert status == 200
    assert config["stream_id"] in [item["stream_id"] for item in listed]

    status, patched = receiver.call("PATCH", endpoint, {**config, "description": "patched"})
    assert status == 200
    assert patched["description"] == "patched"
    assert patched["iss"] == metadata["issuer"]
    status, replaced = receiver.call(
        "PUT",
        endpoint,
        {
            "stream_id": config["stream_id"],
            "events_requested": [SESSION_REVOKED],
            "delivery": {"method": POLL},
        },
    )
    assert status == 200
    assert replaced["events_delivered"] == [SESSION_REVOKED]
    assert "description" not in replaced

    assert receiver.call("GET", metadata["status_endpoint"] + stream) == (
        200,
        {"stream_id": config["stream_id"], "status": "enabled"},
    )
    for value in ("enabled", "paused", "disabled"):
        status, answer = receiver.call(
            "POST",
            metadata["status_endpoint"] + stream,
            {"stream_id": config["stream_id"], "status": value, "reason": "test"},
        )
        assert status == 200
        assert answer["status"] == value

    assert receiver.call("DELETE", endpoint + stream) == (204, None)
    # Deleted: every operation on it is 404.
    assert receiver.call("GET", endpoint + stream)[0] == 404
    assert receiver.call("PATCH", endpoint, {"stream_id": config["stream_id"], "description": "x"})[0] == 404
    assert receiver.call("PUT", endpoint, {"stream_id": config["stream_id"]})[0] == 404
    assert receiver.call("DELETE", endpoint + stream)[0] == 404
    assert receiver.call("GET", metadata["status_endpoint"] + stream)[0] == 404


def test_a_create_without_delivery_makes_a_poll_stream_and_duplicates_are_new_streams(
    receiver: Receiver,
) -> None:
    first, second = receiver.create(), receiver.create()
    assert first["delivery"]["method"] == POLL
    assert first["delivery"]["endpoint_url"]
    assert first["stream_id"] != second["stream_id"]


def test_invalid_tokens_get_401_before_anything_else(receiver: Receiver, metadata: dict[str, Any]) -> None:
    config = receiver.create()
    assert (
        receiver.call("DELETE", f"{metadata['configuration_endpoint']}?stream_id={config['stream_id']}")[0]
        == 204
    )
    forged = Receiver(receiver.stack, f"invalid:{uuid.uuid4()}", metadata)
    endpoint = metadata["configuration_endpoint"]
    stream = f"?stream_id={config['stream_id']}"
    for method, url, raw in (
        ("POST", endpoint, BROKEN),
        ("GET", endpoint, None),
        ("PATCH", endpoint, BROKEN),
        ("PUT", endpoint, BROKEN),
        ("DELETE", endpoint + stream, None),  # a deleted stream: 401, not 404
        ("GET", metadata["status_endpoint"] + stream, None),
        ("POST", metadata["verification_endpoint"], BROKEN),
        ("POST", config["delivery"]["endpoint_url"], BROKEN),
    ):
        status, _, body = http(
            method, url, body=raw, headers={"Authorization": f"Bearer {forged.access_token}"}
        )
        assert status == 401, (method, url, body)
    status, headers, _ = http("GET", endpoint)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")


def test_broken_bodies_and_fields_get_400(receiver: Receiver, metadata: dict[str, Any]) -> None:
    endpoint = metadata["configuration_endpoint"]
    for method in ("POST", "PATCH", "PUT"):
        status, body = receiver.call(method, endpoint, raw=BROKEN)
        assert (status, bool(body["error"])) == (400, True), method
    for document in (
        {"delivery": {"method": "urn:example:carrier-pigeon"}},
        {"delivery": {"method": PUSH}},
        {"delivery": {"method": PUSH, "endpoint_url": "ftp://example.com/x"}},
        {"events_requested": "not-a-list"},
        {"stream_id": "mine"},
        {"aud": "someone-else"},
    ):
        status, body = receiver.call("POST", endpoint, document)
        assert (status, "\n" in body["error"]) == (400, False), document
    config = receiver.create()
    status, body = receiver.call("PATCH", endpoint, {"stream_id": config["stream_id"], "aud": "someone-else"})
    assert status == 400, body


def test_a_receiver_sees_only_its_own_streams(
    local_stack: LocalStackProcess, receiver: Receiver, metadata: dict[str, Any]
) -> None:
    other_id = f"other-{uuid.uuid4().hex[:8]}"
    settings = Settings.from_env(local_stack.provisioned.env_for("SsfFunction"))
    SsfStore(local_stack.clients.dynamodb, settings.table_name).put_client(
        client_record(other_id, "other-secret")
    )
    other = Receiver(local_stack, token(local_stack, (other_id, "other-secret")), metadata)
    config = receiver.create()
    stream = f"?stream_id={config['stream_id']}"
    assert other.call("GET", metadata["configuration_endpoint"] + stream)[0] == 404
    assert other.call("DELETE", metadata["configuration_endpoint"] + stream)[0] == 404
    assert other.call("GET", metadata["status_endpoint"] + stream)[0] == 404
    assert other.call("POST", config["delivery"]["endpoint_url"], {"returnImmediately": True})[0] == 404
    assert other.call("GET", metadata["configuration_endpoint"]) == (200, [])
    assert receiver.call("GET", metadata["configuration_endpoint"] + stream)[0] == 200


def test_subjects_add_200_remove_204(receiver: Receiver, metadata: dict[str, Any]) -> None:
    config = receiver.create()
    subject = {"format": "email", "email": "example.user@example.com"}
    body = {"stream_id": config["stream_id"], "subject": subject, "verified": True}
    assert receiver.call("POST", metadata["add_subject_endpoint"], body) == (200, None)
    assert receiver.call("POST", metadata["remove_subject_endpoint"], body) == (204, None)
    assert (
        receiver.call("POST", metadata["remove_subject_endpoint"], {**body, "subject": {"format": "nope"}})[0]
        == 400
    )


# ---------------------------------------------------------------------------- verification


def test_verification_by_push_carries_state_and_the_authorization_header(
    receiver: Receiver, metadata: dict[str, Any], keys: jwk.JWKSet, push_endpoint: PushEndpoint
) -> None:
    authorization = f"Bearer push_token_{uuid.uuid4()}"
    config = receiver.create(
        {"method": PUSH, "endpoint_url": push_endpoint.url, "authorization_header": authorization}
    )
    state = str(uuid.uuid4())
    assert receiver.call(
        "POST", metadata["verification_endpoint"], {"stream_id": config["stream_id"], "state": state}
    ) == (204, None)
    received = wait_for(
        lambda: events_of(push_endpoint, keys, metadata, config, VERIFICATION),
        timeout=15,
        message="verification SET",
    )
    headers, claims = received[0]
    assert headers["Authorization"] == authorization
    assert headers["Content-Type"] == "application/secevent+jwt"
    assert claims["events"][VERIFICATION] == {"state": state}
    assert claims["sub_id"] == {"format": "opaque", "id": config["stream_id"]}
    # Again within min_verification_interval: 429.
    assert (
        receiver.call("POST", metadata["verification_endpoint"], {"stream_id": config["stream_id"]})[0] == 429
    )


def test_a_push_stream_without_authorization_header_gets_none(
    receiver: Receiver, metadata: dict[str, Any], keys: jwk.JWKSet, push_endpoint: PushEndpoint
) -> None:
    config = receiver.create({"method": PUSH, "endpoint_url": push_endpoint.url})
    assert (
        receiver.call("POST", metadata["verification_endpoint"], {"stream_id": config["stream_id"]})[0] == 204
    )
    headers, claims = wait_for(
        lambda: events_of(push_endpoint, keys, metadata, config, VERIFICATION),
        timeout=15,
        message="verification SET",
    )[0]
    assert "Authorization" not in headers
    assert claims["events"][VERIFICATION] == {}  # no state asked, none sent


def test_verification_by_poll_then_ack_only_and_poll_and_ack(
    receiver: Receiver, metadata: dict[str, Any], keys: jwk.JWKSet, local_stack: LocalStackProcess
) -> None:
    config = receiver.create({"method": POLL})
    verify = metadata["verification_endpoint"]
    first = str(uuid.uuid4())
    assert receiver.call("POST", verify, {"stream_id": config["stream_id"], "state": first})[0] == 204

    def polled() -> dict[str, str]:
        return dict(receiver.poll(config, maxEvents=10, returnImmediately=True)["sets"])

    sets = wait_for(polled, timeout=15, message="verification SET in a poll")
    claims = [verified_claims(compact, keys, metadata, config) for compact in sets.values()]
    assert [c["events"][VERIFICATION]["state"] for c in claims] == [first]
    assert list(sets) == [c["jti"] for c in claims]  # keyed by jti
    assert polled() == sets  # unacknowledged: returned again

    second = str(uuid.uuid4())
    wait_for(
        lambda: receiver.call("POST", verify, {"stream_id": config["stream_id"], "state": second})[0] == 204,
        timeout=10,
        message="second verification accepted after min_verification_interval",
    )
    wait_for(lambda: len(polled()) == 2, timeout=15, message="second verification SET")
    # Poll and acknowledge: the first SET is acknowledged, the second comes back.
    answer = receiver.poll(config, maxEvents=10, returnImmediately=True, ack=list(sets))
    states = [
        verified_claims(c, keys, metadata, config)["events"][VERIFICATION]["state"]
        for c in answer["sets"].values()
    ]
    assert states == [second]
    assert answer["moreAvailable"] is False
    # Acknowledge only (maxEvents 0): nothing returned, and the SET is gone for good.
    acked = receiver.poll(config, maxEvents=0, returnImmediately=True, ack=list(answer["sets"]))
    assert acked == {"sets": {}, "moreAvailable": False}
    assert polled() == {}


def test_a_long_poll_returns_when_a_set_arrives(receiver: Receiver, metadata: dict[str, Any]) -> None:
    config = receiver.create({"method": POLL})
    started = time.monotonic()
    result: dict[str, Any] = {}

    def long_poll() -> None:
        result.update(receiver.poll(config, maxEvents=5))

    thread = threading.Thread(target=long_poll)
    thread.start()
    assert (
        receiver.call("POST", metadata["verification_endpoint"], {"stream_id": config["stream_id"]})[0] == 204
    )
    thread.join(timeout=25)
    assert len(result["sets"]) == 1
    assert result["moreAvailable"] is False
    assert time.monotonic() - started < 21


# ---------------------------------------------------------------------------- events


def test_caep_events_reach_push_and_poll_streams_whatever_the_topic(
    receiver: Receiver,
    metadata: dict[str, Any],
    keys: jwk.JWKSet,
    push_endpoint: PushEndpoint,
    local_stack: LocalStackProcess,
) -> None:
    pushed = receiver.create(
        {"method": PUSH, "endpoint_url": push_endpoint.url}, events_requested=[SESSION_REVOKED]
    )
    polled = receiver.create({"method": POLL}, events_requested=[SESSION_REVOKED])
    topic = f"acme.sessions.{uuid.uuid4().hex[:8]}"
    event_jti = publish_caep(local_stack, topic, SESSION_REVOKED, "ada@example.com", REVOKED)

    _, claims = wait_for(
        lambda: events_of(push_endpoint, keys, metadata, pushed, SESSION_REVOKED),
        timeout=15,
        message="pushed SET",
    )[0]
    assert claims["events"] == {SESSION_REVOKED: REVOKED}
    assert claims["sub_id"] == {"format": "email", "email": "ada@example.com"}
    assert claims["txn"] == event_jti

    sets = wait_for(
        lambda: receiver.poll(polled, returnImmediately=True)["sets"], timeout=15, message="polled SET"
    )
    [(jti, compact)] = sets.items()
    polled_claims = verified_claims(compact, keys, metadata, polled)
    assert polled_claims["jti"] == jti
    assert polled_claims["events"] == {SESSION_REVOKED: REVOKED}
    assert polled_claims["jti"] != claims["jti"]  # a SET of its own per stream


def test_a_paused_stream_holds_events_until_enabled_and_removed_subjects_get_nothing(
    receiver: Receiver, metadata: dict[str, Any], keys: jwk.JWKSet, local_stack: LocalStackProcess
) -> None:
    config = receiver.create({"method": POLL}, events_requested=[SESSION_REVOKED])
    stream = config["stream_id"]
    status = metadata["status_endpoint"]
    assert receiver.call("POST", status, {"stream_id": stream, "status": "paused"})[0] == 200
    removed = {"stream_id": stream, "subject": {"format": "email", "email": "mallory@example.com"}}
    assert receiver.call("POST", metadata["remove_subject_endpoint"], removed)[0] == 204
    topic = f"acme.sessions.{uuid.uuid4().hex[:8]}"
    publish_caep(local_stack, topic, SESSION_REVOKED, "mallory@example.com", REVOKED)
    publish_caep(local_stack, topic, SESSION_REVOKED, "ada@example.com", REVOKED)

    settings = Settings.from_env(local_stack.provisioned.env_for("SsfFunction"))
    store = SsfStore(local_stack.clients.dynamodb, settings.table_name)
    wait_for(
        lambda: store.queued(stream, limit=10)[0], timeout=15, message="the event held for the paused stream"
    )
    assert receiver.poll(config, returnImmediately=True) == {"sets": {}, "moreAvailable": False}

    assert receiver.call("POST", status, {"stream_id": stream, "status": "enabled"})[0] == 200
    sets = receiver.poll(config, returnImmediately=True)["sets"]
    subjects = [verified_claims(c, keys, metadata, config)["sub_id"]["email"] for c in sets.values()]
    assert subjects == ["ada@example.com"]
