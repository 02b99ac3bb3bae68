"""The built artifact, imported the way AWS's Lambda Python runtime imports it.

``python -m devstack.artifact <build dir>`` reads the template that ``sam build`` wrote
into ``<build dir>`` and, for every function, starts a fresh interpreter of the runtime
virtualenv (``.venv-runtime``: only what the Lambda runtime ships, the runtime interface
client and boto3) with Lambda's search path (the function's folder, then its layers,
then the runtime) and the environment a deployed function has (Lambda's own variables
and the template's, resolved with placeholder values). There it imports the handler with
the runtime interface client's own ``_get_handler``, so a failure reads as it would in
CloudWatch, e.g. ``Runtime.ImportModuleError: Unable to import module 'x': No module
named 'y'``. Connections and name lookups are refused during the import: handler modules
must not reach the network before the first invocation.

It also checks that every layer ships valid bytecode for each of its modules: Lambda's code
folders are read-only, so a module without a usable ``.pyc`` is compiled again at every cold
start (botocore, Powertools and sethub: about 0.7 s of CPU for ingest, issue 12). Usable
means hash-based (a timestamp ``.pyc`` may not survive the deployment zip's timestamps),
matching its source's hash, and of the runtime's Python. Each ``.pyc`` must also name its
source where Lambda puts it (``/opt/python/...``, layers are extracted to ``/opt``), not
where ``sam build`` compiled it: tracebacks in CloudWatch show that path. The imports run
with ``-B``, as Lambda cannot write one either, so the check leaves the build as it found it.

This runs with the dev tools (it reads YAML); the handlers never see them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import marshal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.intrinsics import IntrinsicError, Resolver, cfn_string, pseudo_parameters
from devstack.template import TemplateError, load_template, merge_globals

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PYTHON = ROOT / ".venv-runtime" / "bin" / "python"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
STACK_NAME = "sethub"
FUNCTION = "AWS::Serverless::Function"
LAYER = "AWS::Serverless::LayerVersion"
# Packages of the dev environment that the runtime interpreter must not see: if it could
# import them, a layer lacking them would pass here and fail on AWS.
DEV_ONLY_PACKAGES = ("aws_lambda_powertools", "sethub", "moto", "pytest", "yaml")
IMPORT_TIMEOUT_SECONDS = 60

# Runs in the runtime interpreter: sys.argv = ["-c", handler, result file].
_BOOTSTRAP = r"""
import json, socket, sys, time

handler_name, result_path = sys.argv[1], sys.argv[2]
attempts = []

def refuse(what, where):
    def refused(*args, **kwargs):
        target = repr(where(args))[:80]
        attempts.append(f"{what} {target}")
        raise OSError(f"network access while importing the handler ({what} {target})")
    return refused

# Where each call names its peer (a method's first argument is the socket itself).
for name, where in {
    "connect": lambda a: a[1], "connect_ex": lambda a: a[1], "sendto": lambda a: a[-1],
    "sendmsg": lambda a: a[-1],
}.items():
    setattr(socket.socket, name, refuse(name, where))
for name, where in {
    "getaddrinfo": lambda a: a[:2], "gethostbyname": lambda a: a[0], "gethostbyname_ex": lambda a: a[0],
    "create_connection": lambda a: a[0],
}.items():
    setattr(socket, name, refuse(name, where))

result = {"ok": False, "reason": "", "ms": 0.0, "sys_path": list(sys.path)}
started = time.perf_counter()
try:
    from awslambdaric.bootstrap import _get_handler
    from awslambdaric.lambda_runtime_exception import FaultException
    try:
        function = _get_handler(handler_name)
    except FaultException as exc:
        result["reason"] = f"{exc.exception_type}: {exc.msg}"
    except Exception as exc:
        # What the runtime reports for any other error at init: the exception's type.
        result["reason"] = f"{type(exc).__name__}: {exc}"
    else:
        if not callable(function):
            result["reason"] = f"{handler_name} is not callable"
        else:
            result["ok"] = True
finally:
    result["ms"] = (time.perf_counter() - started) * 1000
    if attempts:
        result["ok"] = False
        result["reason"] = (result["reason"] + "; " if result["reason"] else "") + (
            "importing reached for the network: " + ", ".join(attempts[:3])
        )
    with open(result_path, "w", encoding="utf-8") as out:
        json.dump(result, out)
