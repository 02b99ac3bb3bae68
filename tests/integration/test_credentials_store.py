"""Keys with roles against moto: the DynamoDB store, the operator command (with API Gateway's
usage plan), and subscription ownership in the hub, including issue 11's takeover replayed
against ``python -m sethub.receiver``."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from operator_cli import run_cli
from websub_peer import CallbackServer, websub_peer

from sethub.cli.target import CliClients
from sethub.credentials import KeyChecker
from sethub.credentials.admin import KeyAdmin
from sethub.credentials.dynamodb import PARTITION, DynamoDBCredentialStore
from sethub.credentials.keys import key_hash
from sethub.credentials.store import KeyExistsError
from sethub.messages import VerifyIntent, parse_message
from sethub.outbound import GuardedHttp
from sethub.receiver import Receiver
from sethub.store import SubscriptionStore
from sethub.subscriptions import subscription_key, topic_key
from sethub.verification import MAX_RESPONSE_BYTES, Outcome, Verifier
from sethub.websub import Hub, HubReply, parse_hub_request

BASE_URL = "http://127.0.0.1:3000"
TOPIC = "acme.login"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def store(hub: Any) -> DynamoDBCredentialStore:
    return DynamoDBCredentialStore(hub.clients, hub.settings.table_name)


# The store


def test_records_round_trip_and_hold_only_the_hash(hub: Any, store: DynamoDBCredentialStore) -> None:
    key, record = KeyAdmin(store).create(
        "publisher", topics=("acme.*", "billing.*"), name="acme", issuer="https://idp.acme"
    )

    assert store.get(record.key_hash) == record
    assert record in store.list()
    with pytest.raises(KeyExistsError):
        store.create(record)
    item = hub.clients.dynamodb.get_item(
        TableName=hub.settings.table_name, Key={"pk": {"S": PARTITION}, "sk": {"S": f"KEY#{record.key_hash}"}}
    )["Item"]
    assert key not in repr(item)
    assert item["role"] == {"S": "publisher"}


# The operator command


@pytest.fixture
def usage_plan(moto_endpoint: str) -> tuple[Any, str]:
    apigateway = boto3.client("apigateway")
    plan = apigateway.create_usage_plan(
        name=f"plan-{time.time_ns()}", throttle={"rateLimit": 5, "burstLimit": 10}
    )
    return apigateway, plan["id"]


def command(hub: Any, usage_plan: tuple[Any, str], *argv: str, stdin: str = "") -> tuple[int, str, str]:
    """``sethub keys ARGV`` on the hub's table and the usage plan."""
    _, plan_id = usage_plan
    return run_cli(
        ["keys", "--usage-plan", plan_id, *argv, "--table", hub.settings.table_name],
        clients=CliClients(),  # the fixture points boto3 at moto (AWS_ENDPOINT_URL)
        stdin=stdin,
    )


def test_the_command_creates_a_key_once_adds_it_to_the_usage_plan_and_revokes_it(
    hub: Any, store: DynamoDBCredentialStore, usage_plan: tuple[Any, str]
) -> None:
    apigateway, plan_id = usage_plan
    code, out, err = command(
        hub, usage_plan, "create", "--role", "publisher", "--topics", "acme.*", "--name", "acme"
    )
    assert code == 0
    [key] = [line.split()[1] for line in out.splitlines() if line.split()[:1] == ["key"]]
    assert "not kept" in err

    # The key works and is the publisher it was made as, in the table and at the gateway.
    principal = KeyChecker(store).lookup(key)
    assert principal is not None
    assert (principal.role, principal.topics, principal.name) == ("publisher", ("acme.*",), "acme")
    [plan_key] = apigateway.get_usage_plan_keys(usagePlanId=plan_id)["items"]
    assert apigateway.get_api_key(apiKey=plan_key["id"], includeValue=True)["value"] == key

    # Listing never shows the key; scoping narrows it.
    code, listing, _ = command(hub, usage_plan, "list")
    assert code == 0
    assert principal.key_id in listing
    assert key not in listing
    assert command(hub, usage_plan, "scope", principal.key_id, "--topics", "acme.login")[0] == 0
    scoped = KeyChecker(store).lookup(key)
    assert scoped is not None
    assert scoped.topics == ("acme.login",)

    # Revoked: refused by a fresh container at once, and gone from the gateway.
    code, out, _ = command(hub, usage_plan, "revoke", principal.key_id)
    assert code == 0
    assert "revoked" in out
    assert KeyChecker(store).lookup(key) is None
    assert apigateway.get_usage_plan_keys(usagePlanId=plan_id)["items"] == []


