"""The embedded AWS (moto) in a process of its own, and a counting proxy for boto3 clients.

moto runs in a separate process so that its server-side CPU (which in AWS is not the
function's) is not charged to the process whose CPU per delivery is measured.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

AWS_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def _serve(ready: Any) -> None:
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 (only in the child)

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    ready.put(f"http://{host}:{port}")
    threading.Event().wait()


@dataclass
class Moto:
    endpoint: str
    process: BaseProcess

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, **AWS_ENV}

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(timeout=5)


def start_moto() -> Moto:
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    process = context.Process(target=_serve, args=(ready,), daemon=True)
    process.start()
    return Moto(endpoint=str(ready.get(timeout=60)), process=process)


class CallCounter:
    """Counts API calls per ``service.operation`` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.seconds = 0.0
        """Wall time spent inside AWS calls made on the main thread (the handler's own):
        calls on helper threads (delivery records) overlap the deliveries, so they are not
        time the handler spent waiting on AWS."""
        self._unpriced: list[tuple[str, Mapping[str, Any], Any]] = []

    def add(
        self,
        name: str,
        seconds: float = 0.0,
        units: Mapping[str, float] | None = None,
        *,
        priced_later: tuple[Mapping[str, Any], Any] | None = None,
    ) -> None:
        """``priced_later``: the call's (params, response), whose capacity units are counted
        at the next ``snapshot``, outside the handler's timed run (a Query of 1000 items
        took the handler measurably longer when its units were counted inline)."""
        blocking = threading.current_thread() is threading.main_thread()
        with self._lock:
            self.calls[name] += 1
            self._count_units(units or {})
            if priced_later is not None:
                self._unpriced.append((name, *priced_later))
            if blocking:
                self.seconds += seconds

    def _count_units(self, units: Mapping[str, float]) -> None:
        for unit, amount in units.items():
            # Capacity units are counted beside the calls, e.g. "dynamodb WRU".
            self.calls[unit] += amount  # type: ignore[assignment]

    def snapshot(self) -> Counter[str]:
        with self._lock:
            unpriced, self._unpriced = self._unpriced, []
            for name, params, response in unpriced:
                self._count_units(_units(name, params, response))
            return Counter(self.calls)

    def since(self, before: Counter[str]) -> Counter[str]:
        now = self.snapshot()
        now.subtract(before)
        return Counter({name: count for name, count in now.items() if count})


class CountingClient:
    """A boto3 client whose API method calls are counted; everything else passes through."""

    def __init__(self, client: Any, service: str, counter: CallCounter) -> None:
        self._client = client
        self._service = service
        self._counter = counter
        self._operations = set(client.meta.method_to_api_mapping)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in self._operations:
            return attribute
        operation = f"{self._service}.{self._client.meta.method_to_api_mapping[name]}"

        def counted(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            response: Any = {}
            try:
                response = attribute(*args, **kwargs)
                return response
            except Exception as exc:
                # A refused conditional write still consumed its write units.
                response = getattr(exc, "response", {}) or {}
                raise
            finally:
                self._counter.add(
                    operation, time.perf_counter() - started, priced_later=(dict(kwargs), response)
                )

        return counted


def _units(operation: str, params: Mapping[str, Any], response: Any) -> dict[str, float]:
    service, _, name = operation.partition(".")
    if service != "dynamodb":
        return {}
    from bench import cost  # noqa: PLC0415

    # The event archive's items are priced on lines of their own (bench.cost).
    archive_wru, archive_bytes = cost.archive_units(name, params)
    units = {
        "dynamodb WRU": cost.write_units(name, params) - archive_wru,
        "dynamodb RRU": cost.read_units(name, params, response if isinstance(response, dict) else {}),
        "dynamodb archive WRU": archive_wru,
        "dynamodb archive bytes": archive_bytes,
    }
    return {unit: amount for unit, amount in units.items() if amount}


def counting_clients(counter: CallCounter) -> Callable[[], Any]:
    """A drop-in for ``sethub.clients.AwsClients`` whose clients count their calls."""
    from sethub.clients import AwsClients  # noqa: PLC0415

    def build() -> AwsClients:
        plain = AwsClients()
        counted: dict[str, Any] = {
            service: CountingClient(getattr(plain, service), service, counter)
            for service in ("dynamodb", "sqs", "kms", "secretsmanager")
        }
        return AwsClients(**counted)

    return build
