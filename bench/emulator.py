"""Each function's cold start and memory in the Lambda runtime emulator (``sam local``).

The functions are built with ``sam build`` into a scratch folder and served by ``sam
local start-lambda`` with one warm container per function (``--warm-containers EAGER``),
from ``public.ecr.aws/lambda/python:3.12`` (AWS's image, or the stand-in that
``../shared/tools/lambda-runtime`` builds). Each function is invoked twice with an event
that needs no AWS call (``GET /health`` for API functions, a message that is not
sethub's for queue consumers).

What the emulator's REPORT line says and what is taken from it: the Runtime Interface
Emulator starts the runtime on the first invoke and prints ``Init Duration`` of well
under a millisecond and ``Max Memory Used`` equal to the memory size, so neither is a
measurement. The first invoke's ``Duration`` is (runtime start, imports, the first
event), the second's is the warm event; their difference estimates the init. Memory is
the runtime process's peak resident set (``VmHWM``) read inside the container after both
invokes.

The build is what ``sam build`` alone makes, bytecode included (layers/shared/Makefile
compiles the layer); the result says how many of the layer's modules had a usable ``.pyc``,
so a run without them (every module compiled at init) cannot pass for one with them.
``python -m bench.emulator`` prints each function's estimated init.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3
from botocore.config import Config

from devstack.artifact import check_bytecode
from devstack.template import load_template

ROOT = Path(__file__).resolve().parent.parent
SAM = ROOT / ".venv-sam" / "bin" / "sam"
IMAGE = "public.ecr.aws/lambda/python:3.12"
START_SECONDS = 300.0
"""The first start builds an image with the layer, then one container per function."""
INVOKE_SECONDS = 120
REPORT_SECONDS = 30.0

# Fields are tab separated; anchoring on the tab keeps "Billed Duration" out of "Duration".
_REPORT_FIELD = re.compile(r"(?:^|\t)(Init Duration|Duration|Max Memory Used): ([0-9.]+) (ms|MB)")

API_EVENT: dict[str, Any] = {
    "resource": "/health",
    "path": "/health",
    "httpMethod": "GET",
    "headers": {},
    "multiValueHeaders": {},
    "queryStringParameters": None,
    "multiValueQueryStringParameters": None,
    "pathParameters": None,
    "stageVariables": None,
    "requestContext": {
        "resourcePath": "/health",
        "httpMethod": "GET",
        "path": "/Prod/health",
        "stage": "Prod",
        "requestId": "bench",
        "identity": {"sourceIp": "127.0.0.1"},
    },
    "body": None,
    "isBase64Encoded": False,
}
QUEUE_EVENT: dict[str, Any] = {
    "Records": [
        {
            "messageId": "bench-1",
            "receiptHandle": "bench",
            "body": "not a sethub message",
            "attributes": {},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench",
            "awsRegion": "us-east-1",
        }
    ]
}

# Inside the container: the largest VmHWM (kB) of any python process, the function's runtime.
_PEAK_RSS = (
    'for d in /proc/[0-9]*; do case "$(tr "\\000" " " < "$d/cmdline" 2>/dev/null)" in '
    '*python*) sed -n "s/^VmHWM:[^0-9]*\\([0-9]*\\) kB/\\1/p" "$d/status";; esac; done'
)


@dataclass(frozen=True)
class Report:
    """The fields of one REPORT line of the emulator."""

    duration_ms: float
    init_duration_ms: float | None
    max_memory_mb: float | None


@dataclass(frozen=True)
class FunctionStart:
    function: str
    first_ms: float
    """REPORT Duration of the first invoke: runtime start, imports and the first event."""
    warm_ms: float
    peak_rss_mb: float | None
    reported_init_ms: float | None
    reported_max_memory_mb: float | None
    memory_size_mb: int
    function_error: str | None

    @property
    def init_ms(self) -> float:
        """The init's estimate: the first invoke less the warm one (same event)."""
        return self.first_ms - self.warm_ms


