"""devstack.artifact: handlers imported from a build folder as the Lambda Python runtime would.

Each test writes a small build folder the way ``sam build`` lays one out (``template.yaml``
with ``CodeUri: <LogicalId>``, the layer under ``SharedLayer/python``) and checks it with
the real runtime interpreter (``.venv-runtime``); ``make test`` checks the real build.
The layer is compiled as layers/shared/Makefile compiles it (checked-hash .pyc) unless a
test says otherwise.
"""

from __future__ import annotations

import compileall
import json
import py_compile
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devstack import artifact

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Level:
    Type: String
    Default: WARNING
Conditions:
  Never: !Equals [a, b]
Globals:
  Function:
    Runtime: python3.12
    MemorySize: 512
    Tracing: Active
    Layers:
      - !Ref SharedLayer
    Environment:
      Variables:
        POWERTOOLS_LOG_LEVEL: !Ref Level
Resources:
  SharedLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: SharedLayer
  Queue:
    Type: AWS::SQS::Queue
  Table:
    Type: AWS::DynamoDB::Table
{functions}
"""

FUNCTION = """\
  {name}Function:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {name}Function
      Handler: {module}.handler
      MemorySize: 1024
      Environment:
        Variables:
          QUEUE_URL: !Ref Queue
          TABLE_ARN: !GetAtt Table.Arn
          REPORT_TO: "{report}"
          ABSENT: !If [Never, "x", !Ref AWS::NoValue]
"""


@pytest.fixture(scope="module")
def runtime_python() -> Path:
    # The same interpreter make test uses; make creates it if this checkout has none yet.
    if not (artifact.ROOT / ".venv-runtime" / ".installed").is_file():
        subprocess.run(["make", "-s", ".venv-runtime/.installed"], cwd=artifact.ROOT, check=True)
    return artifact.RUNTIME_PYTHON


def write_build(
    root: Path,
    handlers: dict[str, str],
    layer: dict[str, str],
    report: Path | None = None,
    *,
    compiled: bool = True,
    compiled_as: str | None = artifact.LAYER_PYTHON_PATH,
) -> Path:
    """A build folder with one function per ``handlers`` entry (name -> handler source); its
    layer compiled to checked-hash bytecode unless not ``compiled``, naming its sources under
    ``compiled_as`` (None: where they are, as a plain compileall does)."""
    build = root / "build"
    functions = []
    for name, source in handlers.items():
        module = f"{name.lower()}_handler"
        code = build / f"{name}Function"
        code.mkdir(parents=True)
        (code / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        functions.append(FUNCTION.format(name=name, module=module, report=report or root / "unused.json"))
    for relative, source in layer.items():
        path = build / "SharedLayer" / "python" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    (build / "SharedLayer" / "python").mkdir(parents=True, exist_ok=True)
    if compiled:
        python = build / "SharedLayer" / "python"
        compileall.compile_dir(
            python,
            quiet=1,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
            stripdir=None if compiled_as is None else str(python),
            prependdir=compiled_as,
        )
    (build / "template.yaml").write_text(TEMPLATE.format(functions="".join(functions)), encoding="utf-8")
    return build


def run_check(build: Path, python: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = artifact.main([str(build), "--python", str(python)])
    captured = capsys.readouterr()
    return code, (captured.err + captured.out).strip().splitlines()


HANDLER = """\
    import helper

    def handler(event, context):
        return helper.answer()
