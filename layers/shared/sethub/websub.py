"""The ``/hub`` endpoint: request parsing and the hub modes (W3C WebSub and WSO2 WebSubHub).

Parameters come from the query string and, for a form-encoded body, from the body
(WSO2 publishers put ``hub.mode`` and ``hub.topic`` in the query and the content in
the body); body fields win over query parameters of the same name, and unknown
parameters are ignored. Every refusal is a ``BadRequestError`` whose one-line reason
the handler answers as ``text/plain``.

Subscribe and unsubscribe only store a pending request and queue its verification
(``sethub.verification``): the ``202`` never depends on the subscriber.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from sethub.api import key_checker
from sethub.clients import AwsClients
from sethub.credentials import (
    KeyChecker,
    Principal,
    require_owner,
    require_publisher,
    require_subscriber,
)
from sethub.errors import (
    BadRequestError,
    BlockedAddressError,
    ConfigurationError,
    NotFoundError,
    OutboundError,
    PayloadTooLargeError,
    UpstreamError,
)
from sethub.events import NON_FINITE_REASON, MalformedJsonError, decode_json
from sethub.hygiene import callback_host, control_problem
from sethub.limits import MAX_CALLBACK_CHARS, MAX_CONTENT_BYTES, MAX_TOPIC_CHARS
from sethub.messages import DenySubscription, Format, VerifyIntent, VerifyQueueMessage
from sethub.netguard import vet_url
from sethub.settings import Settings
from sethub.store import SubscriptionStore
from sethub.subscriptions import Mode
from sethub.verification import UNKNOWN_TOPIC
from sethub.webhooks import Signing, check_subscription, parse_events, parse_signing

if TYPE_CHECKING:
    from sethub.ingest import Ingestor
    from sethub.outbound import GuardedHttp

logger = logging.getLogger(__name__)

MAX_HUB_BODY_BYTES = 1024 * 1024
MAX_FORM_FIELDS = 100
"""Fields parsed from a form body (and query parameters): a hub request needs fewer than ten;
the bound keeps a 1 MiB body of empty fields from costing a million dictionary entries."""
MAX_SECRET_BYTES = 199
"""W3C WebSub 5.1: the secret must be under 200 bytes."""
MAX_FETCH_BYTES = MAX_CONTENT_BYTES
"""Largest topic content a W3C-style publish fetches: what a publish body may carry."""

ACCEPTED = "hub.mode=accepted"
FETCH_FAILED = "could not fetch the topic URL: it must answer 2xx from a public address"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_WHOLE_NUMBER = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class HubRequest:
    """A parsed ``POST /hub``: its parameters and, when it carries content, the body."""

    query: Mapping[str, str]
    form: Mapping[str, str]
    body: bytes
    content_type: str

    @property
    def params(self) -> dict[str, str]:
        return {**self.query, **self.form}

    @property
    def params_in_body(self) -> bool:
        """A W3C-style request: the hub parameters are the body, so it carries no content."""
        return any(name.startswith("hub.") for name in self.form)


@dataclass(frozen=True)
class HubReply:
    status: int
    body: str = ACCEPTED
    headers: Mapping[str, str] = field(default_factory=dict)


def parse_hub_request(
    *, query: Mapping[str, str] | None, body: bytes, content_type: str | None
) -> HubRequest:
    """Parse a ``POST /hub``: ``PayloadTooLargeError`` over 1 MiB, ``BadRequestError`` for a bad form."""
    if len(body) > MAX_HUB_BODY_BYTES:
        raise PayloadTooLargeError(f"request body is over {MAX_HUB_BODY_BYTES} bytes")
    if query and "hub.secret" in query:
        # A query string lands in access logs, proxies and browser history: refuse it
        # rather than store a secret that has already leaked.
        raise BadRequestError("hub.secret must be sent in the form body, never in the query string")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    form: dict[str, str] = {}
    if media_type == FORM_CONTENT_TYPE and body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequestError("form body is not UTF-8") from None
        try:
            form = dict(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS))
        except ValueError:
            raise BadRequestError(f"too many form fields (at most {MAX_FORM_FIELDS})") from None
    if len(query or {}) > MAX_FORM_FIELDS:
        raise BadRequestError(f"too many query parameters (at most {MAX_FORM_FIELDS})")
    return HubRequest(
        query=dict(query or {}), form=form, body=body, content_type=(content_type or "").strip()
    )


class Hub:
    """Runs the hub modes; built once per container and reused for every request."""

    def __init__(
        self,
        clients: AwsClients,
        settings: Settings,
        *,
        store: SubscriptionStore | None = None,
        keys: KeyChecker | None = None,
        fetcher: GuardedHttp | None = None,
        ingestor: Ingestor | None = None,
    ) -> None:
        self._clients = clients
        self._settings = settings
        self._store = store or SubscriptionStore(clients, settings)
        self._keys = keys or key_checker(clients, settings)
        self._fetcher = fetcher
        self._ingestor = ingestor

    @property
    def store(self) -> SubscriptionStore:
        return self._store

    def handle(
        self,
        request: HubRequest,
        *,
        headers: Mapping[str, str] | None,
        base_url: str,
        now: float | None = None,
    ) -> HubReply:
        """Answer one ``/hub`` request; a refusal becomes a 4xx reply with its reason."""
        try:
            return self._dispatch(request, headers=headers, base_url=base_url, now=now)
        except BadRequestError as exc:
            return HubReply(status=exc.status, body=exc.reason)

    def _dispatch(
        self, request: HubRequest, *, headers: Mapping[str, str] | None, base_url: str, now: float | None
    ) -> HubReply:
        params = request.params
        mode = params.get("hub.mode", "").strip()
        current = time.time() if now is None else now
        if mode in ("subscribe", "unsubscribe"):
            # A public hub takes anonymous subscribers, but a key that is sent must be valid.
            if self._settings.public_hub:
                principal = self._keys.optional(headers)
            else:
                principal = self._keys.authenticate(headers)
            if principal is not None:
                require_subscriber(principal)
            return self._subscription_request(
                "subscribe" if mode == "subscribe" else "unsubscribe", params, current, principal
            )
        if mode in ("register", "deregister", "publish"):
            caller = self._keys.authenticate(headers)
            require_publisher(caller, _publish_topic(params) if mode == "publish" else _topic(params))
            if mode == "register":
                self._store.register_topic(_topic(params), now=current)
                return HubReply(status=200)
            if mode == "deregister":
                self._store.deregister_topic(_topic(params))
                return HubReply(status=200)
            return self._publish(request, base_url=base_url, publisher=caller)
        if not mode:
            raise BadRequestError(
                "hub.mode is required: subscribe, unsubscribe, register, deregister or publish"
            )
        raise BadRequestError(f"unsupported hub.mode {mode[:40]!r}")

    # Subscribers

    def _subscription_request(
        self, mode: Mode, params: Mapping[str, str], now: float, principal: Principal | None
    ) -> HubReply:
        callback = self._callback(params)
        topic = _topic(params)
        secret: bytes | None = None
        fmt: Format = "jwt"
        lease = self._settings.default_lease_seconds
        signing: Signing = "websub"
        events: frozenset[str] = frozenset()
        if mode == "subscribe":
            secret = _secret(params)
            fmt = _format(params)
            lease = self._settings.clamp_lease(_lease(params))
            # Standard Webhooks and event filters (sethub.webhooks): refused here, never half-stored.
            signing = parse_signing(params)
            events = parse_events(params)
            check_subscription(signing, secret)
        if not self._settings.open_topics and not self._store.topic_exists(topic):
            if mode == "subscribe":
                # W3C WebSub 5.2: the refusal goes to the callback; the 202 does not tell.
                self._enqueue(DenySubscription(topic=topic, callback=callback, reason=UNKNOWN_TOPIC))
            return HubReply(status=202)
        # A subscription belongs to the key that created it until it is deleted or its lease
        # expires, disabled or not (DESIGN.md "Credentials"; issue 11, finding 2).
        owned, owner = self._store.subscription_owner(topic, callback, now=now)
        if owned:
            require_owner(principal, owner)
        caller = principal.key_id if principal is not None else None
        request_id = self._store.put_pending(
            mode=mode,
            topic=topic,
            callback=callback,
            format=fmt,
            secret=secret,
            lease_seconds=lease,
            requested_at=time.time_ns(),
            now=now,
            requester=caller,
            owner=owner if owned and owner else caller,
            override=principal is not None and principal.is_admin,
            signing=signing,
            events=events,
        )
        self._enqueue(VerifyIntent(topic=topic, callback=callback, request_id=request_id))
        return HubReply(status=202)

    def _callback(self, params: Mapping[str, str]) -> str:
        callback = params.get("hub.callback", "").strip()
        if not callback:
            raise BadRequestError("hub.callback is required")
        if len(callback) > MAX_CALLBACK_CHARS:
            raise BadRequestError(f"hub.callback is too long (at most {MAX_CALLBACK_CHARS} characters)")
        problem = control_problem("hub.callback", callback)
        if problem:
            raise BadRequestError(problem)
        try:
            parts = urlsplit(callback)
            scheme, hostname = parts.scheme.lower(), parts.hostname
        except ValueError:
            scheme, hostname = "", None
        if scheme not in ("http", "https") or not hostname:
            raise BadRequestError("hub.callback must be an absolute http(s) URL")
        if scheme == "http" and not self._settings.allow_http_callbacks:
            raise BadRequestError("hub.callback must be an https URL")
        try:
            vet_url(
                callback,
                allow_private=self._settings.allow_private_callbacks,
                allow_http=self._settings.allow_http_callbacks,
            )
        except BlockedAddressError as exc:
            # The detail (which address it resolved to) stays in the log: echoed to the
            # caller it would make the hub a DNS oracle for private names.
            logger.info(
                "callback refused", extra={"callback_host": callback_host(callback), "reason": str(exc)}
            )
            raise BadRequestError(
                "hub.callback refused: the hub only contacts hosts with public addresses"
            ) from None
        return callback

    def _enqueue(self, message: VerifyQueueMessage) -> None:
        if not self._settings.verify_queue_url:
            raise ConfigurationError("SETHUB_VERIFY_QUEUE_URL is not set")
        try:
            self._clients.sqs.send_message(
                QueueUrl=self._settings.verify_queue_url, MessageBody=message.to_json()
            )
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"SQS could not queue a verification: {type(exc).__name__}") from exc

    # Publishers

    def _publish(self, request: HubRequest, *, base_url: str, publisher: Principal | None = None) -> HubReply:
        params = request.params
        topic = (params.get("hub.topic") or params.get("hub.url") or "").strip()
        if not topic:
            raise BadRequestError("hub.topic (or hub.url) is required")
        _check_topic(topic)
        if not self._settings.open_topics and not self._store.topic_exists(topic):
            raise NotFoundError("unknown topic: register it first with hub.mode=register")
        if request.params_in_body or not request.body:
            body, content_type = self._fetch(topic)
            self.ingestor.enqueue_content(topic, body, content_type, base_url=base_url)
            return HubReply(status=202)
        payload = _set_payload(request.body)
        if payload is not None:
            # The key bounds the SET: its jti scope and its pinned iss (sethub.ingest).
            self.ingestor.ingest([{**payload, "topic": topic}], base_url=base_url, publisher=publisher)
        else:
            content_type = request.content_type or DEFAULT_CONTENT_TYPE
            problem = control_problem("Content-Type", content_type)
            if problem:
                raise BadRequestError(problem)
            self.ingestor.enqueue_content(topic, request.body, content_type, base_url=base_url)
        return HubReply(status=202)

    def _fetch(self, topic: str) -> tuple[bytes, str]:
        """W3C publishing: the hub fetches the topic URL and distributes what it got."""
        if urlsplit(topic).scheme.lower() not in ("http", "https"):
            raise BadRequestError(
                "nothing to publish: send the content as the body, or use an http(s) topic URL"
            )
        # Why a fetch failed (refused address, DNS, connection, status) goes to the log
        # only: told to the caller, it would make the hub a DNS and port-scan oracle.
        host = callback_host(topic)
        try:
            response = self.fetcher.request("GET", topic, headers={"Accept": "*/*"})
        except BlockedAddressError as exc:
            logger.info("topic fetch refused", extra={"topic_host": host, "reason": str(exc)})
            raise BadRequestError(FETCH_FAILED) from None
        except OutboundError as exc:
            logger.info("topic fetch failed", extra={"topic_host": host, "reason": str(exc)})
            raise BadRequestError(FETCH_FAILED) from None
        if not 200 <= response.status < 300:
            logger.info("topic fetch failed", extra={"topic_host": host, "status": response.status})
            raise BadRequestError(FETCH_FAILED)
        if len(response.body) > MAX_FETCH_BYTES:
            raise PayloadTooLargeError(f"the topic's content is over {MAX_FETCH_BYTES} bytes")
        content_type = response.headers.get("Content-Type") or DEFAULT_CONTENT_TYPE
        if control_problem("Content-Type", content_type):
            logger.info(
                "topic fetch refused",
                extra={"topic_host": host, "reason": "control characters in Content-Type"},
            )
            raise BadRequestError(FETCH_FAILED)
        return response.body, content_type

    @property
    def fetcher(self) -> GuardedHttp:
        if self._fetcher is None:
            from sethub.outbound import GuardedHttp  # noqa: PLC0415 - only publishers by URL need it

            # One byte over the cap tells an over-long body from one exactly at the cap.
            self._fetcher = GuardedHttp.from_settings(self._settings, max_response_bytes=MAX_FETCH_BYTES + 1)
        return self._fetcher

    @property
    def ingestor(self) -> Ingestor:
        if self._ingestor is None:
            from sethub.ingest import Ingestor  # noqa: PLC0415 - subscribers never publish

            self._ingestor = Ingestor(self._clients, self._settings)
        return self._ingestor


def _topic(params: Mapping[str, str]) -> str:
    topic = params.get("hub.topic", "").strip()
    if not topic:
        raise BadRequestError("hub.topic is required")
    _check_topic(topic)
    return topic


def _publish_topic(params: Mapping[str, str]) -> str:
    """A publish names its topic in ``hub.topic`` or ``hub.url`` (W3C WebSub)."""
    topic = (params.get("hub.topic") or params.get("hub.url") or "").strip()
    if not topic:
        raise BadRequestError("hub.topic (or hub.url) is required")
    _check_topic(topic)
    return topic


def _check_topic(topic: str) -> None:
    if len(topic) > MAX_TOPIC_CHARS:
        raise BadRequestError(f"hub.topic is too long (at most {MAX_TOPIC_CHARS} characters)")
    problem = control_problem("hub.topic", topic)
    if problem:
        raise BadRequestError(problem)


def _secret(params: Mapping[str, str]) -> bytes | None:
    secret = params.get("hub.secret", "")
    if not secret:
        return None
    encoded = secret.encode("utf-8")
    if len(encoded) > MAX_SECRET_BYTES:
        raise BadRequestError("hub.secret must be under 200 bytes")
    return encoded


def _format(params: Mapping[str, str]) -> Format:
    value = params.get("format", "").strip().lower() or "jwt"
    if value == "jwt":
        return "jwt"
    if value == "json":
        return "json"
    raise BadRequestError("format must be jwt or json")


def _lease(params: Mapping[str, str]) -> int | None:
    value = params.get("hub.lease_seconds", "").strip()
    if not value:
        return None
    if not _WHOLE_NUMBER.match(value) or int(value) <= 0:
        raise BadRequestError("hub.lease_seconds must be a positive whole number")
    return int(value)


def _set_payload(body: bytes) -> dict[str, Any] | None:
    """The body as a SET payload (a JSON object with an ``events`` object), else None."""
    if not body.lstrip().startswith(b"{"):
        return None
    try:
        decoded = decode_json(body)
    except MalformedJsonError:
        return None  # not JSON: opaque content, distributed as is
    document = decoded.value
    if isinstance(document, dict) and isinstance(document.get("events"), dict):
        if decoded.non_finite:
            raise BadRequestError(NON_FINITE_REASON)
        return document
    return None


__all__ = [
    "ACCEPTED",
    "MAX_FORM_FIELDS",
    "MAX_HUB_BODY_BYTES",
    "Hub",
    "HubReply",
    "HubRequest",
    "parse_hub_request",
]