@dataclass(frozen=True)
class EmulatorResult:
    starts: list[FunctionStart]
    not_measured: str | None = None
    """Why nothing was measured (no Docker, no image), else None."""
    layer_bytecode: str | None = None
    """How many of the measured layer's modules had a usable .pyc, e.g. "892 of 892"."""


class EmulatorError(RuntimeError):
    """sam build, sam local or an invoke failed."""


def parse_report(line: str) -> Report | None:
    """The numbers of a ``REPORT RequestId: ...`` line, None for any other line."""
    if not line.startswith("REPORT RequestId:"):
        return None
    fields = {name: float(value) for name, value, _ in _REPORT_FIELD.findall(line)}
    if "Duration" not in fields:
        return None
    return Report(fields["Duration"], fields.get("Init Duration"), fields.get("Max Memory Used"))


def unavailable(docker: str = "docker", sam: Path = SAM) -> str | None:
    """Why the emulator cannot run here, or None."""
    if (
        shutil.which(docker) is None
        or subprocess.run([docker, "info"], capture_output=True, check=False).returncode
    ):
        return "not measured: no Docker"
    if subprocess.run([docker, "image", "inspect", IMAGE], capture_output=True, check=False).returncode:
        return f"not measured: no image {IMAGE} (../shared/tools/lambda-runtime builds one)"
    if not sam.is_file():
        return "not measured: no SAM CLI (make .venv-sam/.installed)"
    return None


def measure(
    docker: str = "docker", sam: Path = SAM, template: Path = ROOT / "template.yaml"
) -> EmulatorResult:
    """Every function of ``template``, or why nothing could be measured on this machine."""
    reason = unavailable(docker, sam)
    if reason:
        return EmulatorResult([], reason)
    with tempfile.TemporaryDirectory(prefix="sethub-emulator-") as scratch:
        work = Path(scratch)
        build = _build(sam, template, work)
        functions = _functions(build)
        # This process is the runtime's Python (3.12): its magic number is the runtime's.
        bytecode = check_bytecode(build / "SharedLayer", importlib.util.MAGIC_NUMBER)
        with _start_lambda(sam, work, docker) as (endpoint, log_path):
            client = boto3.client(
                "lambda",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
                config=Config(read_timeout=INVOKE_SECONDS, retries={"max_attempts": 0}),
            )
            starts = [
                _measure_function(client, log_path, docker, build, name, event, memory)
                for name, (event, memory) in functions.items()
            ]
    return EmulatorResult(
        starts, layer_bytecode=f"{bytecode.modules - len(bytecode.missing)} of {bytecode.modules}"
    )


