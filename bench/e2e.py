"""End to end through ``make local`` (``python -m devstack`` on free ports), subscribers on the farm.

- latency: one subscriber, events published one per POST /events at a steady pace;
  the publish time is taken just before each POST, the arrival time by the farm;
- throughput: ``subscribers`` subscribers, ``publishes`` POSTs of one event each as fast
  as they are accepted; deliveries per second from the first POST to the last arrival.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3

from bench.farm import Farm

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "local-dev-key"
LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"


class BenchError(RuntimeError):
    """A benchmark could not run to the end."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    base_url: str
    moto_endpoint: str
    prefix: str
    log: Path

    def publish(self, topic: str) -> tuple[str, float]:
        jti = str(uuid.uuid4())
        body = json.dumps({"topic": topic, "jti": jti, "events": {LOGIN: {"user": {"id": "42"}}}}).encode()
        at = time.time()
        status = _http(
            "POST",
            f"{self.base_url}/events",
            body,
            {"x-api-key": API_KEY, "Content-Type": "application/json"},
        )
        if status != 202:
            raise BenchError(f"POST /events answered {status}")
        return jti, at

    def hub(self, **params: str) -> int:
        return _http(
            "POST",
            f"{self.base_url}/hub",
            urlencode(params).encode(),
            {"x-api-key": API_KEY, "Content-Type": "application/x-www-form-urlencoded"},
        )

    def subscribe(self, topic: str, callbacks: list[str]) -> None:
        if self.hub(**{"hub.mode": "register", "hub.topic": topic}) != 200:
            raise BenchError("topic registration refused")
        for callback in callbacks:
            status = self.hub(**{"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": callback})
            if status != 202:
                raise BenchError(f"subscribe answered {status}")
        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=self.moto_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        table = next(
            name
            for name in dynamodb.list_tables()["TableNames"]
            if name.startswith(self.prefix) and "HubTable" in name
        )

        def active() -> bool:
            items = dynamodb.query(
                TableName=table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :sub)",
                ExpressionAttributeValues={":pk": {"S": f"TOPIC#{topic}"}, ":sub": {"S": "SUB#"}},
                ConsistentRead=True,
            )["Items"]
            return sum(1 for item in items if item.get("state", {}).get("S") == "active") >= len(callbacks)

        _wait(active, 120, "subscriptions to be verified")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_stack(workdir: Path) -> Stack:
    port, moto_port = _free_port(), _free_port()
    prefix = f"b{uuid.uuid4().hex[:8]}"
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "SETHUB_", "POWERTOOLS_")) and name not in ("PORT", "MOTO_PORT")
    }
    env.update({"PORT": str(port), "MOTO_PORT": str(moto_port)})
    log = workdir / "devstack.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "--quiet", "--prefix", prefix],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stack = Stack(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{moto_port}", prefix, log)

    def healthy() -> bool:
        if process.poll() is not None:
            raise BenchError(f"devstack exited with {process.returncode}; see its log")
        try:
            return _http("GET", f"{stack.base_url}/health") == 200
        except OSError:
            return False

    _wait(healthy, 60, "devstack /health")
    return stack


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@dataclass
class Latencies:
    """Seconds per event: publish to arrival, and its two parts (the POST answered, then the rest)."""

    total: list[float]
    ingest: list[float]
    """``POST /events`` round trip: gateway, ingest function (key, topic, jti marker, SQS send)."""
    after_accept: list[float]
    """202 to arrival: the queue's wait for a poller and dispatch up to the delivery."""


def _latencies(stack: Stack, farm: Farm, *, events: int, rate: float) -> Latencies:
    """Latencies of ``events`` events published at a steady ``rate``."""
    farm.reset()
    published: dict[str, tuple[float, float]] = {}
    started = time.monotonic()
    for n in range(events):
        # A steady pace: each publish at its slot, so queueing does not build up.
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        jti, at = stack.publish("bench.latency")
        published[jti] = (at, time.time())
    arrivals = _wait(
        lambda: (found := farm.arrivals()) and set(published) <= set(found) and found,
        120,
        "every latency event to arrive",
    )
    return Latencies(
        total=[arrivals[jti] - at for jti, (at, _) in published.items()],
        ingest=[accepted - at for at, accepted in published.values()],
        after_accept=[arrivals[jti] - accepted for jti, (_, accepted) in published.items()],
    )


def measure(
    farm: Farm, *, latency_events: int, rate: float, subscribers: int, publishes: int, latency_runs: int = 5
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sethub-bench-") as workdir:
        stack = start_stack(Path(workdir))
        try:
            port = farm.ports[0]
            stack.subscribe("bench.latency", [farm.url(port, "/rec/latency")])
            # Warm-up, not measured: the first event builds each function's clients and pools, and
            # two seconds at the measured rate start the containers it keeps busy (five pollers
            # per queue invoke side by side, as Lambda's do: each new container is a cold start).
            _latencies(stack, farm, events=max(5, round(2 * rate)), rate=rate)
            runs = [_latencies(stack, farm, events=latency_events, rate=rate) for _ in range(latency_runs)]

            callbacks = [
                farm.url(farm.ports[n % len(farm.ports)], f"/cb/e2e/{n}") for n in range(subscribers)
            ]
            stack.subscribe("bench.e2e", callbacks)
            farm.reset()
            first = time.time()
            with ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(lambda _: stack.publish("bench.e2e"), range(publishes)))
            expected = subscribers * publishes
            stats = _wait(
                lambda: (s := farm.stats())["posts"] >= expected and s, 180, "every e2e delivery to arrive"
            )
            return {
                "latency_events": latency_events,
                "latency_runs": latency_runs,
                "rate": rate,
                "p50s": [statistics.median(run.total) for run in runs],
                "p99s": [_percentile(run.total, 0.99) for run in runs],
                # Where it went: the POST's round trip, and the rest (queue wait and dispatch).
                "ingest_p50s": [statistics.median(run.ingest) for run in runs],
                "after_accept_p50s": [statistics.median(run.after_accept) for run in runs],
                "subscribers": subscribers,
                "publishes": publishes,
                "deliveries": stats["posts"],
                "seconds": stats["last"] - first,
            }
        finally:
            stack.stop()
