"""What a publisher key bounds, against moto: ``jti`` markers scoped by the key (one
publisher cannot pre-claim another's ``jti``), the key's pinned ``iss``, and the signed
SET's audience (the event's topic, so a recipient cannot replay it to another topic)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from seeding import seed_subscription

from sethub.credentials import Principal
from sethub.credentials.admin import KeyAdmin
from sethub.credentials.dynamodb import DynamoDBCredentialStore
from sethub.dispatch import Dispatcher
from sethub.errors import BadRequestError, ForbiddenError
from sethub.ingest import Ingestor
from sethub.keyring import signer_for
from sethub.store import SubscriptionStore
from sethub.websub import Hub, parse_hub_request

BASE_URL = "http://127.0.0.1:3000"
LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"
ACME = Principal(key_id="a" * 16, role="publisher")
GLOBEX = Principal(key_id="b" * 16, role="publisher")
PINNED = Principal(key_id="c" * 16, role="publisher", issuer="https://idp.acme.example")
ADMIN = Principal(key_id="d" * 16, role="admin")


def event(topic: str = "acme.login", **claims: Any) -> dict[str, Any]:
    return {"topic": topic, "events": {LOGIN: {"user": {"id": "42"}}}, **claims}


def queued(hub: Any) -> list[dict[str, Any]]:
    """The SET claims now on the events queue (removed from it)."""
    found: list[dict[str, Any]] = []
    while True:
        messages = hub.clients.sqs.receive_message(
            QueueUrl=hub.settings.events_queue_url, MaxNumberOfMessages=10
        ).get("Messages", [])
        if not messages:
            return found
        for message in messages:
            found.append(json.loads(message["Body"]))
            hub.clients.sqs.delete_message(
                QueueUrl=hub.settings.events_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )


def markers(hub: Any) -> list[str]:
    items = hub.clients.dynamodb.scan(TableName=hub.settings.table_name)["Items"]
    return sorted(item["pk"]["S"] for item in items if item["pk"]["S"].startswith("EVENT"))


@pytest.fixture
def ingestor(hub: Any) -> Ingestor:
    SubscriptionStore(hub.clients, hub.settings).register_topic("acme.login")
    return Ingestor(hub.clients, hub.settings)


def test_one_publisher_cannot_pre_claim_another_publishers_jti(hub: Any, ingestor: Ingestor) -> None:
    ingestor.ingest([event(jti="order-1", txn="acme")], base_url=BASE_URL, publisher=ACME)

    ingestor.ingest([event(jti="order-1", txn="globex")], base_url=BASE_URL, publisher=GLOBEX)

    assert sorted(message["claims"]["txn"] for message in queued(hub)) == ["acme", "globex"]


def test_a_publisher_resending_its_own_jti_is_still_deduplicated(hub: Any, ingestor: Ingestor) -> None:
    for _ in range(2):
        ingestor.ingest([event(jti="order-1")], base_url=BASE_URL, publisher=ACME)

    assert len(queued(hub)) == 1


def test_a_pinned_issuer_is_the_default_iss_of_the_keys_events(hub: Any, ingestor: Ingestor) -> None:
    ingestor.ingest([event()], base_url=BASE_URL, publisher=PINNED)

    [message] = queued(hub)
    assert message["claims"]["iss"] == "https://idp.acme.example"


@pytest.mark.parametrize(
    ("publisher", "iss"),
    [(PINNED, "https://idp.globex.example"), (ACME, "https://idp.globex.example")],
    ids=["another issuer than the pinned one", "a key without a pinned issuer naming one"],
)
def test_an_issuer_the_key_may_not_use_is_refused_and_nothing_is_accepted(
    hub: Any, ingestor: Ingestor, publisher: Principal, iss: str
) -> None:
    with pytest.raises(ForbiddenError) as refused:
        ingestor.ingest(
            [event(jti="fine-1"), event(jti="forged-1", iss=iss)], base_url=BASE_URL, publisher=publisher
        )

    assert refused.value.status == 403
    assert [entry["index"] for entry in refused.value.problems] == [1]
    assert queued(hub) == []
    assert markers(hub) == []


def test_a_set_published_through_the_hub_is_bound_by_the_keys_pinned_issuer(
    hub: Any, ingestor: Ingestor
) -> None:
    # GIVEN a publisher key pinned to its issuer, publishing SETs WSO2-style through /hub
    key, _ = KeyAdmin(DynamoDBCredentialStore(hub.clients, hub.settings.table_name)).create(
        "publisher", issuer="https://idp.acme.example"
    )
    websub = Hub(hub.clients, hub.settings, ingestor=ingestor)

    def publish(claims: dict[str, Any]) -> Any:
        request = parse_hub_request(
            query={"hub.mode": "publish", "hub.topic": "acme.login"},
            body=json.dumps(claims).encode(),
            content_type="application/json",
        )
        return websub.handle(request, headers={"x-api-key": key}, base_url=BASE_URL)

    # WHEN it names another issuer, THEN 403 and nothing is queued; without one, its own is set
    forged = publish({"events": {LOGIN: {}}, "iss": "https://idp.globex.example", "jti": "forged-1"})
    assert forged.status == 403
    assert queued(hub) == []
    assert markers(hub) == []
    assert publish({"events": {LOGIN: {}}, "jti": "fine-1"}).status == 202
    [message] = queued(hub)
    assert message["claims"]["iss"] == "https://idp.acme.example"


def test_the_hubs_own_issuer_and_an_admins_any_issuer_are_accepted(hub: Any, ingestor: Ingestor) -> None:
    ingestor.ingest([event(iss=BASE_URL)], base_url=BASE_URL, publisher=ACME)
    ingestor.ingest([event(iss="https://idp.globex.example")], base_url=BASE_URL, publisher=ADMIN)

    assert [m["claims"]["iss"] for m in queued(hub)] == [BASE_URL, "https://idp.globex.example"]


def test_a_control_character_in_one_jti_refuses_the_request_whole(hub: Any, ingestor: Ingestor) -> None:
    with pytest.raises(BadRequestError) as refused:
        ingestor.ingest([event(jti="ok-1"), event(jti="bad\n1")], base_url=BASE_URL, publisher=ACME)

    assert refused.value.status == 400
    assert refused.value.problems == [{"index": 1, "problems": ["jti must not contain control characters"]}]
    assert queued(hub) == []
    assert markers(hub) == []


@dataclass
class Recorder:
    """An ``Http`` that answers 202 and keeps what it was sent."""

    sent: list[tuple[str, bytes]] = field(default_factory=list)

    def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> Any:
        self.sent.append((url, body or b""))
        return _Answer()


class _Answer:
    status = 202
    headers: Mapping[str, str] = {}
    body = b""


def test_a_delivered_set_is_bound_to_its_topic_and_verifies_for_no_other(
    hub: Any, ingestor: Ingestor
) -> None:
    store = SubscriptionStore(hub.clients, hub.settings)
    seed_subscription(store, "acme.login", "https://crm.example/hook")
    ingestor.ingest([event(jti="bound-1")], base_url=BASE_URL, publisher=ACME)
    http = Recorder()

    Dispatcher(hub.clients, hub.settings, http=http).dispatch(
        [(str(index), json.dumps(message)) for index, message in enumerate(queued(hub))]
    )

    [(_, body)] = http.sent
    token = body.decode()
    header = jwt.get_unverified_header(token)
    jwks = signer_for(hub.clients, hub.settings).jwks()
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]].key
    claims = jwt.decode(token, key, algorithms=[header["alg"]], audience="acme.login")
    assert (claims["jti"], claims["aud"]) == ("bound-1", "acme.login")
    # A subscriber of another topic, verifying as it should, refuses the replayed SET.
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, key, algorithms=[header["alg"]], audience="acme.logout")
