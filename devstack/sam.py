"""The SAM CLI's Lambda runtime emulator as the stack's Invoke endpoint (``SETHUB_LOCAL_FUNCTIONS=sam``).

``sam build`` (cached: unchanged sources are not rebuilt) writes ``.aws-sam/build``; then
``sam local start-lambda`` serves ``POST /2015-03-31/functions/<name>/invocations`` for
every function of the built template, each in a container of the Lambda Python image with
only its code folder and its layer, as on AWS. Containers are kept warm: a function's first
invocation creates its container (a cold start), the next ones reuse it. (SAM CLI 1.170's
EAGER mode replaces each container it created at start on the function's first invocation,
so it only doubles the containers.)

sam local passes a function only the environment variables the template declares, so the
template declares ``AWS_ENDPOINT_URL`` when its ``LocalAwsEndpoint`` parameter is set (this
module sets it) and ``--env-vars`` gives each function its own value. SAM CLI 1.170 runs its
containers on Docker's default bridge, never on the host network: whatever a function calls
on this machine (the embedded AWS, subscribers' callbacks) must listen on the bridge's
gateway address, ``bridge_address()``.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import urllib3

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = Path(".aws-sam") / "build"
BUILD_SOURCES = ("functions", "layers")
SOURCES_STAMP = ".sethub-sources"
"""In the build folder: the digest of the sources it was built from."""
SAM_ENV = "SETHUB_SAM"
"""The ``sam`` executable to use; default the repository's ``.venv-sam``, else ``sam`` on PATH."""
LOCAL_ENDPOINT_PARAMETER = "LocalAwsEndpoint"
START_SECONDS = 300.0
"""A first start may build sam's image of the layer."""
BUILD_SECONDS = 900.0
STOP_SECONDS = 30.0
_CONTAINER_ID = re.compile(r"SAM_CONTAINER_ID: ([0-9a-f]{12,64})")


class SamLocalError(RuntimeError):
    """``sam build`` or ``sam local start-lambda`` failed, or Docker is not usable."""


