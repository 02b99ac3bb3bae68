"""Where a handler's time goes: wall time of named library methods, summed over calls.

Instrumentation for the bench worker only: it wraps methods of sethub classes in place
(the handlers call them as usual) and adds up wall-clock seconds per phase.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class Phases:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {}

    def wrap(self, owner: type, method: str, label: str) -> None:
        original: Callable[..., Any] = getattr(owner, method)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                with self._lock:
                    self.seconds[label] = self.seconds.get(label, 0.0) + elapsed

        setattr(owner, method, timed)

    @contextmanager
    def measuring(self) -> Iterator[dict[str, float]]:
        """Phase seconds of what runs inside the block."""
        with self._lock:
            self.seconds = {}
        result: dict[str, float] = {}
        yield result
        with self._lock:
            result.update(self.seconds)


def instrument() -> Phases:
    """Phases of dispatch (query, sign, deliver, settle, records) and ingest (validate, claim, send)."""
    from sethub import events  # noqa: PLC0415
    from sethub.dispatch import Dispatcher  # noqa: PLC0415
    from sethub.queues import QueueSender  # noqa: PLC0415
    from sethub.records import DeliveryRecords, EventMarkers  # noqa: PLC0415
    from sethub.signing import KmsSigner  # noqa: PLC0415
    from sethub.store import SubscriptionStore  # noqa: PLC0415

    phases = Phases()
    phases.wrap(SubscriptionStore, "list_active", "query")
    phases.wrap(SubscriptionStore, "topic_exists", "topic check")
    phases.wrap(KmsSigner, "sign", "sign")
    phases.wrap(Dispatcher, "_deliver", "deliver")
    phases.wrap(Dispatcher, "_settle", "settle+log")
    # Record batches are written on threads of their own, overlapping the deliveries:
    # "records" sums those writes, "records wait" is what the handler then still waits.
    phases.wrap(DeliveryRecords, "write_items", "records")
    phases.wrap(Dispatcher, "_finish_records", "records wait")
    phases.wrap(QueueSender, "send_all", "sqs send")
    phases.wrap(EventMarkers, "claim", "jti claims")
    # ``sethub.ingest`` calls ``events.validate`` through the module, so wrapping it here counts.
    original = events.validate

    @functools.wraps(original)
    def validate(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            with phases._lock:
                phases.seconds["validate"] = (
                    phases.seconds.get("validate", 0.0) + time.perf_counter() - started
                )

    events.validate = validate
    return phases
