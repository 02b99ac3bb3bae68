"""One delivery: the request a subscription receives for an event, sending it, and its outcome.

Stages (svix-style): ``request_for`` builds the exact bytes and headers once per
(event, subscription); ``send`` makes one attempt through ``GuardedHttp`` and
``classify`` reads the answer:

    2xx                                  ok
    410 Gone                             gone      (the subscription is removed)
    400 with an RFC 8935 error body      rejected  (final: retrying cannot help)
    refused by the network guard         rejected  (final: sethub will not contact it)
    anything else, or no answer          failed    (retried on the schedule)
    not sent: the invocation ran short   deferred  (handed to the retry queue, not counted)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from sethub import sets, webhooks
from sethub.errors import BlockedAddressError, OutboundError, OutboundTimeoutError
from sethub.hygiene import callback_label
from sethub.messages import PreparedPayload
from sethub.retry import parse_retry_after
from sethub.subscriptions import Subscription

MESSAGE_ID_HEADER = "x-hub-messageId"
SIGNATURE_HEADER = "X-Hub-Signature"
USER_AGENT = "sethub"
MAX_ERROR_CHARS = 200
Status = Literal["ok", "gone", "rejected", "failed", "deferred"]


class Response(Protocol):
    """What ``sethub.outbound.OutboundResponse`` offers."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def body(self) -> bytes: ...


class Http(Protocol):
    """The part of ``sethub.outbound.GuardedHttp`` a delivery uses."""

    def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> Response: ...


@dataclass(frozen=True)
class DeliveryRequest:
    """One attempt to make: the same body bytes and message id on every retry."""

    topic: str
    callback: str
    jti: str
    hub_url: str
    content_type: str
    body: bytes
    headers: Mapping[str, str]
    attempt: int
    """1 for the first attempt."""
    subscribed_at: int
    failing_since: int = 0
    """The subscription's first failure since its last success, as read (0: not failing)."""

    def __repr__(self) -> str:
        # The signature header is derived from the secret, and the callback's path or query
        # may carry a token: keep both out of tracebacks (host and subscription id only).
        callback = callback_label(self.topic, self.callback)
        return f"DeliveryRequest(topic={self.topic!r}, callback={callback!r}, jti={self.jti!r})"


@dataclass(frozen=True)
class Outcome:
    status: Status
    status_code: int | None
    error: str
    duration_ms: int
    retry_after: float | None = None
    throttled: bool = False
    """A 429 or a timeout: the next attempt waits at least the throttle floor."""


DEFERRED = Outcome("deferred", None, "not sent: the invocation ran out of time", 0)


def body_for(payload: PreparedPayload, fmt: str) -> tuple[bytes, str]:
    """The body and Content-Type a subscription of format ``fmt`` receives for ``payload``."""
    if payload.content_b64 is not None:
        return base64.b64decode(payload.content_b64), payload.content_type or "application/octet-stream"
    if fmt == "json" and payload.json_b64 is not None:
        return base64.b64decode(payload.json_b64), sets.JSON_CONTENT_TYPE
    if payload.jwt is None:
        raise ValueError("prepared payload has no JWS for a jwt subscription")
    return payload.jwt.encode("ascii"), sets.SET_CONTENT_TYPE


def headers_for(
    *,
    topic: str,
    hub_url: str,
    jti: str,
    content_type: str,
    body: bytes,
    secret: bytes | None,
    signing: webhooks.Signing = "websub",
    secrets: Sequence[bytes] = (),
    timestamp: int = 0,
) -> dict[str, str]:
    """The headers of DESIGN.md ("What a subscriber receives").

    ``signing="standard-webhooks"``: the ``webhook-*`` headers signed with each of
    ``secrets`` (current first) at ``timestamp`` instead of ``X-Hub-Signature``.
    """
    headers = {
        "Content-Type": content_type,
        "Link": f'<{hub_url}>; rel="hub", <{topic}>; rel="self"',
        MESSAGE_ID_HEADER: jti,
        "User-Agent": USER_AGENT,
    }
    if content_type == sets.SET_CONTENT_TYPE:
        headers["Accept"] = "application/json"  # RFC 8935 section 2
    if signing == "standard-webhooks":
        if secrets:
            headers |= webhooks.headers(msg_id=jti, timestamp=timestamp, body=body, secrets=secrets)
    elif secret:
        digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
        headers[SIGNATURE_HEADER] = f"sha256={digest}"
    return headers


def request_for(
    subscription: Subscription,
    *,
    jti: str,
    hub_url: str,
    body: bytes,
    content_type: str,
    attempt: int,
    now: float | None = None,
) -> DeliveryRequest:
    """``now``: this attempt's time (Standard Webhooks signs it); default the clock."""
    current = time.time() if now is None else now
    return DeliveryRequest(
        topic=subscription.topic,
        callback=subscription.callback,
        jti=jti,
        hub_url=hub_url,
        content_type=content_type,
        body=body,
        headers=headers_for(
            topic=subscription.topic,
            hub_url=hub_url,
            jti=jti,
            content_type=content_type,
            body=body,
            secret=subscription.secret,
            signing=subscription.signing,
            secrets=subscription.secrets(current) if subscription.signing != "websub" else (),
            timestamp=int(current),
        ),
        attempt=attempt,
        subscribed_at=subscription.requested_at,
        failing_since=subscription.failing_since,
    )


def send(http: Http, request: DeliveryRequest) -> Outcome:
    """One attempt; never raises for what the subscriber or the network did."""
    started = time.monotonic()
    try:
        response = http.request("POST", request.callback, headers=request.headers, body=request.body)
    except BlockedAddressError as exc:
        return Outcome("rejected", None, _one_line(f"blocked: {exc}"), _ms_since(started))
    except OutboundError as exc:
        # A timeout suggests an overloaded subscriber: the next attempt waits at least the floor.
        timed_out = isinstance(exc, OutboundTimeoutError)
        return Outcome("failed", None, _one_line(str(exc)), _ms_since(started), throttled=timed_out)
    return classify(response, duration_ms=_ms_since(started), now=time.time())


def classify(response: Response, *, duration_ms: int, now: float) -> Outcome:
    """The outcome of an answered request."""
    code = response.status
    if 200 <= code < 300:
        return Outcome("ok", code, "", duration_ms)
    if code == 410:
        return Outcome("gone", code, "410 Gone", duration_ms)
    if code == 400:
        err = rfc8935_error(response.body)
        if err is not None:
            return Outcome("rejected", code, _one_line(f"400 {err}"), duration_ms)
    retry_after = parse_retry_after(_get(response.headers, "Retry-After"), now=now)
    return Outcome(
        "failed", code, f"HTTP {code}", duration_ms, retry_after=retry_after, throttled=code == 429
    )


def rfc8935_error(body: bytes) -> str | None:
    """``err: description`` when ``body`` is an RFC 8935 error object, else None."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("err"), str):
        return None
    description = document.get("description")
    err = str(document["err"])[:64]
    return f"{err}: {description}" if isinstance(description, str) else err


def _get(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_ERROR_CHARS]


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


__all__ = [
    "MESSAGE_ID_HEADER",
    "SIGNATURE_HEADER",
    "DeliveryRequest",
    "Http",
    "Outcome",
    "Response",
    "body_for",
    "classify",
    "headers_for",
    "request_for",
    "rfc8935_error",
    "send",
]
