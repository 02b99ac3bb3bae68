"""Each function's cold start and memory in the Lambda runtime emulator (``sam local``).

The functions are built with ``sam build`` into a scratch folder and served by ``sam
local start-lambda`` with one warm container per function (``--warm-containers EAGER``),
from ``public.ecr.aws/lambda/python:3.12`` (AWS's image, or the stand-in that
``../shared/tools/lambda-runtime`` builds). Each function is invoked twice with the same
event, and the AWS calls it makes go to moto on Docker's bridge address, which records
them: ``bench.emulator_inputs`` holds the events and the moto side.

What the emulator's REPORT line says and what is taken from it: the Runtime Interface
Emulator starts the runtime on the first invoke and prints ``Init Duration`` of well
under a millisecond and ``Max Memory Used`` equal to the memory size, so neither is a
measurement. The first invoke's ``Duration`` is (runtime start, imports, the first
event), the second's is the warm event; their difference estimates the init. Read inside
the container after both invokes, of the runtime process: its peak resident set (``VmHWM``),
its CPU time and how long it was ready to run but waited for a CPU (``/proc/PID/schedstat``).
On a busy machine that wait is most of the difference between the estimate and the CPU time
(a run with a load of 5 on two cores: 1,697 ms = 797 ms on a CPU + 973 ms waiting for one);
what is left over is waiting on something else (AWS, the disk).

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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3
from botocore.config import Config

from bench.emulator_inputs import _CREDENTIAL, REGION, BenchEvent, LocalAws, bench_events
from devstack.artifact import check_bytecode
from devstack.template import load_template

ROOT = Path(__file__).resolve().parent.parent
SAM = ROOT / ".venv-sam" / "bin" / "sam"
IMAGE = "public.ecr.aws/lambda/python:3.12"
START_SECONDS = 300.0
"""The first start builds an image with the layer, then one container per function."""
INVOKE_SECONDS = 120
REPORT_SECONDS = 30.0
LOCAL_ENDPOINT_PARAMETER = "LocalAwsEndpoint"
"""The template parameter that declares each function's AWS_ENDPOINT_URL (local runs only)."""

# Fields are tab separated; anchoring on the tab keeps "Billed Duration" out of "Duration".
_REPORT_FIELD = re.compile(r"(?:^|\t)(Init Duration|Duration|Max Memory Used): ([0-9.]+) (ms|MB)")


# Inside the container, for each python process (the runtime; and this shell, whose script
# names python): "<VmHWM kB> <utime> <stime>" (ticks: /proc/PID/stat after the command name)
# then, where the kernel keeps them, /proc/PID/schedstat's "<ns on a CPU> <ns runnable but
# waiting for one> <slices>"; last "ticks <CLK_TCK>".
_RUNTIME_STATS = (
    'for d in /proc/[0-9]*; do case "$(tr "\\000" " " < "$d/cmdline" 2>/dev/null)" in '
    '*python*) echo "$(sed -n "s/^VmHWM:[^0-9]*\\([0-9]*\\) kB/\\1/p" "$d/status") '
    '$(sed "s/.*) //" "$d/stat" | cut -d " " -f 12,13) $(cat "$d/schedstat" 2>/dev/null)";; esac; done; '
    'echo "ticks $(getconf CLK_TCK 2>/dev/null || echo 100)"'
)


@dataclass(frozen=True)
class RuntimeStats:
    """The runtime process's, read in its container after both invokes."""

    peak_rss_mb: float
    cpu_ms: float
    """CPU time, user + system: runtime start, imports and both events."""
    cpu_wait_ms: float | None
    """Time it was ready to run but waited for a CPU (the machine's other load); None where
    the kernel keeps no schedstat."""


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
    event: str = ""
    """What the function was invoked with (``BenchEvent.description``)."""
    first_calls: tuple[str, ...] = ()
    """The AWS calls (moto's requests) made during the first invoke, in order."""
    warm_calls: tuple[str, ...] = ()
    cpu_ms: float | None = None
    """The runtime process's CPU time (user + system) after both invokes."""
    cpu_wait_ms: float | None = None
    """How long the runtime process waited for a CPU (``RuntimeStats.cpu_wait_ms``)."""

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


