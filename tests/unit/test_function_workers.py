"""devstack's function workers: one process per function, invoked through the Lambda Invoke API."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devstack.invoke import FunctionError, FunctionWorker, RemoteFunction
from devstack.provision import FunctionSpec

HANDLER = """
import os

def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {
        "seen": sorted(k for k in os.environ if k.startswith("SETHUB_")),
        "name": context.function_name,
        "echo": event.get("echo"),
    }
"""


@pytest.fixture
def worker(tmp_path: Path):
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "probe_handler.py").write_text(HANDLER)
    spec = FunctionSpec(
        logical_id="ProbeFunction",
        code_uri="fn/",
        handler="probe_handler.handler",
        timeout=5,
        memory_size=128,
        environment={"SETHUB_OWN": "1"},
    )
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


def test_a_handler_that_cannot_be_imported_fails_the_start(tmp_path: Path):
    spec = FunctionSpec("Broken", "missing/", "nothing.handler", 5, 128, {})
    worker = FunctionWorker(spec, tmp_path, {"PATH": os.environ["PATH"]})
    with pytest.raises(FunctionError, match="did not start"):
        worker.wait_ready()
