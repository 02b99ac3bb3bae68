"""sethub.credentials' checks as a caller meets them: the key header, the one-line refusals and
their statuses, the per-container cache (its period, its bound, which entries it drops), the
limits on presented keys, roles and topic patterns. Pure: an in-memory store, a fake clock."""

from __future__ import annotations

import hashlib
import string

import pytest

from sethub.credentials import (
    KeyChecker,
    Principal,
    require_events_allowed,
    require_owner,
    require_subscriber,
)
from sethub.credentials.checker import (
    CACHE_SECONDS,
    presented_key,
    require_publisher,
    require_publisher_role,
)
from sethub.credentials.keys import key_hash, key_id, key_id_of_hash, new_key, presentable
from sethub.credentials.principal import parse_role, pattern_regex, validate_patterns
from sethub.credentials.store import CredentialStore, KeyRecord
from sethub.errors import BadRequestError, ForbiddenError, UnauthorizedError


class MemoryStore(CredentialStore):
    """Key records by hash, remembering which hashes were read."""

    def __init__(self) -> None:
        self.records: dict[str, KeyRecord] = {}
        self.reads: list[str] = []

    def add(self, key: str, role: str = "publisher", **fields: object) -> KeyRecord:
        record = KeyRecord(key_hash=key_hash(key), role=role, **fields)  # type: ignore[arg-type]
        self.records[record.key_hash] = record
        return record

    def get(self, key_hash: str) -> KeyRecord | None:
        self.reads.append(key_hash)
        return self.records.get(key_hash)

    def create(self, record: KeyRecord) -> None:
        self.records[record.key_hash] = record

    def save(self, record: KeyRecord) -> None:
        self.records[record.key_hash] = record

    def list(self) -> list[KeyRecord]:
        return list(self.records.values())


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def refusal(error_type: type[BadRequestError], call: object, *args: object) -> BadRequestError:
    assert callable(call)
    with pytest.raises(error_type) as caught:
        call(*args)
    return caught.value


# The key header and the refusals


@pytest.mark.parametrize("name", ["x-api-key", "X-Api-Key", "X-API-KEY"])
def test_the_key_header_is_found_in_any_letter_case_and_trimmed(name):
    assert presented_key({"Content-Type": "application/json", name: "  shk123  "}) == "shk123"


@pytest.mark.parametrize("headers", [None, {}, {"Authorization": "shk123"}, {"x-api-key": "   "}])
def test_no_key_header_or_a_blank_one_is_no_key(headers):
    assert presented_key(headers) is None


def test_a_request_without_a_key_is_401_saying_which_header_to_send():
    error = refusal(UnauthorizedError, KeyChecker(MemoryStore()).authenticate, {"Accept": "*/*"})

    assert error.status == 401
    assert error.reason == "missing API key: send it in the x-api-key header"


def test_an_unknown_or_revoked_key_is_403_with_the_same_reason():
    store = MemoryStore()
    store.add("shk-revoked", revoked_at=1_700_000_000)
    checker = KeyChecker(store)

    for key in ("shk-unknown", "shk-revoked"):
        error = refusal(ForbiddenError, checker.authenticate, {"x-api-key": key})
        assert error.status == 403
        assert error.reason == "unknown or revoked API key"


def test_on_a_public_hub_no_key_is_anonymous_but_a_sent_key_must_be_valid():
    store = MemoryStore()
    record = store.add("shk-live", role="subscriber")
    checker = KeyChecker(store)

    assert checker.optional(None) is None
    assert checker.optional({"x-api-key": ""}) is None
    assert checker.optional({"X-Api-Key": "shk-live"}) == record.principal()
    assert (
        refusal(ForbiddenError, checker.optional, {"x-api-key": "shk-bad"}).reason
        == "unknown or revoked API key"
    )


# The cache


def test_an_unknown_key_is_remembered_too_until_the_period_ends():
    store, clock = MemoryStore(), Clock()
    checker = KeyChecker(store, ttl=10.0, clock=clock)

    assert checker.ttl == 10.0
    checker.lookup("shk-unknown")
    clock.now += 9.9
    checker.lookup("shk-unknown")
    assert len(store.reads) == 1
    store.add("shk-unknown")  # created meanwhile: found once the period is over
    clock.now += 0.1
    assert checker.lookup("shk-unknown") is not None
    assert len(store.reads) == 2


def test_the_default_period_is_the_settings_default_and_at_most_a_minute():
    checker = KeyChecker(MemoryStore())

    assert checker.ttl == CACHE_SECONDS
    assert 0 < CACHE_SECONDS <= 60


def test_a_full_cache_drops_the_entry_looked_up_least_recently():
    store, clock = MemoryStore(), Clock()
    checker = KeyChecker(store, ttl=10.0, max_entries=2, clock=clock)
    checker.lookup("a")
    checker.lookup("b")
    clock.now += 11  # both expired; a is read again and is now the newest
    checker.lookup("a")
    checker.lookup("c")  # drops b, not a
    store.reads.clear()

    checker.lookup("a")
    checker.lookup("c")
    assert store.reads == []
    checker.lookup("b")
    assert store.reads == [key_hash("b")]


def test_the_cache_keeps_as_many_keys_as_it_may_and_by_default_1024():
    store = MemoryStore()
    small = KeyChecker(store, max_entries=2)
    small.lookup("a")
    small.lookup("b")
    store.reads.clear()
    small.lookup("a")
    small.lookup("b")
    assert store.reads == []

    checker = KeyChecker(store)
    for n in range(1025):
        checker.lookup(f"k{n}")
    store.reads.clear()
    checker.lookup("k1")
    checker.lookup("k0")  # the first of 1025: dropped
    assert store.reads == [key_hash("k0")]