def runtime_stats(output: str) -> RuntimeStats | None:
    """The runtime's numbers in ``_RUNTIME_STATS``'s output (of one or more containers): the
    python process with the largest peak (the shell that reads them is a few hundred kB)."""
    ticks = 100
    processes: list[list[int]] = []
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == "ticks" and fields[1].isdigit() and int(fields[1]):
            ticks = int(fields[1])
        elif len(fields) in (3, 6) and all(field.isdigit() for field in fields):
            processes.append([int(field) for field in fields])
    if not processes:
        return None
    runtime = max(processes)
    if len(runtime) == 6:
        # schedstat's nanoseconds on a CPU are exact; the ticks count in 10 ms steps.
        return RuntimeStats(runtime[0] / 1024, runtime[3] / 1e6, runtime[4] / 1e6)
    return RuntimeStats(runtime[0] / 1024, (runtime[1] + runtime[2]) * 1000 / ticks, None)


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
    from devstack.sam import SamLocalError, bridge_address  # noqa: PLC0415 - Docker's, only here

    try:
        host = bridge_address()
    except SamLocalError as exc:
        return EmulatorResult([], f"not measured: {exc}")
    with tempfile.TemporaryDirectory(prefix="sethub-emulator-") as scratch:
        work = Path(scratch)
        build = _build(sam, template, work)
        built = load_template(build / "template.yaml")
        memory = _memory_sizes(built)
        # This process is the runtime's Python (3.12): its magic number is the runtime's.
        bytecode = check_bytecode(build / "SharedLayer", importlib.util.MAGIC_NUMBER)
        aws = LocalAws(host)
        try:
            endpoint = aws.start()
            aws.create_resources(built)
            events = bench_events(endpoint)
            missing = sorted(set(memory) - set(events))
            if missing:
                raise EmulatorError(
                    f"no bench event for {', '.join(missing)} (bench.emulator_inputs.bench_events)"
                )
            with _start_lambda(sam, work, docker, endpoint, memory) as (lambda_endpoint, log_path):
                client = boto3.client(
                    "lambda",
                    endpoint_url=lambda_endpoint,
                    region_name=REGION,
                    aws_access_key_id=_CREDENTIAL,
                    aws_secret_access_key=_CREDENTIAL,
                    config=Config(read_timeout=INVOKE_SECONDS, retries={"max_attempts": 0}),
                )
                starts = [
                    _measure_function(client, log_path, docker, build, aws, name, events[name], size)
                    for name, size in memory.items()
                ]
        finally:
            aws.stop()
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


def _memory_sizes(template: Mapping[str, Any]) -> dict[str, int]:
    """Each function's memory size (MB), in the template's order."""
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    sizes = {}
    for name, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties") or {}
        sizes[name] = int(props.get("MemorySize", globals_.get("MemorySize", 128)))
    return sizes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def _start_lambda(
    sam: Path, work: Path, docker: str, aws_endpoint: str, functions: Iterable[str]
) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    log_path = work / "sam-local.log"
    # sam local does not resolve the template's AWS_ENDPOINT_URL (an Fn::If on the parameter:
    # it came out empty, and the calls went to AWS): --env-vars gives each function its value.
    env_vars = work / "env-vars.json"
    env_vars.write_text(json.dumps({name: {"AWS_ENDPOINT_URL": aws_endpoint} for name in functions}))
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
                "--region",
                REGION,
                # Every function's AWS_ENDPOINT_URL: the calls it makes reach moto, not AWS.
                "--parameter-overrides",
                f"{LOCAL_ENDPOINT_PARAMETER}={aws_endpoint}",
                "--env-vars",
                str(env_vars),
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


def _runtime_stats(docker: str, work: Path, name: str) -> RuntimeStats | None:
    # All of the function's containers: sam local may have started another on the first
    # invoke, and only the one that served it runs the runtime.
    output = "".join(
        subprocess.run(
            [docker, "exec", container, "sh", "-c", _RUNTIME_STATS],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        for container in _containers(docker, work, name)
    )
    return runtime_stats(output)


def _measure_function(
    client: Any,
    log_path: Path,
    docker: str,
    build: Path,
    aws: LocalAws,
    name: str,
    event: BenchEvent,
    memory: int,
) -> FunctionStart:
    mark = aws.mark()
    first, error = _invoke(client, log_path, name, event.payload)
    first_calls = aws.calls_since(mark)
    mark = aws.mark()
    warm, _ = _invoke(client, log_path, name, event.payload)
    warm_calls = aws.calls_since(mark)
    stats = _runtime_stats(docker, build.parent, name)
    return FunctionStart(
        function=name,
        first_ms=first.duration_ms,
        warm_ms=warm.duration_ms,
        peak_rss_mb=stats.peak_rss_mb if stats else None,
        reported_init_ms=first.init_duration_ms,
        reported_max_memory_mb=first.max_memory_mb,
        memory_size_mb=memory,
        function_error=error,
        event=event.description,
        first_calls=first_calls,
        warm_calls=warm_calls,
        cpu_ms=stats.cpu_ms if stats else None,
        cpu_wait_ms=stats.cpu_wait_ms if stats else None,
    )


def calls_text(calls: Iterable[str]) -> str:
    """``dynamodb.Query x2, s3.PUT`` in first-seen order; ``none`` for no call."""
    counted: dict[str, int] = {}
    for call in calls:
        counted[call] = counted.get(call, 0) + 1
    return ", ".join(f"{call} x{n}" if n > 1 else call for call, n in counted.items()) or "none"


def describe(start: FunctionStart) -> str:
    """One line for ``python -m bench.emulator``: the estimate, then what it was measured with."""
    cpu = f", runtime CPU {start.cpu_ms:,.0f} ms" if start.cpu_ms is not None else ""
    if start.cpu_wait_ms is not None:
        cpu += f" + {start.cpu_wait_ms:,.0f} ms waiting for a CPU"
    error = f", the event ended in {start.function_error}" if start.function_error else ""
    return (
        f"{start.function}: init ≈ {start.init_ms:,.0f} ms (first invoke {start.first_ms:,.0f} ms, "
        f"warm {start.warm_ms:,.0f} ms{cpu}), peak RSS {start.peak_rss_mb or 0:,.0f} MB; "
        f"event: {start.event}; AWS calls (moto): first {calls_text(start.first_calls)}, "
        f"warm {calls_text(start.warm_calls)}{error}"
    )


if __name__ == "__main__":
    result = measure()
    if result.not_measured:
        print(result.not_measured)
    for start in result.starts:
        print(describe(start))
    if result.layer_bytecode:
        print(f"layer modules with usable bytecode: {result.layer_bytecode}")
