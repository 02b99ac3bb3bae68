"""When a subscription's last outcome is worth a write (``sethub.outcomes``)."""

from __future__ import annotations

from sethub.outcomes import HEARTBEAT_SECONDS, MAX_ERROR_CHARS, LastOutcome, is_due, latest, of_attempt
from sethub.records import Attempt

T = 1_764_190_000.0
CRM = "https://crm.example/hook"
SIEM = "https://siem.example/sets"


def attempt(
    status: str, at: float = T, code: int | None = 200, error: str = "", callback: str = CRM
) -> Attempt:
    return Attempt("jti", "acme.login", callback, 1, status, at, code, error)  # type: ignore[arg-type]


def test_a_delivery_is_delivered_or_failed_and_a_removal_or_a_skip_is_no_outcome() -> None:
    assert of_attempt(attempt("ok")) == LastOutcome("delivered", T, 200)
    assert of_attempt(attempt("retrying", code=503, error="HTTP 503")) == LastOutcome(
        "failed", T, 503, "HTTP 503"
    )
    assert of_attempt(attempt("dead", code=None, error="timeout")) == LastOutcome(
        "failed", T, None, "timeout"
    )
    assert of_attempt(attempt("rejected", code=400, error="HTTP 400")) == LastOutcome(
        "failed", T, 400, "HTTP 400"
    )
    assert of_attempt(attempt("gone", code=410)) is None
    assert of_attempt(attempt("skipped", code=None, error="no subscription")) is None
    long = of_attempt(attempt("retrying", code=None, error="x" * 1000))
    assert long is not None
    assert long.error == "x" * MAX_ERROR_CHARS


def test_written_when_there_is_none_when_it_changes_kind_or_when_the_stored_one_is_stale() -> None:
    delivered = LastOutcome("delivered", T, 200)
    assert is_due(None, delivered)
    assert is_due(LastOutcome("failed", T - 1, 503), delivered)
    assert is_due(delivered, LastOutcome("failed", T + 1, None, "timeout"))
    # The same kind again: not before the heartbeat.
    assert not is_due(delivered, LastOutcome("delivered", T + 1, 204))
    assert not is_due(delivered, LastOutcome("delivered", T + HEARTBEAT_SECONDS - 1, 200))
    assert is_due(delivered, LastOutcome("delivered", T + HEARTBEAT_SECONDS, 200))
    assert not is_due(LastOutcome("failed", T, 503), LastOutcome("failed", T + 60, 500))


def test_a_batch_gives_each_subscription_its_latest_outcome_a_failure_over_a_success_of_its_time() -> None:
    found = latest(
        [
            attempt("ok", at=T),
            attempt("retrying", at=T, code=503, error="HTTP 503"),
            attempt("ok", at=T),
            attempt("retrying", at=T - 5, callback=SIEM, code=500, error="HTTP 500"),
            attempt("ok", at=T, callback=SIEM),
            attempt("gone", at=T + 9, callback=SIEM, code=410),
        ]
    )
    assert found == {
        ("acme.login", CRM): LastOutcome("failed", T, 503, "HTTP 503"),
        ("acme.login", SIEM): LastOutcome("delivered", T, 200),
    }


def test_described_as_a_listing_shows_it() -> None:
    assert LastOutcome("delivered", T, 200).describe() == "delivered (200)"
    assert LastOutcome("failed", T, 503, "HTTP 503").describe() == "failed (503)"
    assert LastOutcome("failed", T, None, "timeout").describe() == "failed (timeout)"
    assert LastOutcome("failed", T).describe() == "failed"
