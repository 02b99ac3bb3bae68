"""``SubscriptionStore.due_outcomes``: what it passes over by a lookup changes no write.

It skips the success path (a success over a stored success younger than the heartbeat)
without working out outcomes; the writes it returns must be exactly those of the rule
itself, ``sethub.outcomes.latest`` then ``is_due`` for every subscription the store read.
"""

from __future__ import annotations

import random
from typing import Any

from sethub.clients import AwsClients
from sethub.outcomes import HEARTBEAT_SECONDS, is_due, latest
from sethub.records import Attempt, Status
from sethub.settings import Settings
from sethub.store import OutcomeWrite, SubscriptionStore
from sethub.subscriptions import subscription_id, subscription_key

TOPIC = "acme.login"
NOW = 1_790_000_000.0
STATUSES: list[Status] = ["ok", "ok", "ok", "retrying", "dead", "rejected", "gone", "skipped"]


def _item(callback: str, requested_at: int, stored: tuple[str, float] | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "sk": {"S": subscription_key(callback)},
        "callback": {"S": callback},
        "format": {"S": "jwt"},
        "lease_seconds": {"N": "3600"},
        "expires_at": {"N": str(int(NOW) + 3600)},
        "requested_at": {"N": str(requested_at)},
    }
    if stored is not None:
        item["last_outcome"] = {"S": stored[0]}
        item["last_outcome_at"] = {"N": f"{stored[1]:.3f}"}
    return item


def _by_the_rule(store: SubscriptionStore, attempts: list[Attempt]) -> list[OutcomeWrite]:
    due = []
    for (topic, callback), outcome in latest(attempts).items():
        known = store._known_outcomes.get(subscription_id(topic, callback))
        if known is not None and is_due(known[1], outcome):
            due.append(OutcomeWrite(topic, callback, known[0], outcome))
    return due


def _store_with(callbacks: list[str], rng: random.Random) -> SubscriptionStore:
    """A store that has read ``callbacks`` for delivery, with stored outcomes of every kind."""
    store = SubscriptionStore(AwsClients(), Settings(table_name="hub"))
    stored_choices: list[tuple[str, float] | None] = [
        None,
        ("delivered", NOW - 10),
        ("delivered", NOW - HEARTBEAT_SECONDS),  # stale exactly at the heartbeat
        ("delivered", NOW - HEARTBEAT_SECONDS + 0.001),
        ("failed", NOW - 10),
        ("delivered", NOW + 5),  # a newer outcome stored by another invocation
    ]
    for index, callback in enumerate(callbacks):
        store._subscription(TOPIC, _item(callback, 1000 + index, rng.choice(stored_choices)))
    return store


def test_due_outcomes_are_the_rules_own_for_any_mix_of_attempts() -> None:
    rng = random.Random(12)
    callbacks = [f"https://sub{index}.example/hook" for index in range(40)]
    unread = [f"https://unread{index}.example/hook" for index in range(5)]
    for _ in range(300):
        store = _store_with(callbacks, rng)
        attempts = []
        for _ in range(rng.randint(0, 60)):
            callback = rng.choice(callbacks + unread)
            at = NOW + rng.choice([-20.0, 0.0, 0.0, 3.0])
            status = rng.choice(STATUSES)
            attempts.append(Attempt("jti", TOPIC, callback, 1, status, at, 200 if status == "ok" else 503))
            if rng.random() < 0.1:  # as read back from the table: an id, no callback
                attempts.append(
                    Attempt("jti", TOPIC, "", 1, status, at, subscription_id=subscription_id(TOPIC, callback))
                )
        assert store.due_outcomes(iter(attempts)) == _by_the_rule(store, attempts)


def test_the_success_path_is_no_write_and_a_change_is_one() -> None:
    callbacks = [f"https://sub{index}.example/hook" for index in range(1000)]
    store = SubscriptionStore(AwsClients(), Settings(table_name="hub"))
    for index, callback in enumerate(callbacks):
        store._subscription(TOPIC, _item(callback, index, ("delivered", NOW - 60)))
    delivered = [Attempt("jti", TOPIC, callback, 1, "ok", NOW, 200) for callback in callbacks]
    assert store.due_outcomes(delivered) == []

    failed = Attempt("jti", TOPIC, callbacks[7], 1, "retrying", NOW, 503, error="HTTP 503")
    (write,) = store.due_outcomes([*delivered, failed])
    assert (write.callback, write.requested_at, write.outcome.kind, write.outcome.status_code) == (
        callbacks[7],
        7,
        "failed",
        503,
    )