"""

_PROBE = r"""
import importlib.util, json, sys
print(json.dumps([name for name in sys.argv[1:] if importlib.util.find_spec(name) is not None]))
"""

_MAGIC_PROBE = "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"
# A .pyc's header: magic (4 bytes), flags (4, little endian), then the source's hash (8) when
# bit 0 of the flags is set; otherwise the source's mtime and size, which a zip may not keep.
_PYC_HASH_BASED = 0b01
LAYER_PYTHON_PATH = "/opt/python"
"""Where Lambda puts a layer's ``python`` folder (on the runtime's search path)."""


class ArtifactError(RuntimeError):
    """The build output cannot be checked (not a handler failing: the check itself)."""


@dataclass(frozen=True)
class BuiltFunction:
    """A function of the built template, with what Lambda would give it."""

    logical_id: str
    handler: str
    code_dir: Path
    layer_dirs: tuple[Path, ...]
    environment: dict[str, str]


@dataclass(frozen=True)
class ImportResult:
    function: str
    handler: str
    ok: bool
    reason: str
    milliseconds: float
    sys_path: tuple[str, ...]

    def line(self) -> str:
        if self.ok:
            return f"{self.function}: {self.handler} imports ({self.milliseconds:.0f} ms)"
        # One line, whatever the exception's message holds.
        return f"{self.function}: {' '.join(self.reason.split())}"


class _Placeholders:
    """Values a deployed stack would give ``Ref`` and ``GetAtt``: right shape, made-up ids."""

    def __init__(self, template: Mapping[str, Any], region: str, overrides: Mapping[str, str]) -> None:
        self.resources: dict[str, Any] = dict(template.get("Resources") or {})
        self.region = region
        self.parameters = {
            name: overrides.get(name, spec.get("Default", f"placeholder-{name}"))
            for name, spec in (template.get("Parameters") or {}).items()
        }

    def ref(self, name: str) -> Any:
        pseudo = pseudo_parameters(
            region=self.region, account_id=ACCOUNT_ID, stack_name=STACK_NAME, stack_id="id"
        )
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name not in self.resources:
            raise IntrinsicError(f"Ref to unknown name {name!r}")
        kind = self.resources[name].get("Type", "")
        physical = self._physical_name(name)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT_ID}/{physical}"
        if kind == "AWS::KMS::Key":
            return str(uuid.uuid5(uuid.NAMESPACE_URL, name))
        if kind in ("AWS::SecretsManager::Secret", LAYER, "AWS::Lambda::LayerVersion"):
            return self.get_att(name, "Arn")
        return physical

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self.resources:
            raise IntrinsicError(f"GetAtt on unknown resource {logical_id!r}")
        kind = str(self.resources[logical_id].get("Type", ""))
        physical = self._physical_name(logical_id)
        if attribute in ("Name", "QueueName"):
            return physical
        if attribute == "QueueUrl":
            return self.ref(logical_id)
        if attribute != "Arn":
            return f"placeholder-{logical_id}-{attribute}"
        service = kind.split("::")[1].lower() if kind.count("::") == 2 else "placeholder"
        resource = {
            "AWS::SQS::Queue": physical,
            "AWS::DynamoDB::Table": f"table/{physical}",
            "AWS::KMS::Key": f"key/{uuid.uuid5(uuid.NAMESPACE_URL, logical_id)}",
            "AWS::SecretsManager::Secret": f"secret:{physical}-AbCdEf",
        }.get(kind, physical)
        return f"arn:aws:{service}:{self.region}:{ACCOUNT_ID}:{resource}"

    @staticmethod
    def _physical_name(logical_id: str) -> str:
        return f"{STACK_NAME}-{logical_id}-PLACEHOLDER"


def read_functions(
    build_dir: Path, region: str = REGION, parameters: Mapping[str, str] | None = None
) -> list[BuiltFunction]:
    """Every function of ``build_dir/template.yaml`` that a deploy with ``parameters`` (the
    rest at their defaults) creates, with its folders and deployed environment."""
    template_path = build_dir / "template.yaml"
    if not template_path.is_file():
        raise ArtifactError(f"{template_path.name} not found in the build folder (did sam build run?)")
    try:
        template = load_template(template_path)
    except TemplateError as exc:
        raise ArtifactError(str(exc)) from None
    placeholders = _Placeholders(template, region, parameters or {})
    resolver = Resolver(
        ref=placeholders.ref,
        get_att=placeholders.get_att,
        conditions=template.get("Conditions") or {},
        mappings=template.get("Mappings") or {},
        region=region,
    )
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    resources = template["Resources"]
    functions = []
    for logical_id, resource in resources.items():
        if resource.get("Type") != FUNCTION:
            continue
        condition = resource.get("Condition")
        if condition is not None and not resolver.condition(str(condition)):
            continue
        props = merge_globals(globals_, resource.get("Properties") or {})
        functions.append(
            _built_function(
                build_dir, logical_id, props=props, resources=resources, resolver=resolver, region=region
            )
        )
    if not functions:
        raise ArtifactError("the built template declares no AWS::Serverless::Function")
    return functions


def _built_function(
    build_dir: Path,
    logical_id: str,
    *,
    props: Mapping[str, Any],
    resources: Mapping[str, Any],
    resolver: Resolver,
    region: str,
) -> BuiltFunction:
    if props.get("Runtime") != "python3.12":
        raise ArtifactError(f"{logical_id}: runtime {props.get('Runtime')!r}, not the python3.12 checked")
    code_dir = build_dir / str(props.get("CodeUri", ""))
    if not props.get("CodeUri") or not code_dir.is_dir():
        raise ArtifactError(f"{logical_id}: its code folder {props.get('CodeUri')!r} is not in the build")
    layer_dirs = []
    for entry in props.get("Layers") or []:
        layer = _chosen(entry, resolver)
        # Only layers of this template were built; an ARN of another account's layer is not here.
        if not (isinstance(layer, dict) and set(layer) == {"Ref"} and layer["Ref"] in resources):
            raise ArtifactError(f"{logical_id}: layer {layer!r} is not built from this template")
        layer_props = resources[layer["Ref"]].get("Properties") or {}
        layer_dirs.append(build_dir / str(layer_props.get("ContentUri", "")))
    handler = str(props.get("Handler", ""))
    variables = resolver.resolve(((props.get("Environment") or {}).get("Variables")) or {})
    memory = int(props.get("MemorySize", 128))
    name = f"{STACK_NAME}-{logical_id}-PLACEHOLDER"
    log_group = resolver.resolve((props.get("LoggingConfig") or {}).get("LogGroup") or f"/aws/lambda/{name}")
    environment = {
        # The template's own variables first: Lambda's reserved ones cannot be overridden.
        **{key: cfn_string(value) for key, value in variables.items()},
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": cfn_string(log_group),
        "AWS_LAMBDA_LOG_STREAM_NAME": "2025/01/01/[$LATEST]00000000000000000000000000000000",
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_ACCESS_KEY_ID": "ASIAPLACEHOLDERKEYID0",
        "AWS_SECRET_ACCESS_KEY": "placeholder-secret-access-key",
        "AWS_SESSION_TOKEN": "placeholder-session-token",
        "LAMBDA_TASK_ROOT": str(code_dir),
        "_HANDLER": handler,
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
    }
    if props.get("Tracing") == "Active":
        environment |= {
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
            "_AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129",
            "_AWS_XRAY_DAEMON_PORT": "2000",
        }
    return BuiltFunction(logical_id, handler, code_dir, tuple(layer_dirs), environment)


def _chosen(layer: Any, resolver: Resolver) -> Any:
    """The branch of a layer picked by a condition (the layer built for the Architecture
    parameter) that a deploy with these parameters takes; any other entry as it is."""
    while isinstance(layer, dict) and set(layer) == {"Fn::If"}:
        condition, if_true, if_false = layer["Fn::If"]
        layer = if_true if resolver.condition(str(condition)) else if_false
    return layer


@dataclass(frozen=True)
class BytecodeReport:
    """A layer's modules without a usable .pyc (relative paths), of how many."""

    layer: str
    missing: tuple[str, ...]
    modules: int
    misplaced: tuple[tuple[str, str], ...] = ()
    """(module, the source path its usable bytecode names) where that is not Lambda's."""

    def lines(self) -> list[str]:
        """What is wrong with the layer's bytecode, a line per kind of fault (none: nothing)."""
        found = []
        if self.missing:
            found.append(
                f"{self.layer}: no usable bytecode for {len(self.missing)} of {self.modules} modules "
                f"({_packages(self.missing)}; e.g. {self.missing[0]}): each cold start would compile "
                "them (the layer's build must compile them for Python 3.12, hash-based)"
            )
        if self.misplaced:
            module, named = self.misplaced[0]
            found.append(
                f"{self.layer}: the bytecode of {len(self.misplaced)} of {self.modules} modules "
                f"({_packages([path for path, _ in self.misplaced])}) names its source where it was "
                f"built, not under {LAYER_PYTHON_PATH} (e.g. {module}: {named}): tracebacks on Lambda "
                "would show that path (the layer's build must compile them with that prefix)"
            )
        return found


