"""A subscription's last delivery outcome, kept on its item for operators (``sethub subscriptions``).

Dispatch knows every delivery's outcome, but writing the subscription item on each one
would cost a write unit per delivery, ten times the delivery records' share (issue 12:
at most one write unit per event per 10 subscriptions on the success path). So the stored
outcome is rewritten only when it changes kind (delivered <-> failed) or when the stored
one is older than ``HEARTBEAT_SECONDS``: a subscription that keeps succeeding costs one
write per heartbeat, whatever the event rate, and the ``at`` an operator sees is at most
that old while deliveries go on.

The rule is here; the writes are ``SubscriptionStore.record_outcomes`` (conditional on the
stored ``at`` being older, so a late writer never overwrites a newer outcome) and dispatch
calls it once per batch, after the deliveries, as it writes the records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from sethub.records import Attempt

HEARTBEAT_SECONDS = 300
"""A stored outcome of the same kind is refreshed once it is this old: five minutes keeps a
listing's "delivered at" recent without a write per delivery."""
MAX_ERROR_CHARS = 200
"""An error is a short reason (``HTTP 503``, ``timeout``); stored cut to this length."""

Kind = Literal["delivered", "failed"]

_FAILED = frozenset({"retrying", "dead", "rejected"})
"""Attempt statuses that are a delivery that did not succeed. ``gone`` removes the
subscription and ``skipped`` sent nothing: neither is an outcome to keep."""


@dataclass(frozen=True)
class LastOutcome:
    kind: Kind
    at: float
    status_code: int | None = None
    error: str | None = None

    def describe(self) -> str:
        """``delivered (200)``, ``failed (503)``, ``failed (timeout)``: what a listing shows."""
        detail = str(self.status_code) if self.status_code else (self.error or "")
        return f"{self.kind} ({detail})" if detail else self.kind


def of_attempt(attempt: Attempt) -> LastOutcome | None:
    """The outcome an attempt is, or None when it is no delivery outcome (gone, skipped)."""
    if attempt.status == "ok":
        return LastOutcome("delivered", attempt.at, attempt.status_code or None)
    if attempt.status in _FAILED:
        error = (attempt.error or "")[:MAX_ERROR_CHARS] or None
        return LastOutcome("failed", attempt.at, attempt.status_code or None, error)
    return None


def from_item(item: Mapping[str, Any]) -> LastOutcome | None:
    """The last outcome stored on a subscription item (DynamoDB's JSON), or None."""
    kind = item.get("last_outcome", {}).get("S")
    if kind not in ("delivered", "failed"):
        return None
    status = int(item.get("last_status", {}).get("N", "0"))
    return LastOutcome(
        "delivered" if kind == "delivered" else "failed",
        float(item.get("last_outcome_at", {}).get("N", "0")),
        status or None,
        item.get("last_error", {}).get("S"),
    )


def is_due(stored: LastOutcome | None, new: LastOutcome) -> bool:
    """Whether ``new`` must be written over ``stored``: none yet, another kind, or a stale one."""
    if stored is None or stored.kind != new.kind:
        return True
    return new.at - stored.at >= HEARTBEAT_SECONDS


def latest(attempts: Iterable[Attempt]) -> dict[tuple[str, str], LastOutcome]:
    """Each (topic, callback)'s outcome in a batch: the latest, and a failure over a success
    of the same time (a batch's attempts share one ``at``; the failure is what needs a look)."""
    found: dict[tuple[str, str], LastOutcome] = {}
    for attempt in attempts:
        outcome = of_attempt(attempt)
        if outcome is None:
            continue
        key = (attempt.topic, attempt.callback)
        before = found.get(key)
        if before is None or outcome.at > before.at or (outcome.at == before.at and outcome.kind == "failed"):
            found[key] = outcome
    return found


__all__ = ["HEARTBEAT_SECONDS", "LastOutcome", "from_item", "is_due", "latest", "of_attempt"]
