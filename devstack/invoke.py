"""Invoking functions through the Lambda Invoke API, and the worker processes that serve it.

The API and the queue pollers hold a ``RemoteFunction`` per function. Its endpoint is a
worker process of that function (the default, ``SETHUB_LOCAL_FUNCTIONS=process``) or
``sam local start-lambda`` (``SETHUB_LOCAL_FUNCTIONS=sam``): the same request either way.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import urllib3

from devstack.provision import FunctionSpec
from devstack.worker import INVOKE_PATH, READY_PREFIX

WORKER_START_SECONDS = 60
INVOKE_MARGIN_SECONDS = 30
"""Beyond the function's own timeout: a cold start in the emulator takes seconds."""


class FunctionError(RuntimeError):
    """The function failed (the Invoke API's ``X-Amz-Function-Error``), or could not be invoked."""


@dataclass
class RemoteFunction:
    """One function behind a Lambda Invoke endpoint; ``invoke`` returns the handler's result."""

    spec: FunctionSpec
    endpoint: str
    _http: urllib3.PoolManager = field(default_factory=lambda: urllib3.PoolManager(maxsize=16), repr=False)

    def invoke(self, event: Mapping[str, Any]) -> Any:
        url = self.endpoint.rstrip("/") + INVOKE_PATH.format(name=self.spec.logical_id)
        try:
            response = self._http.request(
                "POST",
                url,
                body=json.dumps(event).encode(),
                headers={"Content-Type": "application/json"},
                timeout=urllib3.Timeout(connect=5, read=self.spec.timeout + INVOKE_MARGIN_SECONDS),
                retries=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise FunctionError(f"{self.spec.logical_id}: invoke failed: {exc}") from exc
        if response.status != 200:
            raise FunctionError(f"{self.spec.logical_id}: invoke answered {response.status}")
        payload = json.loads(response.data or b"null")
        error = response.headers.get("X-Amz-Function-Error")
        if error:
            detail = payload.get("errorMessage") if isinstance(payload, dict) else payload
            raise FunctionError(f"{self.spec.logical_id}: {error}: {detail}")
        return payload


class FunctionWorker:
    """A ``python -m devstack.worker`` process for one function, with only its environment."""

    def __init__(self, spec: FunctionSpec, root: Path, env: Mapping[str, str]) -> None:
        self.spec = spec
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "devstack.worker",
                "--spec",
                json.dumps(asdict(spec)),
                "--root",
                str(root),
            ],
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.endpoint = ""

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def wait_ready(self) -> None:
        """Read the worker's ``listening <port>`` line, then pass its output (the function's logs) on."""
        assert self._process.stdout is not None
        line = _readline(self._process.stdout, WORKER_START_SECONDS)
        if not line.startswith(READY_PREFIX):
            self.stop()
            raise FunctionError(
                f"{self.spec.logical_id}: the worker did not start (exit {self._process.poll()})"
            )
        self.endpoint = f"http://127.0.0.1:{int(line[len(READY_PREFIX) :])}"
        threading.Thread(
            target=_copy, args=(self._process.stdout,), name=f"logs-{self.spec.logical_id}", daemon=True
        ).start()

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdin is not None:
            self._process.stdin.close()


class WorkerPool:
    """A function's containers: each runs one invocation at a time, as on Lambda; when all are
    busy another one starts (a cold start), up to ``max_workers``, then invocations wait."""

    def __init__(
        self, spec: FunctionSpec, root: Path, env: Mapping[str, str], max_workers: int, *, warm: bool = True
    ) -> None:
        self.spec = spec
        self._root = root
        self._env = dict(env)
        self._max = max(1, max_workers)
        self._idle: list[tuple[FunctionWorker, RemoteFunction]] = []
        # A warm pool starts its first worker at once; a cold one on its first invocation.
        self._all: list[FunctionWorker] = [FunctionWorker(spec, root, env)] if warm else []
        self._changed = threading.Condition()

    def wait_ready(self) -> None:
        """Wait for the first worker, if the pool started one (so that pools start side by side)."""
        if not self._all:
            return
        first = self._all[0]
        first.wait_ready()
        self._idle.append((first, RemoteFunction(self.spec, first.endpoint)))

    def invoke(self, event: Mapping[str, Any]) -> Any:
        worker, function = self._acquire()
        try:
            return function.invoke(event)
        finally:
            self._release(worker, function)

    def _acquire(self) -> tuple[FunctionWorker, RemoteFunction]:
        with self._changed:
            while not self._idle and len(self._all) >= self._max:
                self._changed.wait()
            if self._idle:
                return self._idle.pop()
            worker = FunctionWorker(self.spec, self._root, self._env)
            self._all.append(worker)
        try:
            worker.wait_ready()
        except FunctionError:
            self._forget(worker)
            raise
        return worker, RemoteFunction(self.spec, worker.endpoint)

    def _release(self, worker: FunctionWorker, function: RemoteFunction) -> None:
        if not worker.alive:  # it crashed: the next invocation gets a fresh one
            self._forget(worker)
            return
        with self._changed:
            self._idle.append((worker, function))
            self._changed.notify()

    def _forget(self, worker: FunctionWorker) -> None:
        worker.stop()
        with self._changed:
            self._all.remove(worker)
            self._changed.notify()

    def stop(self) -> None:
        with self._changed:
            workers, self._all, self._idle = self._all, [], []
        for worker in workers:
            worker.stop()


def start_pools(
    specs: Mapping[str, FunctionSpec],
    root: Path,
    envs: Mapping[str, Mapping[str, str]],
    max_workers: int,
    warm: Collection[str] | None = None,
) -> dict[str, WorkerPool]:
    """A pool per function, those named in ``warm`` (default: all) with a worker started at
    once, side by side; the others start one on their first invocation (a function that
    nothing triggers locally, such as a custom resource's, costs no process)."""
    pools = {
        name: WorkerPool(spec, root, envs[name], max_workers, warm=warm is None or name in warm)
        for name, spec in specs.items()
    }
    try:
        for pool in pools.values():
            pool.wait_ready()
    except BaseException:
        for pool in pools.values():
            pool.stop()
        raise
    return pools


def _readline(stream: IO[bytes], timeout: float) -> str:
    """One line from ``stream``, or "" if none arrives within ``timeout`` seconds."""
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0].decode(errors="replace").strip() if lines else ""


def _copy(stream: IO[bytes]) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
