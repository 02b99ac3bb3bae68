"""Cold start: importing each handler module in a fresh interpreter, beside a bare ``import boto3``.

Measured inside the child with ``time.perf_counter`` around the import (interpreter
start-up is excluded: Lambda's own runtime start is not the function's to cut). Handlers
build their AWS clients on first use, so this is everything a cold container runs
before its first event is handed over.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import importlib.util, json, sys, time
path, name = sys.argv[1], sys.argv[2]
started = time.perf_counter()
if path == "-":
    import boto3
else:
    sys.path.insert(0, str(__import__("pathlib").Path(path).parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
print(json.dumps(time.perf_counter() - started))
"""

HANDLERS = {
    "ingest_handler": ROOT / "functions" / "ingest" / "ingest_handler.py",
    "websub_handler": ROOT / "functions" / "websub" / "websub_handler.py",
    "verifier_handler": ROOT / "functions" / "verifier" / "verifier_handler.py",
    "dispatch_handler": ROOT / "functions" / "dispatch" / "dispatch_handler.py",
}


def _once(path: str, name: str, env: Mapping[str, str]) -> float:
    output = subprocess.run(
        [sys.executable, "-c", _CHILD, path, name],
        env=dict(env),
        capture_output=True,
        check=True,
        timeout=60,
        cwd=ROOT,
    ).stdout
    return float(json.loads(output.splitlines()[-1]))


def measure(env: Mapping[str, str], runs: int = 3) -> dict[str, float]:
    """Median seconds per module (``boto3`` first), over ``runs`` fresh interpreters each."""
    targets = {"boto3": "-", **{name: str(path) for name, path in HANDLERS.items()}}
    return {
        name: statistics.median(_once(path, name, env) for _ in range(runs)) for name, path in targets.items()
    }
