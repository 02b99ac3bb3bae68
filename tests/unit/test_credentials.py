"""sethub.credentials, its domain without AWS: roles, topic patterns, the key check and its
cache, ownership, and key administration against an in-memory store."""

from __future__ import annotations

import dataclasses

import pytest

from sethub.credentials import (
    KeyChecker,
    Principal,
    may_change,
    require_events_allowed,
    require_owner,
    require_publisher,
    require_subscriber,
)
from sethub.credentials.admin import KeyAdmin, KeyNotFoundError
from sethub.credentials.checker import CACHE_SECONDS
from sethub.credentials.keys import key_hash, key_id, new_key
from sethub.credentials.store import CredentialStore, KeyExistsError, KeyRecord
from sethub.errors import ForbiddenError, UnauthorizedError


class MemoryStore(CredentialStore):
    """The storage contract in a dict, counting reads (what a container's cache saves)."""

    def __init__(self) -> None:
        self.records: dict[str, KeyRecord] = {}
        self.reads = 0

    def get(self, key_hash: str) -> KeyRecord | None:
        self.reads += 1
        return self.records.get(key_hash)

    def create(self, record: KeyRecord) -> None:
        if record.key_hash in self.records:
            raise KeyExistsError(record.key_id)
        self.records[record.key_hash] = record

    def save(self, record: KeyRecord) -> None:
        assert record.key_hash in self.records
        self.records[record.key_hash] = record

    def list(self) -> list[KeyRecord]:
        return list(self.records.values())