def _packages(paths: Sequence[str]) -> str:
    packages = sorted({path.split("/")[0].removesuffix(".py") for path in paths})
    return ", ".join(packages[:6]) + (", ..." if len(packages) > 6 else "")


def _usable_pyc(source: Path, magic: bytes) -> bytes | None:
    """``source``'s cached bytecode if the import system would use it without writing any."""
    cached = Path(importlib.util.cache_from_source(str(source), optimization=""))
    try:
        data = cached.read_bytes()
    except OSError:
        return None
    header = data[:16]
    if len(header) < 16 or header[:4] != magic:
        return None
    if not int.from_bytes(header[4:8], "little") & _PYC_HASH_BASED:
        return None
    # Checked or unchecked, a hash that does not match the source is stale bytecode.
    return data if header[8:16] == importlib.util.source_hash(source.read_bytes()) else None


def _named_source(pyc: bytes, magic: bytes) -> str | None:
    """The source path a .pyc's module code names; None for another Python's bytecode, which
    this interpreter cannot read (the runtime's magic is then not this one's)."""
    if magic != importlib.util.MAGIC_NUMBER:
        return None
    # The layer sam build just made from our own sources and pinned wheels, as the runtime reads it.
    return str(marshal.loads(pyc[16:]).co_filename)  # noqa: S302