def test_an_existing_key_is_kept_from_standard_input_and_never_printed(
    hub: Any, store: DynamoDBCredentialStore, usage_plan: tuple[Any, str]
) -> None:
    old_key = "Ol4KeyOfTheSingleKeyEra0123456789abcdef"
    code, out, _ = command(hub, usage_plan, "create", "--role", "admin", "--from-stdin", stdin=f"{old_key}\n")
    short = command(hub, usage_plan, "create", "--role", "admin", "--from-stdin", stdin="short\n")

    assert code == 0
    assert old_key not in out
    principal = KeyChecker(store).lookup(old_key)
    assert principal is not None
    assert principal.role == "admin"
    assert short[0] == 1


def test_the_command_refuses_bad_requests_with_one_line(hub: Any, usage_plan: tuple[Any, str]) -> None:
    scoped_subscriber = command(hub, usage_plan, "create", "--role", "subscriber", "--topics", "a.*")
    unknown = command(hub, usage_plan, "revoke", "0000000000000000")

    assert scoped_subscriber[0] == unknown[0] == 1
    assert scoped_subscriber[2].count("\n") == unknown[2].count("\n") == 1
    assert "only publisher keys" in scoped_subscriber[2]
    assert "no key has the id" in unknown[2]


# Subscription ownership


