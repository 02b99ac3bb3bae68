"""``python -m bench.rows coldstart --emulator``: each handler's import ratio is printed beside
its function's init in the runtime emulator, so each handler must be found in the template."""

from __future__ import annotations

import pytest

from bench import coldstart, rows
from devstack.template import load_template


def test_every_measured_handler_is_a_function_of_the_template() -> None:
    functions = coldstart.handler_functions(load_template(coldstart.ROOT / "template.yaml"))

    assert sorted(functions) == sorted(coldstart.HANDLERS)
    assert functions["ingest_handler"] == "IngestFunction"
    assert functions["dispatch_handler"] == "DispatchFunction"


def test_a_handler_missing_from_the_template_is_left_out() -> None:
    template = {
        "Resources": {
            "IngestFunction": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"Handler": "ingest_handler.handler"},
            },
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}},
        }
    }

    assert coldstart.handler_functions(template) == {"ingest_handler": "IngestFunction"}


def test_the_emulator_goes_with_the_coldstart_row_only(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        rows.main(["latency", "--emulator"])

    assert "--emulator goes with the coldstart row only" in capsys.readouterr().err
