"""`SETHUB_LOCAL_FUNCTIONS=sam make local`: the functions in the SAM CLI's Lambda emulator.

Collected only in sam mode (`make test-sam`, see conftest.py); the tests marked ``sam`` in
the other e2e files run there too, against stacks whose functions run in the emulator.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from e2e_harness import ROOT, callback_host, child_environment, wait_for  # type: ignore[import-not-found]

from sethub.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.sam]

INVOKE_SECONDS = 180


def _banner_value(output: str, label: str) -> str:
    match = re.search(rf"^  {label}\s+(.+)$", output, re.MULTILINE)
    assert match, f"no {label!r} line in the banner:\n{output}"
    return match.group(1).strip()


def test_the_stack_runs_every_invocation_in_the_emulator(local_stack):
    status, _, _ = local_stack.request("GET", "/health")

    assert status == 200
    functions = _banner_value(local_stack.output, "functions")
    assert functions.startswith("sam local start-lambda http://127.0.0.1:")
    # The emulator's log, named in the banner, shows the invocation the API just made.
    log = Path(re.search(r"\(log (.+)\)$", functions).group(1)).read_text(errors="replace")  # type: ignore[union-attr]
    assert "Invoking websub_handler.handler (python3.12)" in log
    assert re.search(r"^REPORT RequestId: \S+\tDuration: ", log, re.MULTILINE)


def test_the_printed_sam_local_invoke_command_publishes_into_the_running_stack(start_local_stack):
    # GIVEN a running stack (it writes devstack-env.json) and a subscriber to the sample's topic
    stack = start_local_stack()
    sample = json.loads((ROOT / "events" / "hub-publish.json").read_text())
    topic = sample["queryStringParameters"]["hub.topic"]
    claims = json.loads(sample["body"])
    receiver = Receiver(hub=stack.base_url, host=callback_host()).start()
    try:
        receiver.expect("subscribe", topic)
        stack.subscribe(topic, f"{receiver.url}/sample")

        # WHEN the command the banner prints runs the sample WSO2 publish through WebSubFunction
        command = _banner_value(stack.output, "invoke")
        command = command.replace("FUNCTION", "WebSubFunction").replace("EVENT", "events/hub-publish.json")
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=ROOT,
            env=child_environment({}),
            capture_output=True,
            text=True,
            timeout=INVOKE_SECONDS,
            check=False,
        )

        # THEN the function answered as API Gateway's backend, and the stack delivered the event
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        assert answer["statusCode"] == 202, f"{answer}\n{result.stderr}\n{stack.output}"
        (event,) = wait_for(
            lambda: [e for e in receiver.events if e.jti == claims["jti"]],
            timeout=30,
            message="the published sample delivered",
        )
    finally:
        receiver.stop()
    assert event.verified
    assert event.topic == topic
    assert event.claims["events"] == claims["events"]
