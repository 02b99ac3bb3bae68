"""Verification of intent and denial callbacks (W3C WebSub 5.2, 5.3): the verify queue's work.

For a ``VerifyIntent`` the hub GETs the callback with ``hub.mode``, ``hub.topic``, a
fresh random ``hub.challenge`` and, for subscribe, the granted ``hub.lease_seconds``.
Only a 2xx whose body is exactly the challenge applies the pending request; any other
answer spends the request and leaves the subscription state as it was.

What one callback can cost the verifier is bounded:

- every attempt is final: a refused address, a wrong answer, a timeout or a refused
  connection spends the request (W3C: the state stays as it was; the subscriber asks
  again), so SQS never redelivers a GET to a callback that did not answer;
- one GET takes at most ``SETHUB_DELIVERY_TIMEOUT_SECONDS`` in all, DNS included
  (``sethub.outbound``), and the messages of one batch are verified concurrently, so a
  batch takes about one timeout however many of its callbacks stall;
- a newer request for the same (topic, callback) replaces the pending one, and the
  older message then sends no GET at all (``SubscriptionStore.put_pending``);
- with ``HostLimits``: at most a few GETs in flight per callback host (a busy host's
  verification is put back on the queue with a delay, up to ``MAX_DEFERRALS`` times) and
  a few denial GETs per host per hour (more are dropped).

AWS failures (DynamoDB, SQS) raise, so the queue message fails and SQS redelivers it.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from sethub.errors import BlockedAddressError, OutboundError
from sethub.messages import DenySubscription, VerifyIntent, VerifyQueueMessage
from sethub.store import SubscriptionStore
from sethub.subscriptions import PendingRequest

if TYPE_CHECKING:
    from sethub.hostlimits import HostLimits, Slot
    from sethub.outbound import GuardedHttp

MAX_RESPONSE_BYTES = 4096
"""A challenge is 43 characters; nothing longer can be a correct answer."""

UNKNOWN_TOPIC = "unknown topic"

MAX_CONCURRENT: Final = 10
"""Verifications of one batch run side by side (the verify queue's batch size)."""
MAX_DEFERRALS: Final = 30
"""Times a verification waits for its callback's host to be free before it is given up."""
DEFER_JITTER_SECONDS: Final = 5

OutcomeKind = Literal[
    "verified", "superseded", "rejected", "blocked", "expired", "denied", "failed", "deferred", "throttled"
]

Requeue = Callable[[VerifyIntent, int], None]
"""Puts a verification back on the verify queue, visible again after so many seconds."""


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


def limit_host(callback: str) -> str:
    """The host (and port, when given) that per-host limits count the callback against."""
    try:
        parts = urlsplit(callback)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "(malformed)"
    return f"{host}:{port}" if port is not None else host


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
        limits: HostLimits | None = None,
        requeue: Requeue | None = None,
        max_concurrent: int = MAX_CONCURRENT,
    ) -> None:
        """``limits``: per-host limits (None: none); ``requeue``: how a verification whose
        host is busy is put back (None: it is given up at once)."""
        self._store = store
        self._http = http
        self._clock = clock
        self._challenge = challenge
        self._limits = limits
        self._requeue = requeue
        self._max_concurrent = max_concurrent
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def process(self, message: VerifyQueueMessage) -> Outcome:
        if isinstance(message, VerifyIntent):
            return self.verify(message)
        return self.deny(message)

    def process_all(self, messages: Sequence[VerifyQueueMessage]) -> list[Outcome | Exception]:
        """Process ``messages`` side by side; each result is its Outcome or the error it raised.

        Each GET has the request timeout as its total deadline, so the batch takes about
        one timeout however many of its callbacks stall, and a fast callback's subscription
        is applied as soon as its own answer is in.
        """
        if len(messages) <= 1:
            return [self._settle(message) for message in messages]
        futures = [self._executor().submit(self._settle, message) for message in messages]
        return [future.result() for future in futures]

    def _settle(self, message: VerifyQueueMessage) -> Outcome | Exception:
        try:
            return self.process(message)
        except Exception as exc:
            return exc  # reported per message, for a partial batch response

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._max_concurrent, thread_name_prefix="sethub-verify")
            return self._pool

    def verify(self, message: VerifyIntent) -> Outcome:
        request = self._store.get_pending(
            message.topic, message.callback, message.request_id, now=self._clock()
        )
        if request is None:
            # Already applied (a redelivered message), replaced by a newer request, or over a day old.
            return Outcome("expired", message.topic, message.callback, "no pending request")
        slot = self._take_slot(request.callback)
        if slot is False:
            return self._defer(message)
        try:
            refusal = self._challenge_callback(request)
        finally:
            self._give_back(slot)
        if refusal is not None:
            # Every attempt is final, a timeout included: the state stays as it was (W3C)
            # and SQS never redelivers a GET to a callback that did not answer.
            self._store.discard_pending(request.topic, request.callback, request.request_id)
            return refusal
        if self._store.apply_verified(request, now=self._clock()):
            return Outcome("verified", request.topic, request.callback, request.mode)
        return Outcome(
            "superseded", request.topic, request.callback, "a newer request had already been applied"
        )

    def _challenge_callback(self, request: PendingRequest) -> Outcome | None:
        """GET the callback with a fresh challenge: None if it echoed it, else why not."""
        challenge = self._challenge()
        params = {"hub.mode": request.mode, "hub.topic": request.topic, "hub.challenge": challenge}
        if request.mode == "subscribe":
            params["hub.lease_seconds"] = str(request.lease_seconds)
        try:
            response = self._http.request("GET", callback_url(request.callback, params))
        except BlockedAddressError as exc:
            return Outcome("blocked", request.topic, request.callback, str(exc))
        except OutboundError as exc:
            return Outcome("failed", request.topic, request.callback, str(exc))
        if not 200 <= response.status < 300:
            return Outcome(
                "rejected", request.topic, request.callback, f"callback answered {response.status}"
            )
        if not secrets.compare_digest(response.body, challenge.encode("ascii")):
            return Outcome("rejected", request.topic, request.callback, "callback did not echo the challenge")
        return None

    def deny(self, message: DenySubscription) -> Outcome:
        """Tell the callback it was refused: best effort, never retried, rate-limited per host."""
        slot = self._take_slot(message.callback)
        if slot is False:
            return Outcome("throttled", message.topic, message.callback, "callback host busy")
        try:
            if self._limits is not None and not self._limits.allow_denial(limit_host(message.callback)):
                return Outcome("throttled", message.topic, message.callback, "too many denials for this host")
            params = {"hub.mode": "denied", "hub.topic": message.topic, "hub.reason": message.reason}
            response = self._http.request("GET", callback_url(message.callback, params))
        except BlockedAddressError as exc:
            return Outcome("blocked", message.topic, message.callback, str(exc))
        except OutboundError as exc:
            return Outcome("denied", message.topic, message.callback, f"callback did not answer: {exc}")
        finally:
            self._give_back(slot)
        # The subscriber's answer to a denial changes nothing.
        return Outcome("denied", message.topic, message.callback, f"callback answered {response.status}")

    # Per-host limits

    def _take_slot(self, callback: str) -> Slot | Literal[False] | None:
        """A slot of the callback's host; None without limits; False when the host is busy."""
        if self._limits is None:
            return None
        slot = self._limits.acquire(limit_host(callback), now=self._clock())
        return False if slot is None else slot

    def _give_back(self, slot: Slot | None) -> None:
        if self._limits is not None and slot is not None:
            self._limits.release(slot)

    def _defer(self, message: VerifyIntent) -> Outcome:
        """Put a verification whose host is busy back on the queue, or give it up."""
        if self._requeue is None or message.deferrals >= MAX_DEFERRALS:
            self._store.discard_pending(message.topic, message.callback, message.request_id)
            return Outcome("throttled", message.topic, message.callback, "callback host busy")
        assert self._limits is not None  # only limits make a host busy
        # Back when a slot's lease must have ended, spread so the waiting ones do not all return at once.
        delay = int(self._limits.hold_seconds) + 1 + random.randrange(DEFER_JITTER_SECONDS)  # noqa: S311
        self._requeue(replace(message, deferrals=message.deferrals + 1), delay)
        return Outcome("deferred", message.topic, message.callback, "callback host busy")


__all__ = [
    "MAX_CONCURRENT",
    "MAX_DEFERRALS",
    "MAX_RESPONSE_BYTES",
    "UNKNOWN_TOPIC",
    "Outcome",
    "Requeue",
    "Verifier",
    "callback_url",
    "limit_host",
    "new_challenge",
]
