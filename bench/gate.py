"""CPU and latency of one hop through a function's AWS endpoint (``devstack.awsgate``).

``python -m bench.gate [--calls N]``: moto in a process of its own (``bench.aws``), the
template provisioned in it, and ``IngestFunction``'s endpoint in a second process, so that
its CPU (read from that process, before and after) is the endpoint's alone. The calls are
ingest's own (``GetItem``, ``PutItem`` on the hub table, ``SendMessage`` on the events
queue) and one its role refuses (``Query``). Printed: the endpoint's CPU per proxied call,
and the median wall time of the same call through the endpoint and straight to moto.

A measurement to read, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.aws import AWS_ENV, start_moto

ROOT = Path(__file__).resolve().parent.parent
FUNCTION = "IngestFunction"


def _serve_endpoint(policy: Any, upstream: str, function_name: str, lookups: Any, conn: Connection) -> None:
    """The child: one endpoint; answers ``"cpu"`` with its process CPU seconds until ``"stop"``."""
    import io  # noqa: PLC0415 (only in the child)

    from devstack.awsgate import AuthorizingEndpoint  # noqa: PLC0415

    log = io.StringIO()  # refusals are logged: keep them off the benchmark's output
    endpoint = AuthorizingEndpoint(policy, upstream, function_name=function_name, lookups=lookups, log=log)
    endpoint.start()
    conn.send(endpoint.url)
    while (command := conn.recv()) != "stop":
        if command == "cpu":
            conn.send(time.process_time())
    endpoint.stop()


def _median_ms(call: Callable[[], Any], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    arguments.add_argument("--calls", type=int, default=400, help="calls of each kind (default 400)")
    calls = arguments.parse_args().calls
    os.environ.update(AWS_ENV)

    from botocore.exceptions import ClientError  # noqa: PLC0415 (after the environment is set)

    from devstack.iam import Lookups  # noqa: PLC0415
    from devstack.provision import provision  # noqa: PLC0415
    from devstack.template import load_template  # noqa: PLC0415
    from sethub.clients import DEFAULT_CONFIG, new_session  # noqa: PLC0415

    moto = start_moto()
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    try:
        provisioned = provision(
            load_template(ROOT / "template.yaml"), endpoint_url=moto.endpoint, prefix="gatebench"
        )
        # A snapshot of the live lookups: the child gets a copy either way.
        lookups = Lookups(
            key_aliases=dict(provisioned.key_aliases), secret_arns=tuple(provisioned.secret_arns.values())
        )
        process = context.Process(
            target=_serve_endpoint,
            args=(
                provisioned.policy_for(FUNCTION),
                moto.endpoint,
                provisioned.function_name(FUNCTION),
                lookups,
                child,
            ),
            daemon=True,
        )
        process.start()
        gate_url = parent.recv()
        session = new_session()
        table = provisioned.table_names["HubTable"]
        queue = provisioned.queue_urls["EventsQueue"]

        def ingest_calls(endpoint_url: str, *, gated: bool) -> dict[str, Callable[[], Any]]:
            at: dict[str, Any] = {"endpoint_url": endpoint_url, "config": DEFAULT_CONFIG}
            dynamodb: Any = session.create_client("dynamodb", **at)
            sqs: Any = session.create_client("sqs", **at)
            key = {"pk": {"S": "TOPIC#bench"}, "sk": {"S": "TOPIC"}}

            def refused() -> None:
                try:
                    dynamodb.query(
                        TableName=table,
                        KeyConditionExpression="pk = :p",
                        ExpressionAttributeValues={":p": {"S": "x"}},
                    )
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "AccessDeniedException":
                        raise
                else:
                    # Straight to moto nothing refuses it.
                    if gated:
                        raise AssertionError("ingest's role allowed a Query")

            return {
                "GetItem": lambda: dynamodb.get_item(TableName=table, Key=key),
                "PutItem": lambda: dynamodb.put_item(TableName=table, Item={**key, "n": {"N": "1"}}),
                "SendMessage": lambda: sqs.send_message(QueueUrl=queue, MessageBody="{}"),
                "Query (refused)": refused,
            }

        through, direct = ingest_calls(gate_url, gated=True), ingest_calls(moto.endpoint, gated=False)
        for call in [*through.values(), *direct.values()]:
            call()  # warm: connections open, models loaded

        print(f"{FUNCTION}'s endpoint, {calls} calls of each kind")
        print(f"{'call':<18}{'endpoint CPU/call':>20}{'p50 via endpoint':>18}{'p50 direct':>12}")
        total_cpu, total_calls = 0.0, 0
        for name, call in through.items():
            parent.send("cpu")
            before = parent.recv()
            via = _median_ms(call, calls)
            parent.send("cpu")
            cpu = parent.recv() - before
            straight = _median_ms(direct[name], calls)
            total_cpu, total_calls = total_cpu + cpu, total_calls + calls
            print(f"{name:<18}{cpu / calls * 1e6:>17.0f} µs{via:>15.2f} ms{straight:>9.2f} ms")
        print(f"{'all':<18}{total_cpu / total_calls * 1e6:>17.0f} µs")
        parent.send("stop")
        process.join(timeout=10)
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