def _sam_env() -> dict[str, str]:
    # sam build runs python3.12's pip: the base interpreter of the one running this.
    python_dir = str(Path(sys.base_prefix) / "bin")
    return {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": f"{python_dir}:{os.environ.get('PATH', '')}"}


def _build(sam: Path, template: Path, work: Path) -> Path:
    # From the scratch folder: sam keeps dependencies in ./.aws-sam/deps.
    result = subprocess.run(
        [str(sam), "build", "--template", str(template), "--build-dir", "build", "--cache-dir", "cache"],
        cwd=work,
        env=_sam_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode:
        raise EmulatorError(f"sam build failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return work / "build"


def _functions(build: Path) -> dict[str, tuple[dict[str, Any], int]]:
    """Each function's bench event (API or queue) and memory size, from the built template."""
    template = load_template(build / "template.yaml")
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    functions = {}
    for name, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties") or {}
        api = any(event.get("Type") == "Api" for event in (props.get("Events") or {}).values())
        memory = int(props.get("MemorySize", globals_.get("MemorySize", 128)))
        functions[name] = (API_EVENT if api else QUEUE_EVENT, memory)
    return functions


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def _start_lambda(sam: Path, work: Path, docker: str) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    log_path = work / "sam-local.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                str(sam),
                "local",
                "start-lambda",
                "--template",
                "build/template.yaml",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--skip-pull-image",
                "--warm-containers",
                "EAGER",
            ],
            cwd=work,
            env=_sam_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_serving(process, log_path)
            yield f"http://127.0.0.1:{port}", log_path
        finally:
            _stop(process, log, docker, work)


def _wait_until_serving(process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if "Running on http" in log_path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise EmulatorError(f"sam local start-lambda exited:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)
    raise EmulatorError(f"sam local start-lambda did not start in {START_SECONDS:.0f} s")


def _stop(process: subprocess.Popen[bytes], log: IO[str], docker: str, work: Path) -> None:
    # SIGTERM: sam stops and removes its warm containers (SIGINT is ignored in background jobs).
    mine = _containers(docker, work)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log.flush()
    leftover = [container for container in mine if container in _containers(docker, work)]
    if leftover:
        subprocess.run([docker, "rm", "-f", *leftover], capture_output=True, check=False)


def _containers(docker: str, work: Path, function: str | None = None) -> list[str]:
    """Ids of the sam containers serving this build (others' sam containers left alone)."""
    label = "sam.cli.container.type=lambda" if function is None else f"sam.cli.function.name={function}"
    listed = subprocess.run(
        [docker, "ps", "-q", "--no-trunc", "--filter", f"label={label}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    mine = []
    for container in listed:
        mounts = subprocess.run(
            [docker, "inspect", "-f", "{{range .Mounts}}{{.Source}}\n{{end}}", container],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if any(Path(source).is_relative_to(work.resolve()) for source in mounts):
            mine.append(container)
    return mine


def _reports(log_path: Path) -> list[Report]:
    lines = log_path.read_text(errors="replace").splitlines()
    return [report for line in lines if (report := parse_report(line.strip())) is not None]


def _invoke(client: Any, log_path: Path, name: str, event: Mapping[str, Any]) -> tuple[Report, str | None]:
    before = len(_reports(log_path))
    response = client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    payload = response["Payload"].read()
    error = None
    if response.get("FunctionError") or b'"errorMessage"' in payload[:200]:
        error = str(json.loads(payload).get("errorType") or "error")
    # The emulator prints its REPORT line around when it answers: wait for it.
    deadline = time.monotonic() + REPORT_SECONDS
    while time.monotonic() < deadline:
        reports = _reports(log_path)
        if len(reports) > before:
            return reports[before], error
        time.sleep(0.1)
    raise EmulatorError(f"{name}: no REPORT line from the emulator within {REPORT_SECONDS:.0f} s")


def _peak_rss_mb(docker: str, work: Path, name: str) -> float | None:
    containers = _containers(docker, work, name)
    if not containers:
        return None
    output = subprocess.run(
        [docker, "exec", containers[0], "sh", "-c", _PEAK_RSS],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    sizes = [int(size) for size in output if size.isdigit()]
    return max(sizes) / 1024 if sizes else None


def _measure_function(
    client: Any, log_path: Path, docker: str, build: Path, name: str, event: Mapping[str, Any], memory: int
) -> FunctionStart:
    first, error = _invoke(client, log_path, name, event)
    warm, _ = _invoke(client, log_path, name, event)
    return FunctionStart(
        function=name,
        first_ms=first.duration_ms,
        warm_ms=warm.duration_ms,
        peak_rss_mb=_peak_rss_mb(docker, build.parent, name),
        reported_init_ms=first.init_duration_ms,
        reported_max_memory_mb=first.max_memory_mb,
        memory_size_mb=memory,
        function_error=error,
    )


if __name__ == "__main__":
    result = measure()
    if result.not_measured:
        print(result.not_measured)
    for start in result.starts:
        error = f", the event ended in {start.function_error}" if start.function_error else ""
        print(
            f"{start.function}: init ≈ {start.init_ms:,.0f} ms (first invoke {start.first_ms:,.0f} ms, "
            f"warm {start.warm_ms:,.0f} ms), peak RSS {start.peak_rss_mb or 0:,.0f} MB{error}"
        )
    if result.layer_bytecode:
        print(f"layer modules with usable bytecode: {result.layer_bytecode}")