"""


def importing(*modules: str) -> str:
    """A handler module that imports ``modules``."""
    return "".join(f"import {module}\n" for module in modules) + "\ndef handler(event, context):\n    pass\n"


def test_a_module_missing_from_the_layer_fails_with_one_line_naming_function_and_module(
    tmp_path, runtime_python, capsys
):
    build = write_build(
        tmp_path,
        {
            "Good": HANDLER,
            "Broken": importing("helper", "missing_dep"),
        },
        {"helper.py": "def answer():\n    return 42\n"},
    )

    code, lines = run_check(build, runtime_python, capsys)

    assert code == 1
    assert lines == [
        "artifact check: BrokenFunction: Runtime.ImportModuleError: "
        "Unable to import module 'broken_handler': No module named 'missing_dep'"
    ]


def test_a_complete_build_passes_with_layer_packages_in_either_layer_folder(tmp_path, runtime_python, capsys):
    build = write_build(
        tmp_path,
        {"Ingest": HANDLER, "Deep": importing("deep_helper")},
        {"helper.py": "def answer():\n    return 42\n", "lib/python3.12/site-packages/deep_helper.py": ""},
    )

    code, lines = run_check(build, runtime_python, capsys)

    assert code == 0
    assert lines[0].startswith("artifact check: 2 functions import in the Lambda runtime (IngestFunction ")


def test_packages_of_the_dev_environment_are_not_importable(tmp_path, runtime_python, capsys):
    # The dev virtualenv has the X-Ray SDK (moto needs it): the deployed layer did not.
    assert subprocess.run([sys.executable, "-c", "import aws_xray_sdk"], check=False).returncode == 0
    build = write_build(tmp_path, {"Traced": importing("aws_xray_sdk")}, {})

    code, lines = run_check(build, runtime_python, capsys)

    assert code == 1
    assert lines == [
        "artifact check: TracedFunction: Runtime.ImportModuleError: "
        "Unable to import module 'traced_handler': No module named 'aws_xray_sdk'"
    ]


def test_an_interpreter_with_dev_packages_is_refused(tmp_path, capsys):
    build = write_build(tmp_path, {"Ingest": HANDLER}, {"helper.py": "def answer():\n    return 42\n"})

    code, lines = run_check(build, Path(sys.executable), capsys)

    assert code == 2
    assert len(lines) == 1
    assert "has development packages: aws_lambda_powertools, sethub" in lines[0]


def test_handlers_see_lambdas_environment_and_search_path(tmp_path, runtime_python, capsys):
    report = tmp_path / "seen.json"
    source = """\
        import json, os, sys
        import helper

        with open(os.environ["REPORT_TO"], "w") as out:
            json.dump({"env": dict(os.environ), "path": sys.path}, out)

        def handler(event, context):
            pass
    """
    build = write_build(tmp_path, {"Ingest": source}, {"helper.py": ""}, report=report)

    code, _ = run_check(build, runtime_python, capsys)

    assert code == 0
    seen = json.loads(report.read_text(encoding="utf-8"))
    env, path = seen["env"], seen["path"]
    code_dir, layer = build / "IngestFunction", build / "SharedLayer" / "python"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "sethub-IngestFunction-PLACEHOLDER"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "1024"  # the function's own wins over Globals
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["_HANDLER"] == "ingest_handler.handler"
    assert env["LAMBDA_TASK_ROOT"] == str(code_dir)
    assert env["AWS_XRAY_CONTEXT_MISSING"] == "LOG_ERROR"  # Tracing: Active
    # The template's environment, Globals merged in, resolved with deployed-looking values.
    assert env["POWERTOOLS_LOG_LEVEL"] == "WARNING"
    assert env["QUEUE_URL"] == "https://sqs.us-east-1.amazonaws.com/123456789012/sethub-Queue-PLACEHOLDER"
    assert env["TABLE_ARN"] == "arn:aws:dynamodb:us-east-1:123456789012:table/sethub-Table-PLACEHOLDER"
    assert "ABSENT" not in env
    # Nothing of the test process leaks in.
    assert not {"VIRTUAL_ENV", "PYTEST_CURRENT_TEST", "HOME"} & set(env)
    # Lambda's order: the function, the layer, then the runtime.
    assert path[:3] == [str(code_dir), str(layer / "lib" / "python3.12" / "site-packages"), str(layer)]
    assert str(artifact.ROOT / ".venv" / "lib") not in " ".join(path)


def test_reaching_the_network_while_importing_fails_even_when_the_handler_swallows_it(
    tmp_path, runtime_python, capsys
):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        source = f"""\
            import socket

            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
            except OSError:
                pass  # a library that hides the failure

            def handler(event, context):
                pass
        """
        build = write_build(tmp_path, {"Chatty": source}, {})

        code, lines = run_check(build, runtime_python, capsys)

        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    assert code == 1
    assert lines == [
        f"artifact check: ChattyFunction: importing reached for the network: "
        f"create_connection ('127.0.0.1', {port})"
    ]


def test_a_function_behind_a_parameter_is_checked_when_the_deploy_chooses_it(tmp_path):
    # make test checks the build with Ingress=http: a deploy's functions, the authorizer too.
    build = write_build(tmp_path, {"Always": HANDLER, "Debug": HANDLER}, {})
    template = build / "template.yaml"
    text = template.read_text(encoding="utf-8")
    text = text.replace(
        "  Never: !Equals [a, b]", "  Never: !Equals [a, b]\n  Debugging: !Equals [!Ref Level, DEBUG]"
    )
    text = text.replace(
        "  DebugFunction:\n    Type: AWS::Serverless::Function\n",
        "  DebugFunction:\n    Type: AWS::Serverless::Function\n    Condition: Debugging\n",
    )
    template.write_text(text, encoding="utf-8")

    by_default = [function.logical_id for function in artifact.read_functions(build)]
    chosen = artifact.read_functions(build, parameters={"Level": "DEBUG"})

    assert by_default == ["AlwaysFunction"]
    assert [function.logical_id for function in chosen] == ["AlwaysFunction", "DebugFunction"]
    assert chosen[1].environment["POWERTOOLS_LOG_LEVEL"] == "DEBUG"


def pycache_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.pyc"))


def test_a_layer_without_bytecode_fails_naming_its_packages_and_the_check_writes_none(
    tmp_path, runtime_python, capsys
):
    build = write_build(
        tmp_path,
        {"Ingest": HANDLER},
        {"helper.py": "def answer():\n    return 42\n", "pkg/__init__.py": "", "pkg/mod.py": ""},
        compiled=False,
    )

    code, lines = run_check(build, runtime_python, capsys)

    assert code == 1
    assert lines == [
        "artifact check: SharedLayer: no usable bytecode for 3 of 3 modules (helper, pkg; "
        "e.g. helper.py): each cold start would compile them "
        "(the layer's build must compile them for Python 3.12, hash-based)"
    ]
    # The handler did import (Lambda compiles in memory), and, as on Lambda's read-only
    # code, nothing was written into the build that was checked.
    assert pycache_files(build) == []


def test_only_hash_based_bytecode_matching_its_source_counts(tmp_path, runtime_python):
    layer = {name: f"VALUE = {name!r}\n" for name in ("good.py", "stale.py", "timestamped.py", "absent.py")}
    build = write_build(tmp_path, {}, layer)
    python = build / "SharedLayer" / "python"
    # Edited after the build compiled it: its .pyc's hash no longer matches.
    (python / "stale.py").write_text("VALUE = 'edited'\n", encoding="utf-8")
    # What pip or a plain compileall writes: the mtime, which the deployment zip may not keep.
    timestamp = py_compile.PycInvalidationMode.TIMESTAMP
    py_compile.compile(str(python / "timestamped.py"), invalidation_mode=timestamp)
    for cached in (python / "__pycache__").glob("absent.*.pyc"):
        cached.unlink()

    report = artifact.check_bytecode(build / "SharedLayer", artifact.magic_number(runtime_python))

    assert report.modules == 4
    assert report.missing == ("absent.py", "stale.py", "timestamped.py")
    # Another interpreter's bytecode is not the runtime's.
    assert artifact.check_bytecode(build / "SharedLayer", b"\x00\x00\r\n").missing == (
        "absent.py",
        "good.py",
        "stale.py",
        "timestamped.py",
    )


def test_bytecode_naming_the_build_folder_instead_of_lambdas_path_fails_the_check(
    tmp_path, runtime_python, capsys
):
    # A plain compileall of the build folder: each .pyc names its source where it was built,
    # and a traceback on Lambda would show this machine's folder.
    layer = {"helper.py": "VALUE = 1\n", "pkg/__init__.py": "", "pkg/mod.py": "VALUE = 2\n"}
    build = write_build(tmp_path, {"Ingest": HANDLER}, layer, compiled_as=None)

    code, lines = run_check(build, runtime_python, capsys)

    assert code == 1
    built_at = build / "SharedLayer" / "python" / "helper.py"
    assert lines == [
        "artifact check: SharedLayer: the bytecode of 3 of 3 modules (helper, pkg) names its source "
        f"where it was built, not under /opt/python (e.g. helper.py: {built_at}): tracebacks on "
        "Lambda would show that path (the layer's build must compile them with that prefix)"
    ]


def test_a_complete_build_reports_its_layers_bytecode(tmp_path, runtime_python, capsys):
    build = write_build(tmp_path, {"Ingest": HANDLER}, {"helper.py": "def answer():\n    return 42\n"})

    code, lines = run_check(build, runtime_python, capsys)

    assert code == 0
    assert "; bytecode: SharedLayer 1 modules; " in lines[0]
