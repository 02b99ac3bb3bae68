"""The README's "Operating sethub" commands, each run as written against ``make local``.

Each command goes through the CLI's entry function (``sethub.cli.main``: its argv, stdout,
stderr and exit code) in this process, with the operator's environment: the two variables
the banner prints and no AWS credentials. One command also runs as the installed ``sethub``
script in a child process, to show the console script works; a child per command cost a
Python start each (seconds on a loaded machine) and added nothing else. The stack delivers a
real event to a subscriber that always answers 503 (a one-step retry schedule), so that the
deliveries, dead letters, replay and stats commands have something to show."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from e2e_harness import ROOT, callback_host, child_environment, wait_for
from listeners import SubscriberServer
from operator_cli import table_rows

from sethub.cli import main
from sethub.cli.target import CliClients, endpoint_and_region

pytestmark = pytest.mark.e2e

LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"
SETHUB = Path(sys.executable).with_name("sethub")


def readme_commands() -> list[str]:
    """The ``sethub`` lines of the README's "Operating sethub" block, comments dropped."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Operating sethub") :]
    block = section[section.index("```sh\n") + 6 : section.index("```\n", section.index("```sh\n") + 6)]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.startswith("sethub ")]


@pytest.fixture
def failing_subscriber() -> Iterator[str]:
    """A callback that confirms intent and answers every delivery 503."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            challenge = parse_qs(urlsplit(self.path).query).get("hub.challenge", [""])[0].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(challenge)))
            self.end_headers()
            self.wfile.write(challenge)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = SubscriberServer((callback_host(), 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{callback_host()}:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def banner_environment(stack: Any) -> dict[str, str]:
    """What the banner's ``CLI`` line says to export, read from the stack's own banner."""
    line = wait_for(
        lambda: re.search(r"CLI\s+export (SETHUB_AWS_ENDPOINT=\S+) (SETHUB_STACK=\S+)", stack.output),
        timeout=10,
        message="the banner's CLI line",
    )
    return dict(part.split("=", 1) for part in line.groups())


def test_every_readme_command_runs_against_the_local_stack(
    start_local_stack, failing_subscriber, monkeypatch
):
    stack = start_local_stack(SETHUB_RETRY_SCHEDULE="1")
    env = child_environment(banner_environment(stack))
    # The operator's shell has no AWS credentials: the CLI must not need any for make local.
    # In this process too (boto3 reads them from os.environ, not from main's env).
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        env.pop(name, None)
    for name in [name for name in os.environ if name.startswith(("AWS_", "SETHUB_", "POWERTOOLS_"))]:
        monkeypatch.delenv(name)

    # One set of clients for every command, as main builds them from the banner's variables:
    # a boto3 session per command costs a second under load and tests nothing of the CLI.
    clients = CliClients(*endpoint_and_region(None, None, env))

    def argv(command: str) -> list[str]:
        return [a.strip("'") for a in command.split()[1:]]

    def sethub(command: str) -> str:
        out, err = io.StringIO(), io.StringIO()
        code = main(argv(command), clients=clients, env=env, out=out, err=err, stdin=io.StringIO())
        assert code == 0, f"{command}: {err.getvalue()}"
        return out.getvalue()

    stack.subscribe("acme.login", failing_subscriber)
    (jti,) = stack.publish({"topic": "acme.login", "events": {LOGIN: {"user": {"id": "42"}}}})
    wait_for(
        lambda: json.loads(sethub("sethub dead-letters list --json")),
        timeout=60,
        message="the delivery dead-lettered after its one retry",
    )
    # The installed console script, once, as the operator's shell runs it.
    script = subprocess.run(
        [str(SETHUB), *argv("sethub dead-letters list --json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert script.returncode == 0, script.stderr
    assert [letter["jti"] for letter in json.loads(script.stdout)] == [jti]

    commands = readme_commands()
    assert len(commands) >= 16
    outputs: dict[str, str] = {}
    key_id = recovery_id = ""
    for written in commands:
        command = (
            written.replace("<jti>", jti)
            .replace("<key id>", key_id)
            .replace("<callback>", failing_subscriber)
            .replace("<recovery id>", recovery_id)
        )
        outputs[command] = out = sethub(command)
        if command.startswith("sethub keys create"):
            key_id = re.search(r"^key_id\s+(\S+)", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
        if command.startswith("sethub recover start"):
            recovery_id = re.search(r"^recovery\s+(\S+)", out, re.MULTILINE).group(1)  # type: ignore[union-attr]

    def output(prefix: str) -> str:
        return next(out for command, out in outputs.items() if command.startswith(prefix))

    assert "acme.login" in output("sethub topics list")
    header, row = table_rows(output("sethub subscriptions list --topic"))
    subscription = dict(zip(header, row, strict=True))
    assert (subscription["topic"], subscription["state"]) == ("acme.login", "active")
    assert subscription["failing_since"] != "-"  # failing since its first 503
    assert subscription["last_outcome"] == "failed (503)"
    assert re.search(r"^last_outcome\s+failed \(503\)$", output("sethub subscriptions show"), re.MULTILINE)
    assert "revoked" in output("sethub keys revoke")
    assert "crm-receiver" in output("sethub ssf receivers list")
    statuses = [line.split()[5] for line in output("sethub deliveries").splitlines()[1:]]
    assert statuses == ["retrying", "dead"]
    assert jti in output("sethub dead-letters list")
    assert "would move" in output("sethub dead-letters replay --dry-run")
    assert re.search(r"^moved\s+1$", output("sethub dead-letters replay"), re.MULTILINE)
    # The event was kept: dispatch's recovery sent it again, failed (503) and queued it for a retry.
    for recovered in (output("sethub recover start"), output("sethub recover status")):
        assert re.search(r"^status\s+done$", recovered, re.MULTILINE)
        assert re.search(r"^retrying\s+1$", recovered, re.MULTILINE)
        assert re.search(rf"^last_jti\s+{jti}$", recovered, re.MULTILINE)
    assert "signing" in output("sethub signing-keys show")
    stats = {" ".join(line.split()[:-1]): line.split()[-1] for line in output("sethub stats").splitlines()}
    # At least the first round; the replayed delivery may have failed again meanwhile.
    assert min(int(stats["retrying"]), int(stats["dead"]), int(stats["retries"])) >= 1
    assert stats["latency p99 ms"].isdigit()
