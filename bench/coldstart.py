"""Cold start: importing each handler module in a fresh interpreter, beside a bare ``import boto3``.

Measured inside the child with ``time.perf_counter`` around the import (interpreter
start-up is excluded: Lambda's own runtime start is not the function's to cut). Handlers
build their AWS clients on first use, so this is everything a cold container runs
before its first event is handed over.

Each child gets the environment a deployed function has (``LAMBDA_TASK_ROOT``, the X-Ray
daemon address of ``Tracing: Active``, Powertools' variables): outside Lambda the X-Ray
SDK builds two botocore clients for centralized sampling and Powertools turns tracing
off, so an import measured with a developer's environment is neither Lambda's cost nor
its code path.

The handlers and the layer are compiled to bytecode first, as the deployed layer carries
it (layers/shared/Makefile compiles it in every ``sam build``): without that, a source
changed since its last ``.pyc`` (or an environment with ``PYTHONDONTWRITEBYTECODE``) would
be compiled again in every run and counted as import. The init of each function in the
Lambda runtime emulator, with its built artifact, is ``bench.emulator``'s (``make bench``
prints it in the rows after these; ``python -m bench.emulator`` alone;
``python -m bench.rows coldstart --emulator`` beside each handler's import ratio).
"""

from __future__ import annotations

import compileall
import json
import statistics
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.3
"""Issue 12: each handler's import at most 1.3x ``import boto3`` in the same run."""

_CHILD = """
import importlib.util, json, sys, time
path, name = sys.argv[1], sys.argv[2]
started, cpu = time.perf_counter(), time.process_time()
if path == "-":
    import boto3
else:
    sys.path.insert(0, str(__import__("pathlib").Path(path).parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
print(json.dumps([time.perf_counter() - started, time.process_time() - cpu]))
"""

HANDLERS = {
    "ingest_handler": ROOT / "functions" / "ingest" / "ingest_handler.py",
    "websub_handler": ROOT / "functions" / "websub" / "websub_handler.py",
    "verifier_handler": ROOT / "functions" / "verifier" / "verifier_handler.py",
    "dispatch_handler": ROOT / "functions" / "dispatch" / "dispatch_handler.py",
    "ssf_handler": ROOT / "functions" / "ssf" / "ssf_handler.py",
    "keyring_handler": ROOT / "functions" / "keyring" / "keyring_handler.py",
    # Ingress=http only: the HTTP API's Lambda authorizer of POST /events.
    "authorizer_handler": ROOT / "functions" / "authorizer" / "authorizer_handler.py",
}


def handler_functions(template: Mapping[str, Any]) -> dict[str, str]:
    """Each handler module of ``HANDLERS`` and the template's function that runs it
    (the emulator names its results by function)."""
    functions = {
        str((resource.get("Properties") or {}).get("Handler", "")).partition(".")[0]: name
        for name, resource in (template.get("Resources") or {}).items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }
    return {handler: functions[handler] for handler in HANDLERS if handler in functions}


@dataclass(frozen=True)
class Imports:
    """One module's import over several fresh interpreters: wall and CPU seconds of each run."""

    wall: tuple[float, ...]
    cpu: tuple[float, ...]

    @property
    def median(self) -> float:
        """Median wall seconds."""
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)


def lambda_environment(env: Mapping[str, str], path: str, name: str) -> dict[str, str]:
    """``env`` plus the variables Lambda sets for a function with ``Tracing: Active``."""
    task_root = str(Path(path).parent) if path != "-" else str(ROOT)
    return {
        **env,
        "POWERTOOLS_SERVICE_NAME": "sethub",
        "POWERTOOLS_METRICS_NAMESPACE": "sethub",
        "AWS_LAMBDA_FUNCTION_NAME": f"sethub-{name}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "LAMBDA_TASK_ROOT": task_root,
        "_HANDLER": f"{name}.handler",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        # Nothing listens there: the import sends nothing, it only reads the address.
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    }


def _once(path: str, name: str, env: Mapping[str, str]) -> tuple[float, float]:
    output = subprocess.run(
        [sys.executable, "-c", _CHILD, path, name],
        env=lambda_environment(env, path, name),
        capture_output=True,
        check=True,
        timeout=60,
        cwd=ROOT,
    ).stdout
    wall, cpu = json.loads(output.splitlines()[-1])
    return float(wall), float(cpu)


def measure(env: Mapping[str, str], runs: int = 5) -> dict[str, Imports]:
    """Each module's import over ``runs`` fresh interpreters (``boto3`` first).

    The modules take turns within each round, so a burst of load on this shared machine
    falls on all of them rather than on one module's runs. CPU time is measured beside
    wall time: on a loaded machine the wall time of an import is mostly waiting for a
    core, while its CPU time stays what an idle core (a Lambda container's) would spend.
    """
    for folder in (ROOT / "layers" / "shared" / "sethub", ROOT / "functions"):
        compileall.compile_dir(folder, quiet=1)
    targets = {"boto3": "-", **{name: str(path) for name, path in HANDLERS.items()}}
    runs_of: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
    for _ in range(runs):
        for name, path in targets.items():
            runs_of[name].append(_once(path, name, env))
    return {
        name: Imports(tuple(wall for wall, _ in values), tuple(cpu for _, cpu in values))
        for name, values in runs_of.items()
    }
