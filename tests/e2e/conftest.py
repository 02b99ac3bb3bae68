"""Fixtures for end-to-end tests: the local stack as a user runs it (see e2e_harness).

``start_local_stack(**env)`` starts one with extra environment variables (settings such
as ``SETHUB_OPEN_TOPICS="true"``) and waits for ``/health``; ``moto_endpoint=`` and
``prefix=`` attach it to an existing moto server instead of its embedded one (so a
test can kill a stack and start another on the same queues). ``local_stack`` is one
started with the defaults, shared by the session. Every stack is stopped at the end.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import (  # type: ignore[import-not-found]
    FUNCTIONS_ENV,
    FUNCTIONS_MODE,
    ROOT,
    START_DEADLINE_SECONDS,
    LocalStackProcess,
    StartLocalStack,
    callback_host,
    child_environment,
    free_port,
    wait_for,
)
from subscribers import SubscriberFarm  # type: ignore[import-not-found]

# Only in sam mode (`make test-sam`): they drive the SAM CLI against a running stack.
collect_ignore = [] if FUNCTIONS_MODE == "sam" else ["test_sam_local.py"]


def _launcher(started: list[LocalStackProcess], logs: Path) -> StartLocalStack:
    def start(
        *,
        moto_endpoint: str | None = None,
        prefix: str | None = None,
        template: Path | None = None,
        **env: str,
    ) -> LocalStackProcess:
        port = free_port()
        prefix = prefix or f"e{uuid.uuid4().hex[:8]}"
        extra = {
            "PORT": str(port),
            FUNCTIONS_ENV: FUNCTIONS_MODE,
            # Its own file: stacks run side by side, and the repository's is the developer's.
            "SETHUB_LOCAL_ENV_VARS_FILE": str(logs / f"{prefix}-env.json"),
            **env,
        }
        arguments = [sys.executable, "-m", "devstack", "--quiet", "--prefix", prefix]
        if template is not None:
            arguments += ["--template", str(template)]
        if moto_endpoint:
            arguments += ["--moto-endpoint", moto_endpoint]
        else:
            extra["MOTO_PORT"] = str(free_port())
        log_path = logs / f"{prefix}-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                arguments, cwd=ROOT, env=child_environment(extra), stdout=log, stderr=subprocess.STDOUT
            )
        stack = LocalStackProcess(
            process=process,
            base_url=f"http://127.0.0.1:{port}",
            api_key=env.get("SETHUB_LOCAL_API_KEY", "local-dev-key"),
            env=extra,
            # In sam mode the embedded AWS listens where the functions' containers reach it.
            moto_endpoint=moto_endpoint or f"http://{callback_host()}:{extra['MOTO_PORT']}",
            prefix=prefix,
            log_path=log_path,
        )
        started.append(stack)

        def healthy() -> bool:
            if process.poll() is not None:
                pytest.fail(f"devstack exited with {process.returncode}:\n{stack.output}")
            try:
                return bool(stack.request("GET", "/health")[0] == 200)
            except OSError:
                return False

        wait_for(healthy, timeout=START_DEADLINE_SECONDS, message=f"devstack /health\n{stack.output}")
        return stack

    return start


def _stop_all(started: list[LocalStackProcess]) -> None:
    for stack in started:
        if stack.process.poll() is None:
            stack.stop()


@pytest.fixture
def start_local_stack(tmp_path: Path) -> Iterator[StartLocalStack]:
    """Stacks with their own settings, stopped at the end of the test."""
    started: list[LocalStackProcess] = []
    yield _launcher(started, tmp_path)
    _stop_all(started)


@pytest.fixture(scope="module")
def start_module_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartLocalStack]:
    """Stacks with their own settings that the tests of one module share (stopped after it):
    one start instead of one per test."""
    started: list[LocalStackProcess] = []
    yield _launcher(started, tmp_path_factory.mktemp("devstack"))
    _stop_all(started)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackProcess]:
    """One stack with the default settings, shared by the tests that need nothing else
    (each uses its own topics and callbacks): starting a stack costs seconds."""
    started: list[LocalStackProcess] = []
    yield _launcher(started, tmp_path_factory.mktemp("devstack"))()
    _stop_all(started)


@pytest.fixture
def subscribers() -> Iterator[Callable[..., Any]]:
    """Starts webhook subscribers (``subscribers(failures=2)``: subscribers.py), stopped after the test."""
    farm = SubscriberFarm()
    yield farm.start
    farm.close()