class Owners:
    """One hub and its verifier over the ``hub`` fixture, with two subscriber keys, a
    publisher key and an admin key (the fixture's local-dev-key)."""

    def __init__(self, fixture: Any, **changes: Any) -> None:
        self.fixture = fixture
        self.settings = dataclasses.replace(fixture.settings, **changes)
        self.hub = Hub(fixture.clients, self.settings)
        self.store = SubscriptionStore(fixture.clients, self.settings)
        http = GuardedHttp.from_settings(self.settings, max_response_bytes=MAX_RESPONSE_BYTES)
        self.verifier = Verifier(self.store, http)
        admin = KeyAdmin(DynamoDBCredentialStore(fixture.clients, self.settings.table_name))
        self.victim, _ = admin.create("subscriber", name="victim")
        self.attacker, _ = admin.create("subscriber", name="attacker")
        self.publisher, _ = admin.create("publisher")
        self.admin: str = fixture.api_key

    def post(self, params: dict[str, str], key: str | None) -> HubReply:
        request = parse_hub_request(query=None, body=urlencode(params).encode(), content_type=FORM)
        headers = {} if key is None else {"x-api-key": key}
        return self.hub.handle(request, headers=headers, base_url=BASE_URL)

    def subscribe(self, callback: str, key: str | None, **extra: str) -> HubReply:
        return self.post(
            {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": callback, **extra}, key
        )

    def unsubscribe(self, callback: str, key: str | None) -> HubReply:
        return self.post({"hub.mode": "unsubscribe", "hub.topic": TOPIC, "hub.callback": callback}, key)

    def verify_all(self) -> list[Outcome]:
        outcomes = []
        while messages := self.fixture.clients.sqs.receive_message(
            QueueUrl=self.settings.verify_queue_url, MaxNumberOfMessages=10
        ).get("Messages", []):
            for message in messages:
                self.fixture.clients.sqs.delete_message(
                    QueueUrl=self.settings.verify_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
                parsed = parse_message(message["Body"])
                assert isinstance(parsed, VerifyIntent)
                outcomes.append(self.verifier.process(parsed))
        return outcomes

    def subscription(self, callback: str) -> Any:
        return self.store.get_active(TOPIC, callback, now=time.time())


@pytest.fixture
def owners(hub: Any) -> Owners:
    owners = Owners(hub)
    assert owners.post({"hub.mode": "register", "hub.topic": TOPIC}, owners.admin).status == 200
    return owners


@pytest.fixture
def victim_receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def callbacks() -> Iterator[CallbackServer]:
    with websub_peer() as server:
        yield server


def test_the_takeover_of_issue_11_fails(owners: Owners, victim_receiver: Receiver) -> None:
    # GIVEN a subscriber's receiver subscribed with its own key and secret
    callback = victim_receiver.url
    victim_receiver.expect("subscribe", TOPIC)
    assert owners.subscribe(callback, owners.victim, **{"hub.secret": "victim-secret"}).status == 202
    assert [o.kind for o in owners.verify_all()] == ["verified"]
    before = owners.subscription(callback)
    assert before.owner is not None

    # WHEN another subscriber re-points it at its own secret, shortens it, or unsubscribes it
    resubscribe = owners.subscribe(
        callback, owners.attacker, **{"hub.secret": "attacker-secret", "hub.lease_seconds": "300"}
    )
    unsubscribe = owners.unsubscribe(callback, owners.attacker)
    # ...or tries with a publisher key, or with none at all
    publisher = owners.subscribe(callback, owners.publisher, **{"hub.secret": "attacker-secret"})
    anonymous = owners.subscribe(callback, None, **{"hub.secret": "attacker-secret"})

    # THEN every attempt is refused at the door and nothing changed
    assert (resubscribe.status, unsubscribe.status, publisher.status, anonymous.status) == (
        403,
        403,
        403,
        401,
    )
    assert "belongs to another key" in resubscribe.body
    assert owners.verify_all() == []
    assert owners.subscription(callback) == before
    assert before.secret == b"victim-secret"


def raw_subscription(owners: Owners, callback: str) -> dict[str, Any]:
    """The subscription's item as stored, whatever its state."""
    item: dict[str, Any] = owners.fixture.clients.dynamodb.get_item(
        TableName=owners.settings.table_name,
        Key={"pk": {"S": topic_key(TOPIC)}, "sk": {"S": subscription_key(callback)}},
        ConsistentRead=True,
    )["Item"]
    return item


def test_a_disabled_subscription_still_belongs_to_its_owner(
    owners: Owners, victim_receiver: Receiver
) -> None:
    # GIVEN the victim's subscription, disabled by dispatch after days of failed deliveries
    callback = victim_receiver.url
    victim_receiver.expect("subscribe", TOPIC)
    assert owners.subscribe(callback, owners.victim, **{"hub.secret": "victim-secret"}).status == 202
    assert [o.kind for o in owners.verify_all()] == ["verified"]
    assert owners.store.disable(TOPIC, callback, requested_at=owners.subscription(callback).requested_at)
    before = raw_subscription(owners, callback)
    assert before["state"] == {"S": "disabled"}

    # WHEN another key re-subscribes it (which would enable it with the attacker's secret),
    # unsubscribes it, or an anonymous caller tries
    resubscribe = owners.subscribe(callback, owners.attacker, **{"hub.secret": "attacker-secret"})
    unsubscribe = owners.unsubscribe(callback, owners.attacker)
    anonymous = owners.subscribe(callback, None, **{"hub.secret": "attacker-secret"})

    # THEN each is refused and nothing changed, not even a request waiting for verification
    assert (resubscribe.status, unsubscribe.status, anonymous.status) == (403, 403, 401)
    assert "belongs to another key" in resubscribe.body
    assert owners.verify_all() == []
    assert raw_subscription(owners, callback) == before

    # AND its owner re-subscribing enables it again, still its owner, with the owner's secret
    victim_receiver.expect("subscribe", TOPIC)
    assert owners.subscribe(callback, owners.victim, **{"hub.secret": "victim-again"}).status == 202
    assert [o.kind for o in owners.verify_all()] == ["verified"]
    enabled = owners.subscription(callback)
    assert (enabled.owner, enabled.secret) == (before["owner"]["S"], b"victim-again")


def test_a_request_stored_before_the_subscription_was_disabled_is_not_applied(
    owners: Owners, callbacks: CallbackServer
) -> None:
    # GIVEN a disabled subscription and another key's request stored anyway (raced past the check)
    callback = callbacks.url("/cb")
    owners.subscribe(callback, owners.victim, **{"hub.secret": "victim"})
    assert [o.kind for o in owners.verify_all()] == ["verified"]
    assert owners.store.disable(TOPIC, callback, requested_at=owners.subscription(callback).requested_at)
    before = raw_subscription(owners, callback)
    now = time.time()
    attacker = KeyChecker(DynamoDBCredentialStore(owners.fixture.clients, owners.settings.table_name)).lookup(
        owners.attacker
    )
    assert attacker is not None
    request_id = owners.store.put_pending(
        mode="subscribe",
        topic=TOPIC,
        callback=callback,
        format="jwt",
        secret=None,
        lease_seconds=300,
        requested_at=time.time_ns(),
        now=now,
        requester=attacker.key_id,
        owner=attacker.key_id,
    )
    pending = owners.store.get_pending(TOPIC, callback, request_id, now=now)
    assert pending is not None

    # WHEN its verification is confirmed, THEN the transaction's own check refuses it
    assert owners.store.apply_verified(pending, now=now) is False
    assert raw_subscription(owners, callback) == before


def test_an_expired_or_unsubscribed_subscription_may_be_claimed_by_another_key(
    owners: Owners, callbacks: CallbackServer
) -> None:
    # An unsubscribed callback belongs to nobody: another key subscribes it and owns it.
    callback = callbacks.url("/cb")
    owners.subscribe(callback, owners.victim)
    assert [o.kind for o in owners.verify_all()] == ["verified"]
    owners.unsubscribe(callback, owners.victim)
    assert [o.kind for o in owners.verify_all()] == ["verified"]
    assert owners.subscribe(callback, owners.attacker).status == 202
    assert [o.kind for o in owners.verify_all()] == ["verified"]
    attacker_owned = owners.subscription(callback).owner
    assert attacker_owned is not None

    # A lease that ran out (disabled or not) no longer holds it either.
    owners.fixture.clients.dynamodb.update_item(
        TableName=owners.settings.table_name,
        Key={"pk": {"S": topic_key(TOPIC)}, "sk": {"S": subscription_key(callback)}},
        UpdateExpression="SET #state = :disabled, expires_at = :past",
        ExpressionAttributeNames={"#state": "state"},
        ExpressionAttributeValues={":disabled": {"S": "disabled"}, ":past": {"N": str(int(time.time()) - 1)}},
    )
    assert owners.subscribe(callback, owners.victim).status == 202
    assert [o.kind for o in owners.verify_all()] == ["verified"]
    assert owners.subscription(callback).owner not in (None, attacker_owned)


def test_on_a_public_hub_the_receiver_refuses_what_it_did_not_ask_for(
    hub: Any, victim_receiver: Receiver
) -> None:
    owners = Owners(hub, public_hub=True, open_topics=True)
    callback = victim_receiver.url
    # An anonymous subscription: the verification of intent is the only check...
    victim_receiver.expect("subscribe", TOPIC)
    assert owners.subscribe(callback, None, **{"hub.secret": "victim-secret"}).status == 202
    assert [o.kind for o in owners.verify_all()] == ["verified"]

    # ...and the receiver confirms only what it started: an anonymous takeover is rejected.
    assert owners.subscribe(callback, None, **{"hub.secret": "attacker-secret"}).status == 202
    assert [o.kind for o in owners.verify_all()] == ["rejected"]
    assert owners.unsubscribe(callback, None).status == 202
    assert [o.kind for o in owners.verify_all()] == ["rejected"]
    assert owners.subscription(callback).secret == b"victim-secret"
    # A keyed subscription on a public hub still belongs to its key.
    victim_receiver.expect("subscribe", TOPIC)
    assert owners.subscribe(callback, owners.victim, **{"hub.secret": "keyed"}).status == 202
    assert [o.kind for o in owners.verify_all()] == ["verified"]
    assert owners.subscribe(callback, None, **{"hub.secret": "attacker-secret"}).status == 403


def test_the_owner_and_an_admin_may_change_it_and_the_owner_stays(
    owners: Owners, callbacks: CallbackServer
) -> None:
    callback = callbacks.url("/cb")
    owners.subscribe(callback, owners.victim, **{"hub.secret": "one"})
    owners.verify_all()
    owner = owners.subscription(callback).owner

    assert owners.subscribe(callback, owners.victim, **{"hub.secret": "two", "format": "json"}).status == 202
    owners.verify_all()
    assert owners.subscribe(callback, owners.admin, **{"hub.secret": "three"}).status == 202
    owners.verify_all()

    changed = owners.subscription(callback)
    assert (changed.secret, changed.owner) == (b"three", owner)
    assert owners.unsubscribe(callback, owners.victim).status == 202
    assert [o.kind for o in owners.verify_all()] == ["verified"]
    assert owners.subscription(callback) is None


def test_a_request_racing_the_owners_is_neither_stored_over_it_nor_applied(
    owners: Owners, callbacks: CallbackServer
) -> None:
    callback = callbacks.url("/cb")  # a callback that confirms every challenge
    # The victim's request is waiting for verification: another key cannot replace it...
    assert owners.subscribe(callback, owners.victim, **{"hub.secret": "victim"}).status == 202
    racing = owners.subscribe(callback, owners.attacker, **{"hub.secret": "attacker"})
    assert racing.status == 403
    assert "waiting for verification" in racing.body

    # ...so the one verification the callback confirms is the victim's own.
    assert [o.kind for o in owners.verify_all()] == ["verified"]
    assert owners.subscription(callback).secret == b"victim"


def test_a_request_stored_before_ownership_changed_is_not_applied(
    hub: Any, callbacks: CallbackServer
) -> None:
    owners = Owners(hub)
    owners.post({"hub.mode": "register", "hub.topic": TOPIC}, owners.admin)
    callback = callbacks.url("/cb")
    store = owners.store
    # The attacker's request was stored while nobody owned the callback (newer than the victim's)...
    now = time.time()
    victim_id = KeyChecker(DynamoDBCredentialStore(hub.clients, owners.settings.table_name)).lookup(
        owners.victim
    )
    attacker_id = KeyChecker(DynamoDBCredentialStore(hub.clients, owners.settings.table_name)).lookup(
        owners.attacker
    )
    assert victim_id is not None
    assert attacker_id is not None
    owners.subscribe(callback, owners.victim, **{"hub.secret": "victim"})
    assert [o.kind for o in owners.verify_all()] == ["verified"]
    request_id = store.put_pending(
        mode="subscribe",
        topic=TOPIC,
        callback=callback,
        format="jwt",
        secret=None,
        lease_seconds=300,
        requested_at=time.time_ns(),
        now=now,
        requester=attacker_id.key_id,
        owner=attacker_id.key_id,
    )
    pending = store.get_pending(TOPIC, callback, request_id, now=now)
    assert pending is not None

    # ...so even a callback that confirms it cannot make it replace the victim's subscription.
    assert store.apply_verified(pending, now=now) is False
    kept = owners.subscription(callback)
    assert (kept.owner, kept.secret) == (victim_id.key_id, b"victim")


def test_a_key_hash_is_the_only_trace_of_a_key_in_the_table(hub: Any, owners: Owners) -> None:
    items = hub.clients.dynamodb.scan(TableName=owners.settings.table_name)["Items"]
    text = repr(items)
    for key in (owners.victim, owners.attacker, owners.publisher, owners.admin):
        assert key not in text
        assert key_hash(key) in text
