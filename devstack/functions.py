"""The template's functions, loaded from their code folders and invoked like Lambda would.

All functions share this one process, so their modules are loaded by file path (their
handler modules have distinct names for that reason) after the caller has put the
union of their environments into ``os.environ``.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from devstack.lambdaspec import ACCOUNT_ID, FunctionSpec

Handler = Callable[[dict[str, Any], Any], Any]


class Invocable(Protocol):
    """What the API and the pollers call: a function in this process, a worker or the emulator."""

    def invoke(self, event: dict[str, Any]) -> Any: ...


class FunctionLoadError(RuntimeError):
    """A function's handler could not be imported."""


@dataclass
class LambdaContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    region: str = "us-east-1"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.invoked_function_arn = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class LocalFunction:
    spec: FunctionSpec
    handler: Handler
    region: str

    def invoke(self, event: dict[str, Any]) -> Any:
        context = LambdaContext(
            function_name=self.spec.logical_id,
            memory_limit_in_mb=self.spec.memory_size,
            timeout_seconds=self.spec.timeout,
            region=self.region,
        )
        return self.handler(event, context)


def load_function(spec: FunctionSpec, root: Path, region: str) -> LocalFunction:
    """Import ``spec``'s handler from ``root/CodeUri`` (``Handler`` is ``module.function``)."""
    module_name, _, function_name = spec.handler.rpartition(".")
    code_dir = (root / spec.code_uri).resolve()
    path = code_dir / f"{module_name.replace('.', '/')}.py"
    if not path.is_file():
        raise FunctionLoadError(f"{spec.logical_id}: handler module {path.name} not found in {spec.code_uri}")
    module = sys.modules.get(module_name)
    if module is None or Path(getattr(module, "__file__", "") or "").resolve() != path:
        # Like Lambda, the code folder is importable (helpers next to the handler).
        if str(code_dir) not in sys.path:
            sys.path.append(str(code_dir))
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise FunctionLoadError(f"{spec.logical_id}: cannot import {path.name}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise FunctionLoadError(f"{spec.logical_id}: importing {path.name} failed: {exc!r}") from exc
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise FunctionLoadError(f"{spec.logical_id}: {spec.handler} is not a function")
    return LocalFunction(spec=spec, handler=handler, region=region)


def load_functions(
    specs: Mapping[str, FunctionSpec], root: Path, region: str, only: set[str] | None = None
) -> dict[str, LocalFunction]:
    return {
        logical_id: load_function(spec, root, region)
        for logical_id, spec in specs.items()
        if only is None or logical_id in only
    }