def check_bytecode(layer_dir: Path, magic: bytes) -> BytecodeReport:
    """Every ``.py`` of the layer's ``python`` folder (site-packages included) and its bytecode."""
    root = layer_dir / "python"
    sources = sorted(path for path in root.rglob("*.py") if "__pycache__" not in path.relative_to(root).parts)
    missing: list[str] = []
    misplaced: list[tuple[str, str]] = []
    for path in sources:
        module = path.relative_to(root).as_posix()
        pyc = _usable_pyc(path, magic)
        if pyc is None:
            missing.append(module)
        elif (named := _named_source(pyc, magic)) not in (None, f"{LAYER_PYTHON_PATH}/{module}"):
            misplaced.append((module, str(named)))
    return BytecodeReport(layer_dir.name, tuple(missing), len(sources), tuple(misplaced))


def magic_number(python: Path) -> bytes:
    """The bytecode magic number of ``python`` (the runtime's: its .pyc are the ones it uses)."""
    completed = subprocess.run(  # noqa: S603 - the runtime interpreter and our own probe
        [str(python), "-P", "-s", "-c", _MAGIC_PROBE],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=IMPORT_TIMEOUT_SECONDS,
        check=True,
    )
    return bytes.fromhex(completed.stdout.strip())


def search_path(function: BuiltFunction) -> list[str]:
    """Lambda's order: the function's folder, then each layer's two Python folders."""
    paths = [str(function.code_dir)]
    for layer in function.layer_dirs:
        paths += [str(layer / "python" / "lib" / "python3.12" / "site-packages"), str(layer / "python")]
    return paths


