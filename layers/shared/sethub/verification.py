"""Verification of intent and denial callbacks (W3C WebSub 5.2, 5.3): the verify queue's work.

For a ``VerifyIntent`` the hub GETs the callback with ``hub.mode``, ``hub.topic``, a
fresh random ``hub.challenge`` and, for subscribe, the granted ``hub.lease_seconds``.
Only a 2xx whose body is exactly the challenge applies the pending request; any other
answer spends the request and leaves the subscription state as it was.

Outcomes that retrying cannot change (a refused address, a wrong answer) are returned,
for the handler to log; a network failure raises ``OutboundError`` so that the queue
message fails and SQS redelivers it, up to the queue's ``maxReceiveCount``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from sethub.errors import BlockedAddressError
from sethub.messages import DenySubscription, VerifyIntent, VerifyQueueMessage
from sethub.store import SubscriptionStore

if TYPE_CHECKING:
    from sethub.outbound import GuardedHttp

MAX_RESPONSE_BYTES = 4096
"""A challenge is 43 characters; nothing longer can be a correct answer."""

UNKNOWN_TOPIC = "unknown topic"

OutcomeKind = Literal["verified", "superseded", "rejected", "blocked", "expired", "denied"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one verify-queue message; ``detail`` is one line, without secrets."""

    kind: OutcomeKind
    topic: str
    callback: str
    detail: str = ""


def new_challenge() -> str:
    """256 random bits, URL-safe: never reused, never derived from anything."""
    return secrets.token_urlsafe(32)


def callback_url(callback: str, params: Mapping[str, str]) -> str:
    """The callback with ``params`` appended to its own query string (kept as it is)."""
    parts = urlsplit(callback)
    extra = urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    # The fragment is the subscriber's own business and is never sent.
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


class Verifier:
    """Processes verify-queue messages; built once per container."""

    def __init__(
        self,
        store: SubscriptionStore,
        http: GuardedHttp,
        *,
        clock: Callable[[], float] = time.time,
        challenge: Callable[[], str] = new_challenge,
    ) -> None:
        self._store = store
        self._http = http
        self._clock = clock
        self._challenge = challenge

    def process(self, message: VerifyQueueMessage) -> Outcome:
        if isinstance(message, VerifyIntent):
            return self.verify(message)
        return self.deny(message)

    def verify(self, message: VerifyIntent) -> Outcome:
        request = self._store.get_pending(message.topic, message.request_id, now=self._clock())
        if request is None:
            # Already applied (a redelivered message), superseded, or over a day old.
            return Outcome("expired", message.topic, message.callback, "no pending request")
        challenge = self._challenge()
        params = {"hub.mode": request.mode, "hub.topic": request.topic, "hub.challenge": challenge}
        if request.mode == "subscribe":
            params["hub.lease_seconds"] = str(request.lease_seconds)
        try:
            response = self._http.request("GET", callback_url(request.callback, params))
        except BlockedAddressError as exc:
            self._store.discard_pending(request.topic, request.request_id)
            return Outcome("blocked", request.topic, request.callback, str(exc))
        # OutboundError propagates: the message fails and SQS tries again later.
        if not 200 <= response.status < 300:
            self._store.discard_pending(request.topic, request.request_id)
            return Outcome(
                "rejected", request.topic, request.callback, f"callback answered {response.status}"
            )
        if not secrets.compare_digest(response.body, challenge.encode("ascii")):
            self._store.discard_pending(request.topic, request.request_id)
            return Outcome("rejected", request.topic, request.callback, "callback did not echo the challenge")
        if self._store.apply_verified(request, now=self._clock()):
            return Outcome("verified", request.topic, request.callback, request.mode)
        return Outcome(
            "superseded", request.topic, request.callback, "a newer request had already been applied"
        )

    def deny(self, message: DenySubscription) -> Outcome:
        params = {"hub.mode": "denied", "hub.topic": message.topic, "hub.reason": message.reason}
        try:
            response = self._http.request("GET", callback_url(message.callback, params))
        except BlockedAddressError as exc:
            return Outcome("blocked", message.topic, message.callback, str(exc))
        # The subscriber's answer to a denial changes nothing.
        return Outcome("denied", message.topic, message.callback, f"callback answered {response.status}")


__all__ = ["MAX_RESPONSE_BYTES", "UNKNOWN_TOPIC", "Outcome", "Verifier", "callback_url", "new_challenge"]