def sam_executable(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    if environ.get(SAM_ENV):
        return environ[SAM_ENV]
    local = ROOT / ".venv-sam" / "bin" / "sam"
    if local.is_file():
        return str(local)
    found = shutil.which("sam")
    if found is None:
        raise SamLocalError(
            f"the SAM CLI is not installed (make test installs it into .venv-sam, or set {SAM_ENV})"
        )
    return found


def bridge_address() -> str:
    """The host's address on Docker's default bridge: what a container reaches this machine by."""
    try:
        result = subprocess.run(
            ["docker", "network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SamLocalError(f"docker is not usable: {exc}") from exc
    if result.returncode != 0:
        raise SamLocalError(f"docker is not usable: {result.stderr.strip() or result.stdout.strip()}")
    for config in json.loads(result.stdout or "[]") or []:
        try:
            subnet = ipaddress.ip_network(config.get("Subnet", ""))
        except ValueError:
            continue
        if subnet.version != 4:
            continue
        # dockerd leaves Gateway out of the default bridge's IPAM at times; it is then the
        # subnet's first host, as dockerd assigns it.
        address = config.get("Gateway") or str(next(subnet.hosts()))
        _check_local(address)
        return str(address)
    raise SamLocalError("Docker's bridge network has no IPv4 subnet")


def _check_local(address: str) -> None:
    """Fail early if this machine cannot listen on ``address``."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((address, 0))
    except OSError as exc:
        raise SamLocalError(f"cannot listen on Docker's bridge address {address}: {exc}") from exc


def _sam_environ(region: str) -> dict[str, str]:
    """The sam process's environment: it hands these credentials and region to every container."""
    return {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        # sam build runs python3.12's pip: the interpreter this stack runs on is one.
        "PATH": os.pathsep.join([str(Path(sys.base_prefix) / "bin"), os.environ.get("PATH", "")]),
    }


def sources_digest(root: Path, template: Path) -> str:
    """A digest of what ``sam build`` reads: the template, samconfig and every code folder."""
    digest = hashlib.sha256()
    files = [template, root / "samconfig.toml"]
    for folder in BUILD_SOURCES:
        files += sorted(path for path in (root / folder).rglob("*") if path.is_file())
    for path in files:
        if "__pycache__" in path.parts or not path.is_file():
            continue
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def build(root: Path, template: Path, *, region: str, log: IO[str] | None = None) -> Path:
    """``sam build --cached`` into ``root/.aws-sam/build``, unless it holds a build of these very
    sources; the built template's path. Stacks starting side by side build once (a file lock)."""
    build_dir = root / BUILD_DIR
    built_template = build_dir / "template.yaml"
    stamp = build_dir / SOURCES_STAMP
    (root / ".aws-sam").mkdir(exist_ok=True)
    with (root / ".aws-sam" / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        digest = sources_digest(root, template)
        if built_template.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
            return built_template
        stamp.unlink(missing_ok=True)
        _run_build(root, template, build_dir, region=region, log=log)
        stamp.write_text(digest + "\n")
    return built_template


def _run_build(root: Path, template: Path, build_dir: Path, *, region: str, log: IO[str] | None) -> None:
    command = [
        sam_executable(),
        "build",
        "--cached",
        "--template",
        str(template),
        "--build-dir",
        str(build_dir),
        "--cache-dir",
        str(root / ".aws-sam" / "cache"),
    ]
    try:
        result = subprocess.run(  # noqa: S603 - the SAM CLI, with our own arguments
            command,
            cwd=root,
            env=_sam_environ(region),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=BUILD_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SamLocalError(f"sam build took more than {BUILD_SECONDS:.0f} s") from exc
    if log is not None:
        log.write(result.stdout)
    if result.returncode != 0:
        raise SamLocalError(f"sam build failed:\n{result.stdout[-4000:]}")


_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _interrupt_when_parent_dies() -> None:
    """In the emulator's process, before exec: SIGINT when the stack dies (even by SIGKILL), so
    the emulator still stops its containers (Ctrl-C's clean-up) instead of outliving the stack."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT)


def invoke_command(*, env_vars_file: str, aws_endpoint: str, region: str) -> str:
    """The shell command that runs one function of the built template against a running stack
    (``FUNCTION`` and ``EVENT`` to fill in), as the banner prints it and the README shows it."""
    sam = sam_executable()
    if Path(sam).is_relative_to(ROOT):
        sam = str(Path(sam).relative_to(ROOT))
    return (
        shlex.join(
            [
                "AWS_ACCESS_KEY_ID=testing",
                "AWS_SECRET_ACCESS_KEY=testing",
                sam,
                "local",
                "invoke",
                "--env-vars",
                env_vars_file,
                "--parameter-overrides",
                f"{LOCAL_ENDPOINT_PARAMETER}={aws_endpoint}",
                "--skip-pull-image",
                "--region",
                region,
            ]
        )
        + " FUNCTION -e EVENT"
    )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class SamLocalLambda:
    """``sam local start-lambda`` over a built template, with warm containers.

    ``env_vars`` is each function's environment (``--env-vars``), ``aws_endpoint`` the value
    that declares ``AWS_ENDPOINT_URL`` in the template (each function's own value comes from
    ``env_vars``). Its output goes to ``log_path``.
    """

    def __init__(
        self,
        built_template: Path,
        env_vars: Mapping[str, Mapping[str, str]],
        *,
        aws_endpoint: str,
        region: str = "us-east-1",
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: Path | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
        warm_containers: str = "LAZY",
    ) -> None:
        self.built_template = built_template
        self.env_vars = {name: dict(env) for name, env in env_vars.items()}
        self.aws_endpoint = aws_endpoint
        self.region = region
        self.host = host
        self.port = port
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="sethub-sam-local-", suffix=".log")[1])
        self.parameter_overrides = {**(parameter_overrides or {}), LOCAL_ENDPOINT_PARAMETER: aws_endpoint}
        self.warm_containers = warm_containers
        self.endpoint = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._env_file: Path | None = None

    def start(self, timeout: float = START_SECONDS) -> str:
        """Start the emulator and wait until it answers; its endpoint URL."""
        port = self.port or _free_port(self.host)
        fd, env_file = tempfile.mkstemp(prefix="sethub-sam-env-", suffix=".json")
        with os.fdopen(fd, "w") as handle:
            json.dump(self.env_vars, handle)
        self._env_file = Path(env_file)
        overrides = [f"{name}={value}" for name, value in self.parameter_overrides.items()]
        command = [
            sam_executable(),
            "local",
            "start-lambda",
            "--template",
            str(self.built_template),
            "--host",
            self.host,
            "--port",
            str(port),
            "--env-vars",
            env_file,
            "--parameter-overrides",
            *overrides,
            "--warm-containers",
            self.warm_containers,
            "--skip-pull-image",
            "--region",
            self.region,
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - the SAM CLI, with our own arguments
                command,
                cwd=self.built_template.parent,
                env=_sam_environ(self.region),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a terminal's Ctrl-C reaches the stack, which stops it in order.
                start_new_session=True,
                preexec_fn=_interrupt_when_parent_dies,  # noqa: PLW1509 - only calls prctl(2)
            )
        self.endpoint = f"http://{self.host}:{port}"
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self.endpoint

    def _wait_ready(self, timeout: float) -> None:
        """Until the emulator answers an invocation of no function (404)."""
        assert self._process is not None
        http = urllib3.PoolManager()
        probe = f"{self.endpoint}/2015-03-31/functions/-/invocations"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SamLocalError(
                    f"sam local start-lambda exited ({self._process.returncode}):\n{self.log_tail()}"
                )
            try:
                http.request("POST", probe, body=b"{}", timeout=2.0, retries=False)
            except urllib3.exceptions.HTTPError:
                time.sleep(0.5)  # not synchronisation: the pause between polls of a deadline loop
                continue
            return
        raise SamLocalError(
            f"sam local start-lambda did not answer within {timeout:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the emulator as Ctrl-C does (it stops its warm containers), then any container it left."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None:
            self._remove_containers()
        if self._env_file is not None:
            self._env_file.unlink(missing_ok=True)
            self._env_file = None

    def _remove_containers(self) -> None:
        """Remove the containers this emulator logged as its own, if any outlived it."""
        try:
            ids = set(_CONTAINER_ID.findall(self.log_path.read_text(errors="replace")))
        except OSError:
            return
        if ids:
            subprocess.run(  # noqa: S603
                ["docker", "rm", "--force", *sorted(ids)],  # noqa: S607
                capture_output=True,
                timeout=60,
                check=False,
            )