# Roles and what they may do


def test_refusals_by_role_say_what_the_key_cannot_do():
    subscriber, publisher = Principal("s", "subscriber"), Principal("p", "publisher", topics=("acme.*",))

    assert refusal(ForbiddenError, require_publisher, subscriber, "t").reason == (
        "a subscriber key cannot publish or manage topics"
    )
    assert refusal(ForbiddenError, require_publisher, publisher, "beta.x").reason == (
        "this publisher key is not allowed on this topic"
    )
    assert refusal(ForbiddenError, require_publisher_role, subscriber).reason == (
        "a subscriber key cannot publish or manage topics"
    )
    assert refusal(ForbiddenError, require_subscriber, publisher).reason == (
        "a publisher key cannot subscribe or unsubscribe"
    )
    assert refusal(ForbiddenError, require_owner, Principal("b", "subscriber"), "a").reason == (
        "this subscription belongs to another key: only that key or an admin may change it"
    )
    require_publisher_role(publisher)
    require_publisher_role(Principal("a", "admin"))
    require_publisher(Principal("a", "admin"), "beta.x")


def test_events_without_a_usable_topic_are_left_to_validation_but_a_topic_outside_the_scope_is_403():
    publisher = Principal("p", "publisher", topics=("acme.*",))

    require_events_allowed(publisher, ["not-an-object", {"topic": 7}, {"no": "topic"}, {"topic": "acme.a"}])
    error = refusal(ForbiddenError, require_events_allowed, publisher, [{"topic": 7}, {"topic": "beta.a"}])
    assert error.reason == "this publisher key is not allowed on this topic"


def test_a_principal_says_whether_it_is_an_admin_and_whether_it_is_scoped():
    assert Principal("a", "admin").is_admin
    assert not Principal("p", "publisher").is_admin
    assert Principal("p", "publisher", topics=("acme.*",)).scoped
    assert not Principal("p", "publisher").scoped
    principal = Principal("p", "publisher", topics=("acme.*",))
    assert (principal.issuer, principal.name) == (None, "")
    # What handlers log: never the compiled patterns.
    assert "re.compile" not in repr(principal)


def test_a_star_matches_any_run_of_characters_line_breaks_included():
    assert pattern_regex("acme*end").fullmatch("acme.\n/x end")
    assert Principal("p", "publisher", topics=("acme.*",)).covers("acme.\nlogin")


@pytest.mark.parametrize("role", ["admin", "publisher", "subscriber"])
def test_the_three_roles_are_parsed(role):
    assert parse_role(role) == role


def test_another_role_is_refused_naming_the_three_and_at_most_40_characters_of_it():
    with pytest.raises(ValueError, match="x") as caught:
        parse_role("Admin" + "x" * 100)

    assert (
        str(caught.value) == f"role must be one of admin, publisher, subscriber, not {'Admin' + 'x' * 35!r}"
    )


# Limits on patterns and presented keys


def test_up_to_50_patterns_of_1_to_512_printable_characters_are_accepted():
    patterns = ("p" * 512, " ~", *(f"t{n}.*" for n in range(48)))

    assert validate_patterns(patterns) == patterns


@pytest.mark.parametrize(
    ("patterns", "reason"),
    [
        (tuple(f"t{n}" for n in range(51)), "at most 50 topic patterns per key"),
        (("",), "a topic pattern must be 1 to 512 characters"),
        (("p" * 513,), "a topic pattern must be 1 to 512 characters"),
        (("ok", "bad\x1f"), "a topic pattern must not contain control characters"),
        (("bad\x7f",), "a topic pattern must not contain control characters"),
        (("\x00",), "a topic pattern must not contain control characters"),
    ],
)
def test_patterns_over_the_limits_or_with_control_characters_are_refused_saying_why(patterns, reason):
    with pytest.raises(ValueError) as caught:
        validate_patterns(patterns)

    assert str(caught.value) == reason


def test_a_presented_key_is_trimmed_and_at_most_256_characters():
    assert presentable("  " + "k" * 256 + "\t") == "k" * 256
    assert presentable("k" * 257) is None
    assert presentable(" \t ") is None
    assert presentable(None) is None


def test_a_key_over_256_characters_is_no_key_of_this_hub_and_never_read():
    store = MemoryStore()
    error = refusal(ForbiddenError, KeyChecker(store).authenticate, {"x-api-key": "k" * 257})

    # A key was sent, so not "missing": a wrong one, refused without a table read.
    assert (error.status, error.reason) == (403, "unknown or revoked API key")
    assert store.reads == []


def test_keys_are_shk_and_43_characters_drawn_from_letters_of_both_cases_and_digits():
    keys = [new_key() for _ in range(40)]
    drawn = set("".join(key[3:] for key in keys))

    assert all(key.startswith("shk") and len(key) == 46 for key in keys)
    assert drawn <= set(string.ascii_letters + string.digits)
    # 1720 draws from 62 characters: each class shows up (missing one has odds below 1e-100).
    assert drawn & set(string.ascii_lowercase)
    assert drawn & set(string.ascii_uppercase)
    assert drawn & set(string.digits)


def test_a_key_is_stored_as_the_sha256_of_its_utf8_and_named_by_16_hex_digits_of_it():
    digest = hashlib.sha256("shk-clé".encode()).hexdigest()

    assert key_hash("shk-clé") == digest
    assert key_id("shk-clé") == digest[:16]
    assert key_id_of_hash(digest) == digest[:16]
