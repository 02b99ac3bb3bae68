"""Runtime settings: one immutable value object, read from the environment in one place.

Every name here is an environment variable of the functions, declared in template.yaml
and honoured identically by the local stack (devstack). Explicit arguments win over the
environment, which is what tests use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sethub.errors import ConfigurationError

DEFAULT_RETRY_SCHEDULE: tuple[int, ...] = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800)
"""Seconds between delivery attempts: 11 attempts spread over about 23.7 hours."""

DEFAULT_LEASE_SECONDS = 10 * 24 * 3600
DEFAULT_LEASE_SECONDS_MIN = 300
DEFAULT_LEASE_SECONDS_MAX = 30 * 24 * 3600
DEFAULT_DELIVERY_TIMEOUT_SECONDS = 10.0
DEFAULT_DELIVERY_CONCURRENCY = 32
DEFAULT_SHARD_SIZE = 200
DEFAULT_DISABLE_AFTER_SECONDS = 5 * 24 * 3600
DEFAULT_EVENT_RETENTION_DAYS = 14
DEFAULT_KEY_CACHE_SECONDS = 30
MAX_KEY_CACHE_SECONDS = 60
"""DESIGN.md: a revoked key stops working within a minute on every warm container."""
SIGNING_MODES = ("wrapped", "kms")
"""``wrapped``: keys stored encrypted under KMS, SETs signed in process; ``kms``: KMS Sign per SET."""


def _bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be true or false, not {value!r}")


def _int(value: str, name: str, minimum: int = 0) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, not {number}")
    return number


def _float(value: str, name: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, not {value!r}") from None
    if not 0 < number <= 900:
        raise ConfigurationError(f"{name} must be between 0 and 900 seconds, not {number}")
    return number


def _key_cache_seconds(value: str) -> int:
    seconds = _int(value, "SETHUB_KEY_CACHE_SECONDS", 1)
    if seconds > MAX_KEY_CACHE_SECONDS:
        raise ConfigurationError(
            f"SETHUB_KEY_CACHE_SECONDS must be at most {MAX_KEY_CACHE_SECONDS} "
            f"(a revoked key stops working within a minute), not {seconds}"
        )
    return seconds


def parse_retry_schedule(value: str) -> tuple[int, ...]:
    """Parse ``"5,30,120"`` into seconds between attempts; an empty schedule means no retries."""
    parts = [part.strip() for part in value.split(",") if part.strip()]
    return tuple(_int(part, "SETHUB_RETRY_SCHEDULE") for part in parts)


def _list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Everything a handler needs to know about its deployment."""

    # The contract of DESIGN.md ("Settings").
    issuer: str = ""
    """SET ``iss``; empty means the API's base URL (public_url, else derived from the request)."""
    public_hub: bool = False
    open_topics: bool = False
    allow_private_callbacks: bool = False
    allow_http_callbacks: bool = False
    retry_schedule: tuple[int, ...] = DEFAULT_RETRY_SCHEDULE
    lease_seconds_min: int = DEFAULT_LEASE_SECONDS_MIN
    lease_seconds_max: int = DEFAULT_LEASE_SECONDS_MAX
    delivery_timeout_seconds: float = DEFAULT_DELIVERY_TIMEOUT_SECONDS
    signing_mode: str = SIGNING_MODES[0]
    disable_after_seconds: int = DEFAULT_DISABLE_AFTER_SECONDS
    """A subscription whose deliveries failed this long with no success is disabled."""
    event_retention_days: int = DEFAULT_EVENT_RETENTION_DAYS
    """How long accepted events are kept for recovery (``sethub.archive``)."""

    # Resources, wired by template.yaml (or devstack).
    table_name: str = ""
    events_queue_url: str = ""
    retry_queue_url: str = ""
    verify_queue_url: str = ""
    dead_letter_queue_url: str = ""
    """Where exhausted deliveries go: the retry queue's dead-letter queue."""
    signing_key_ids: tuple[str, ...] = ()
    """KMS asymmetric keys; the first signs, all are published in the JWKS (rotation)."""
    data_key_id: str = ""
    """KMS symmetric key that encrypts subscription secrets at rest."""

    # Tuning, with defaults that suit most deployments.
    public_url: str = ""
    """Base URL of the API (no trailing slash); empty means derived from each request."""
    delivery_concurrency: int = DEFAULT_DELIVERY_CONCURRENCY
    shard_size: int = DEFAULT_SHARD_SIZE
    """Subscriptions one dispatch invocation serves for one event before the rest is sharded."""
    key_cache_seconds: int = DEFAULT_KEY_CACHE_SECONDS
    """How long a container remembers an API key lookup (1 to 60: a revoked key's grace)."""
    key_rate_limit: int = 0
    key_burst_limit: int = 0
    key_daily_quota: int = 0
    """Per-key limits ingest enforces itself (Ingress=http only: the HTTP API has no usage
    plans; sethub.credentials.ratelimit); 0 = the gateway's usage plan does it."""

    def __post_init__(self) -> None:
        if self.signing_mode not in SIGNING_MODES:
            raise ConfigurationError(f"SETHUB_SIGNING_MODE must be wrapped or kms, not {self.signing_mode!r}")
        if self.lease_seconds_min > self.lease_seconds_max:
            raise ConfigurationError("SETHUB_LEASE_SECONDS_MIN must not exceed SETHUB_LEASE_SECONDS_MAX")
        if not 1 <= self.key_cache_seconds <= MAX_KEY_CACHE_SECONDS:
            raise ConfigurationError(
                f"SETHUB_KEY_CACHE_SECONDS must be 1 to {MAX_KEY_CACHE_SECONDS}, not {self.key_cache_seconds}"
            )

    @property
    def default_lease_seconds(self) -> int:
        return min(max(DEFAULT_LEASE_SECONDS, self.lease_seconds_min), self.lease_seconds_max)

    def clamp_lease(self, requested: int | None) -> int:
        """The lease the hub grants for a requested one (W3C WebSub 5.1: the hub decides)."""
        if requested is None:
            return self.default_lease_seconds
        return min(max(requested, self.lease_seconds_min), self.lease_seconds_max)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str, default: str = "") -> str:
            return env.get(name, default)

        return cls(
            issuer=get("SETHUB_ISSUER").strip(),
            public_hub=_bool(get("SETHUB_PUBLIC_HUB"), "SETHUB_PUBLIC_HUB"),
            open_topics=_bool(get("SETHUB_OPEN_TOPICS"), "SETHUB_OPEN_TOPICS"),
            allow_private_callbacks=_bool(
                get("SETHUB_ALLOW_PRIVATE_CALLBACKS"), "SETHUB_ALLOW_PRIVATE_CALLBACKS"
            ),
            allow_http_callbacks=_bool(get("SETHUB_ALLOW_HTTP_CALLBACKS"), "SETHUB_ALLOW_HTTP_CALLBACKS"),
            retry_schedule=(
                parse_retry_schedule(env["SETHUB_RETRY_SCHEDULE"])
                if "SETHUB_RETRY_SCHEDULE" in env
                else DEFAULT_RETRY_SCHEDULE
            ),
            lease_seconds_min=_int(
                get("SETHUB_LEASE_SECONDS_MIN", str(DEFAULT_LEASE_SECONDS_MIN)), "SETHUB_LEASE_SECONDS_MIN", 1
            ),
            lease_seconds_max=_int(
                get("SETHUB_LEASE_SECONDS_MAX", str(DEFAULT_LEASE_SECONDS_MAX)), "SETHUB_LEASE_SECONDS_MAX", 1
            ),
            delivery_timeout_seconds=_float(
                get("SETHUB_DELIVERY_TIMEOUT_SECONDS", str(DEFAULT_DELIVERY_TIMEOUT_SECONDS)),
                "SETHUB_DELIVERY_TIMEOUT_SECONDS",
            ),
            signing_mode=get("SETHUB_SIGNING_MODE").strip().lower() or SIGNING_MODES[0],
            disable_after_seconds=_int(
                get("SETHUB_DISABLE_AFTER_SECONDS", str(DEFAULT_DISABLE_AFTER_SECONDS)),
                "SETHUB_DISABLE_AFTER_SECONDS",
                1,
            ),
            event_retention_days=_int(
                get("SETHUB_EVENT_RETENTION_DAYS", str(DEFAULT_EVENT_RETENTION_DAYS)),
                "SETHUB_EVENT_RETENTION_DAYS",
                1,
            ),
            table_name=get("SETHUB_TABLE_NAME"),
            events_queue_url=get("SETHUB_EVENTS_QUEUE_URL"),
            retry_queue_url=get("SETHUB_RETRY_QUEUE_URL"),
            verify_queue_url=get("SETHUB_VERIFY_QUEUE_URL"),
            dead_letter_queue_url=get("SETHUB_DEAD_LETTER_QUEUE_URL"),
            signing_key_ids=_list(get("SETHUB_SIGNING_KEY_IDS")),
            data_key_id=get("SETHUB_DATA_KEY_ID"),
            public_url=get("SETHUB_PUBLIC_URL").strip().rstrip("/"),
            delivery_concurrency=_int(
                get("SETHUB_DELIVERY_CONCURRENCY", str(DEFAULT_DELIVERY_CONCURRENCY)),
                "SETHUB_DELIVERY_CONCURRENCY",
                1,
            ),
            shard_size=_int(get("SETHUB_SHARD_SIZE", str(DEFAULT_SHARD_SIZE)), "SETHUB_SHARD_SIZE", 1),
            key_cache_seconds=_key_cache_seconds(
                get("SETHUB_KEY_CACHE_SECONDS", str(DEFAULT_KEY_CACHE_SECONDS))
            ),
            # Declared only with Ingress=http (AWS::NoValue otherwise), which sam local, unable
            # to evaluate the condition, passes as a blank value: blank is "no limit" as 0 is.
            key_rate_limit=_int(get("SETHUB_KEY_RATE_LIMIT") or "0", "SETHUB_KEY_RATE_LIMIT"),
            key_burst_limit=_int(get("SETHUB_KEY_BURST_LIMIT") or "0", "SETHUB_KEY_BURST_LIMIT"),
            key_daily_quota=_int(get("SETHUB_KEY_DAILY_QUOTA") or "0", "SETHUB_KEY_DAILY_QUOTA"),
        )