def check_function(function: BuiltFunction, python: Path) -> ImportResult:
    """Import ``function``'s handler in a fresh runtime interpreter."""
    env = dict(function.environment)
    # Lambda's PYTHONPATH, ahead of the runtime's own packages; nothing of this process leaks.
    env["PYTHONPATH"] = ":".join(search_path(function))
    env["PATH"] = f"{python.parent}:/usr/bin:/bin"
    with tempfile.TemporaryDirectory(prefix="artifact-") as scratch:
        result_path = Path(scratch) / "result.json"
        # -P: no current folder on sys.path; -s: no user site-packages; -B: no .pyc written,
        # as on Lambda's read-only code (and the checked build stays as built).
        completed = subprocess.run(  # noqa: S603 - the runtime interpreter and our own bootstrap
            [str(python), "-P", "-s", "-B", "-c", _BOOTSTRAP, function.handler, str(result_path)],
            env=env,
            cwd=function.code_dir,
            capture_output=True,
            text=True,
            timeout=IMPORT_TIMEOUT_SECONDS,
            check=False,
        )
        if not result_path.is_file():
            output = (completed.stderr or completed.stdout).strip().splitlines()
            reason = output[-1] if output else f"the runtime interpreter exited with {completed.returncode}"
            return ImportResult(function.logical_id, function.handler, False, reason, 0.0, ())
        result = json.loads(result_path.read_text(encoding="utf-8"))
    return ImportResult(
        function=function.logical_id,
        handler=function.handler,
        ok=bool(result["ok"]),
        reason=str(result["reason"]),
        milliseconds=float(result["ms"]),
        sys_path=tuple(result["sys_path"]),
    )


def dev_packages_in(python: Path) -> list[str]:
    """Which development packages ``python`` can import on its own (there should be none)."""
    completed = subprocess.run(  # noqa: S603 - the runtime interpreter and our own probe
        [str(python), "-P", "-s", "-c", _PROBE, *DEV_ONLY_PACKAGES],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=IMPORT_TIMEOUT_SECONDS,
        check=True,
    )
    found: list[str] = json.loads(completed.stdout)
    return found


@dataclass(frozen=True)
class BuildCheck:
    imports: list[ImportResult]
    bytecode: list[BytecodeReport]
    """One per layer the checked functions use."""


def check_build(build_dir: Path, python: Path, parameters: Mapping[str, str] | None = None) -> BuildCheck:
    # Absolute (each import runs in its function's folder), not resolved: a virtualenv's
    # python is a symlink to the base interpreter, which would lose the venv's packages.
    python, build_dir = python.absolute(), build_dir.absolute()
    if not python.is_file():
        raise ArtifactError(f"runtime interpreter {python} not found (make creates .venv-runtime)")
    leaked = dev_packages_in(python)
    if leaked:
        raise ArtifactError(f"the runtime interpreter {python} has development packages: {', '.join(leaked)}")
    functions = read_functions(build_dir, parameters=parameters)
    magic = magic_number(python)
    layers = dict.fromkeys(layer for function in functions for layer in function.layer_dirs)
    return BuildCheck(
        imports=[check_function(function, python) for function in functions],
        bytecode=[check_bytecode(layer, magic) for layer in layers],
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.artifact",
        description="Import every handler of a sam build output as the Lambda Python runtime would.",
    )
    parser.add_argument("build_dir", type=Path, help="the folder sam build wrote (with template.yaml)")
    parser.add_argument("--python", type=Path, default=RUNTIME_PYTHON, help="the runtime interpreter")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter of the deploy to check (its functions; repeatable)",
    )
    args = parser.parse_args(argv)
    parameters = dict(item.partition("=")[::2] for item in args.parameter)
    started = time.monotonic()
    try:
        checked = check_build(args.build_dir, args.python, parameters)
    except (ArtifactError, IntrinsicError) as exc:
        print(f"artifact check: {exc}", file=sys.stderr)
        return 2
    results = checked.imports
    failed = [result.line() for result in results if not result.ok]
    failed += [line for report in checked.bytecode for line in report.lines()]
    for line in failed:
        print(f"artifact check: {line}", file=sys.stderr)
    if failed:
        return 1
    compiled = ", ".join(f"{report.layer} {report.modules} modules" for report in checked.bytecode)
    print(
        f"artifact check: {len(results)} functions import in the Lambda runtime "
        f"({', '.join(f'{r.function} {r.milliseconds:.0f} ms' for r in results)}; "
        f"bytecode: {compiled or 'no layers'}; {time.monotonic() - started:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