class FakeGateway:
    """API Gateway keys, remembering the order of calls."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.keys: dict[str, str] = {}
        self.stored_when_added: list[bool] = []

    def add(self, value: str, *, name: str, description: str) -> str:
        self.stored_when_added.append(key_hash(value) in self.store.records)
        gateway_id = f"gw{len(self.keys)}"
        self.keys[gateway_id] = value
        return gateway_id

    def remove(self, gateway_key_id: str) -> None:
        self.keys.pop(gateway_key_id, None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def headers(key: str | None) -> dict[str, str]:
    return {} if key is None else {"X-Api-Key": key}


# Roles and topic patterns


@pytest.mark.parametrize(
    ("patterns", "topic", "allowed"),
    [
        ((), "anything.at.all", True),
        (("acme.*",), "acme.login", True),
        (("acme.*",), "acme.", True),
        (("acme.*",), "acme", False),
        (("acme.*",), "acmeX.login", False),
        (("acme.*",), "beta.acme.login", False),
        (("acme.login",), "acme.login", True),
        (("acme.login",), "acme.login.extra", False),
        # Only * is special: dots, brackets and question marks are literal.
        (("acme.?",), "acme.x", False),
        (("a[b]*",), "a[b]c", True),
        (("https://idp.example/*",), "https://idp.example/feeds/login", True),
        (("*.login", "billing.*"), "billing.paid", True),
    ],
)
def test_a_scoped_publisher_publishes_only_on_matching_topics(patterns, topic, allowed):
    publisher = Principal(key_id="p", role="publisher", topics=patterns)
    assert publisher.may_publish(topic) is allowed


def test_each_role_has_exactly_its_rights():
    admin = Principal("a", "admin", topics=())
    publisher = Principal("p", "publisher")
    subscriber = Principal("s", "subscriber")

    assert (admin.may_publish("t"), admin.may_subscribe()) == (True, True)
    assert (publisher.may_publish("t"), publisher.may_subscribe()) == (True, False)
    assert (subscriber.may_publish("t"), subscriber.may_subscribe()) == (False, True)
    with pytest.raises(ForbiddenError, match="subscriber key cannot publish"):
        require_publisher(subscriber, "t")
    with pytest.raises(ForbiddenError, match="publisher key cannot subscribe"):
        require_subscriber(publisher)
    with pytest.raises(ForbiddenError, match="not allowed on this topic"):
        require_publisher(Principal("p", "publisher", topics=("acme.*",)), "beta.login")


def test_events_are_refused_whole_when_one_topic_is_outside_the_scope():
    scoped = Principal("p", "publisher", topics=("acme.*",))
    require_events_allowed(scoped, [{"topic": "acme.login"}, {"topic": "acme.logout"}])

    with pytest.raises(ForbiddenError):
        require_events_allowed(scoped, [{"topic": "acme.login"}, {"topic": "beta.login"}])
    # A subscriber is refused before any event is looked at, even one without a topic.
    with pytest.raises(ForbiddenError):
        require_events_allowed(Principal("s", "subscriber"), [{"no": "topic"}])


# Keys


def test_a_new_key_has_256_bits_of_alphanumerics_and_is_stored_only_as_its_hash(store):
    key, record = KeyAdmin(store).create("publisher", name="acme")

    assert key.startswith("shk")
    assert key[3:].isalnum()
    assert len(key) == 46
    assert key != new_key()
    assert record.key_hash == key_hash(key)
    assert record.key_id == key_id(key)
    assert all(key not in repr(value) for value in dataclasses.asdict(record).values())
    assert key_id(key) == key_hash(key)[:16]


# The key check


def test_a_live_key_authenticates_as_its_principal(store):
    key, record = KeyAdmin(store).create("publisher", topics=("acme.*",), issuer="https://idp.acme")
    checker = KeyChecker(store)

    principal = checker.authenticate(headers(key))

    assert principal == Principal(
        key_id=record.key_id, role="publisher", topics=("acme.*",), issuer="https://idp.acme"
    )


@pytest.mark.parametrize("presented", [None, "", "   ", "x" * 300])
def test_a_missing_or_empty_key_never_matches(store, presented):
    # Even a record stored for the empty string (which no command creates) must not match.
    store.records[key_hash("")] = KeyRecord(key_hash=key_hash(""), role="admin")
    checker = KeyChecker(store)

    assert checker.lookup(presented) is None
    if presented is None or not presented.strip():
        with pytest.raises(UnauthorizedError):
            checker.authenticate(headers(presented))
    assert store.reads == 0


def test_an_unknown_key_is_forbidden(store):
    with pytest.raises(ForbiddenError, match="unknown or revoked"):
        KeyChecker(store).authenticate(headers("shk-not-a-key"))


def test_a_revoked_key_stops_working_on_a_warm_container_within_the_cache_period(store):
    clock = Clock()
    admin = KeyAdmin(store)
    key, record = admin.create("subscriber")
    checker = KeyChecker(store, clock=clock)
    assert checker.authenticate(headers(key)).role == "subscriber"

    admin.revoke(record.key_id)
    clock.now += CACHE_SECONDS - 1
    still_cached = checker.lookup(key)
    clock.now += 1
    after = checker.lookup(key)

    assert CACHE_SECONDS <= 60
    assert still_cached is not None
    assert after is None
    with pytest.raises(ForbiddenError):
        checker.authenticate(headers(key))


def test_one_read_per_key_and_period_and_a_bounded_cache(store):
    clock = Clock()
    key, _ = KeyAdmin(store).create("admin")
    checker = KeyChecker(store, clock=clock, max_entries=3)
    for _ in range(50):
        checker.lookup(key)
    assert store.reads == 1

    for n in range(10):
        checker.lookup(f"random-{n}")
    assert len(checker._cache) == 3


# Ownership


@pytest.mark.parametrize(
    ("caller", "owner", "allowed"),
    [
        (Principal("a", "subscriber"), "a", True),
        (Principal("b", "subscriber"), "a", False),
        (Principal("z", "admin"), "a", True),
        (None, "a", False),  # anonymous (public hub) cannot change what a key created
        (None, None, True),  # ...but what was created anonymously: intent verification only
        (Principal("b", "subscriber"), None, True),
    ],
)
def test_only_the_owner_or_an_admin_changes_a_subscription(caller, owner, allowed):
    assert may_change(caller, owner) is allowed
    if not allowed:
        with pytest.raises(ForbiddenError, match="belongs to another key"):
            require_owner(caller, owner)


# Administration


def test_the_table_record_exists_before_the_gateway_key_and_revocation_removes_both(store):
    gateway = FakeGateway(store)
    admin = KeyAdmin(store, gateway=gateway)  # type: ignore[arg-type]
    key, record = admin.create("publisher")

    assert gateway.stored_when_added == [True]
    assert record.gateway_key_id == "gw0"
    assert gateway.keys == {"gw0": key}
    assert store.records[record.key_hash].gateway_key_id == "gw0"

    revoked = admin.revoke(record.key_id)
    assert revoked.revoked_at is not None
    assert not revoked.active
    assert gateway.keys == {}


def test_scoping_changes_patterns_and_pinned_issuer_of_publishers_only(store):
    admin = KeyAdmin(store)
    _, publisher = admin.create("publisher")
    _, subscriber = admin.create("subscriber")

    scoped = admin.scope(publisher.key_id, ("acme.*",))
    pinned = admin.scope(publisher.key_id, issuer="https://idp.acme")
    unscoped = admin.scope(publisher.key_id, ())

    assert scoped.topics == ("acme.*",)
    assert pinned.topics == ("acme.*",)
    assert pinned.issuer == "https://idp.acme"
    assert unscoped.topics == ()
    assert unscoped.issuer == "https://idp.acme"
    with pytest.raises(ValueError, match="only publisher keys"):
        admin.scope(subscriber.key_id, ("acme.*",))
    with pytest.raises(ValueError, match="only publisher keys"):
        admin.create("subscriber", topics=("acme.*",))
    with pytest.raises(ValueError, match="control characters"):
        admin.scope(publisher.key_id, ("acme.\n",))
    with pytest.raises(KeyNotFoundError):
        admin.revoke("0123456789abcdef")


def test_seeding_a_known_key_is_idempotent(store):
    admin = KeyAdmin(store)
    first = admin.ensure("subscriber", "local-subscriber-key")
    again = admin.ensure("subscriber", "local-subscriber-key")

    assert first == again
    assert len(store.records) == 1
