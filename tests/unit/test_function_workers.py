"""devstack's function workers: one process per function, invoked through the Lambda Invoke API."""

from __future__ import annotations

import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from devstack.invoke import FunctionError, FunctionWorker, RemoteFunction, WorkerPool, start_pools
from devstack.provision import FunctionSpec

HANDLER = """
import os
from dataclasses import replace
import socket

def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    if event.get("hold"):
        # Stay in flight until the test answers on its socket.
        with socket.create_connection(("127.0.0.1", event["hold"])) as held:
            held.recv(1)
        return {"pid": os.getpid()}
    if event.get("pid"):
        return {"pid": os.getpid()}
    return {
        "seen": sorted(k for k in os.environ if k.startswith("SETHUB_")),
        "name": context.function_name,
        "echo": event.get("echo"),
    }
"""


def probe_spec(tmp_path: Path) -> FunctionSpec:
    (tmp_path / "fn").mkdir(exist_ok=True)
    (tmp_path / "fn" / "probe_handler.py").write_text(HANDLER)
    return FunctionSpec(
        logical_id="ProbeFunction",
        code_uri="fn/",
        handler="probe_handler.handler",
        timeout=5,
        memory_size=128,
        environment={"SETHUB_OWN": "1"},
    )


@pytest.fixture
def worker(tmp_path: Path):
    spec = probe_spec(tmp_path)
    # GIVEN a worker started with only this function's environment (none of the test process's)
    env = {"PATH": os.environ["PATH"], "SETHUB_OWN": "1"}
    started = FunctionWorker(spec, tmp_path, env)
    started.wait_ready()
    yield RemoteFunction(spec, started.endpoint), started
    started.stop()


def test_an_invocation_returns_the_handlers_result_and_sees_only_the_given_environment(worker):
    function, _ = worker
    result = function.invoke({"echo": "hello"})
    assert result == {"seen": ["SETHUB_OWN"], "name": "ProbeFunction", "echo": "hello"}


def test_a_handler_that_raises_is_a_function_error_and_the_worker_keeps_serving(worker):
    function, _ = worker
    with pytest.raises(FunctionError, match="Unhandled: asked to fail"):
        function.invoke({"fail": True})
    assert function.invoke({"echo": 2})["echo"] == 2


def test_a_stopped_worker_is_an_invoke_error_not_a_hang(worker):
    function, started = worker
    started.stop()
    with pytest.raises(FunctionError, match="invoke failed"):
        function.invoke({})


def test_ctrl_c_leaves_a_worker_serving_until_the_stack_stops_it(
    worker: tuple[RemoteFunction, FunctionWorker],
) -> None:
    # GIVEN a worker; WHEN Ctrl-C reaches its process group (the stack lets running batches
    # finish first, and they need their function)
    function, started = worker
    pid = function.invoke({"pid": True})["pid"]
    os.kill(pid, signal.SIGINT)
    # THEN it still answers, until the stack stops it
    assert function.invoke({"pid": True})["pid"] == pid
    started.stop()
    with pytest.raises(FunctionError, match="invoke failed"):
        function.invoke({})


def test_a_handler_that_cannot_be_imported_fails_the_start(tmp_path: Path):
    spec = FunctionSpec("Broken", "missing/", "nothing.handler", 5, 128, {})
    worker = FunctionWorker(spec, tmp_path, {"PATH": os.environ["PATH"]})
    with pytest.raises(FunctionError, match="did not start"):
        worker.wait_ready()


@pytest.fixture
def pool(tmp_path: Path):
    started = WorkerPool(probe_spec(tmp_path), tmp_path, {"PATH": os.environ["PATH"]}, max_workers=3)
    started.wait_ready()
    yield started
    started.stop()


def test_a_pool_reuses_its_idle_container(pool):
    assert pool.invoke({"pid": True}) == pool.invoke({"pid": True})


def test_concurrent_invocations_never_share_a_container(pool):
    # GIVEN two invocations held in flight at the same time
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with ThreadPoolExecutor(2) as executor:
            results = [executor.submit(pool.invoke, {"hold": port}) for _ in range(2)]
            listener.settimeout(60)
            held = [listener.accept()[0] for _ in range(2)]
            # WHEN both are in flight, THEN they are released and answer from two processes
            for connection in held:
                connection.sendall(b"x")
                connection.close()
            pids = {future.result(timeout=60)["pid"] for future in results}
    assert len(pids) == 2


def test_only_warm_pools_start_a_container_before_their_first_invocation(tmp_path: Path):
    probe = probe_spec(tmp_path)
    broken = replace(probe, logical_id="BrokenFunction", handler="missing_handler.handler")
    specs = {"ProbeFunction": probe, "BrokenFunction": broken}
    envs = {name: {"PATH": os.environ["PATH"]} for name in specs}

    # All warm (the default): a function that cannot start fails the stack's start.
    with pytest.raises(FunctionError):
        start_pools(specs, tmp_path, envs, max_workers=1)

    # Only ProbeFunction warm (what the API and the queues invoke): the other starts nothing,
    # and its import error shows on its first invocation, as a Lambda cold start's does.
    pools = start_pools(specs, tmp_path, envs, max_workers=1, warm={"ProbeFunction"})
    try:
        assert pools["ProbeFunction"].invoke({"echo": "hi"})["echo"] == "hi"
        with pytest.raises(FunctionError, match="BrokenFunction: the worker did not start"):
            pools["BrokenFunction"].invoke({})
    finally:
        for started in pools.values():
            started.stop()
