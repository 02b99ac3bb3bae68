"""The SSF rows of ``make bench``: SETs per second to 100 push streams through the dispatch
handler, and the signing cost per SET in both signing modes.

A worker process like ``bench.fanout`` (``python -m bench.ssf SPEC.json OUT.json``, its
stdout the handler's logs): it provisions a stack on the bench's moto in each signing
mode, creates ``streams`` push streams (one receiver, session-revoked) whose endpoints are
the receiver farm's ports, and times the dispatch handler on SQS events of CAEP events:
each event becomes one RS256 SET per stream (its own ``aud``, ``jti`` and signature),
pushed through the same pool as subscribers' deliveries. Signing is then timed alone:
the SSF key ring's RS256 (what SSF streams get in either mode) and, for comparison, the
hub's own signer of each mode (ES256 in process, or KMS ``Sign`` per SET).

``python -m bench.ssf --standalone`` starts moto and the farm itself and prints the rows
(what ``make bench`` adds to its table).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
RECEIVER = "bench-receiver"
LOCAL_OVERRIDES = {
    "SETHUB_ALLOW_PRIVATE_CALLBACKS": "true",
    "SETHUB_ALLOW_HTTP_CALLBACKS": "true",
    "SETHUB_PUBLIC_URL": "http://127.0.0.1:3000",
}
REPEATS = 3
"""Timed runs per throughput row; the median counts."""
KMS_ECC_PER_SIGN = 0.15 / 10_000
"""KMS asymmetric requests, ECC (DESIGN.md "Signing"): the hub's default key spec."""
KMS_SYMMETRIC_PER_REQUEST = 0.03 / 10_000
KMS_RSA_2048_PER_SIGN = 0.03 / 10_000
"""KMS asymmetric requests with RSA_2048 keys (DESIGN.md "Signing"): SSF SETs in kms mode."""


def _claims(n: int) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "https://idp.example",
        "jti": str(uuid.uuid4()),
        "iat": now,
        "txn": f"bench-{n}",
        "sub_id": {"format": "email", "email": f"user{n}@example.com"},
        "events": {
            SESSION_REVOKED: {
                "initiating_entity": "policy",
                "reason_admin": {"en": "Landspeed Policy Violation"},
                "event_timestamp": now,
            }
        },
    }


def _provision(aws_env: dict[str, str], mode: str) -> Any:
    from devstack.provision import provision  # noqa: PLC0415
    from devstack.template import load_template  # noqa: PLC0415

    return provision(
        load_template(ROOT / "template.yaml"),
        endpoint_url=aws_env["AWS_ENDPOINT_URL"],
        prefix=f"bssf{mode[0]}{uuid.uuid4().hex[:6]}",
        parameters={"SigningMode": mode},
        overrides=LOCAL_OVERRIDES,
    )


def _farm_posts(ports: list[int]) -> int:
    import urllib.request  # noqa: PLC0415

    total = 0
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=10) as response:
            total += int(json.loads(response.read())["posts"])
    return total


def _per_set(seconds: float, count: int) -> float:
    return seconds / count * 1e6


def _signing(sign: Any, count: int) -> dict[str, float]:
    """µs of wall and CPU per signature over ``count`` signatures (after one untimed)."""
    sign(_claims(0))
    wall, cpu = time.perf_counter(), time.process_time()
    for n in range(count):
        sign(_claims(n))
    return {
        "wall_us": _per_set(time.perf_counter() - wall, count),
        "cpu_us": _per_set(time.process_time() - cpu, count),
        "count": count,
    }


def run(spec: dict[str, Any]) -> dict[str, Any]:
    os.environ.update(spec["aws_env"])
    from sethub.clients import AwsClients  # noqa: PLC0415
    from sethub.keyring import signer_for  # noqa: PLC0415
    from sethub.settings import Settings  # noqa: PLC0415
    from sethub.ssf import model  # noqa: PLC0415
    from sethub.ssf.keys import SsfKeys  # noqa: PLC0415
    from sethub.ssf.store import SsfStore  # noqa: PLC0415

    result: dict[str, Any] = {"streams": spec["streams"], "signing": {}, "push": []}
    ports: list[int] = spec["ports"]
    for mode in ("wrapped", "kms"):
        provisioned = _provision(spec["aws_env"], mode)
        env = provisioned.union_env()
        os.environ.update(env)
        settings = Settings.from_env(env)
        clients = AwsClients()
        keys = SsfKeys(
            clients.kms, clients.dynamodb, table_name=settings.table_name, data_key_id=settings.data_key_id
        )
        keys.key(create=True)
        count = spec["signatures"] if mode == "wrapped" else spec["kms_signatures"]
        result["signing"][f"ssf {mode}"] = _signing(keys.sign, count)
        hub_signer = signer_for(clients, settings)
        result["signing"][f"hub {mode}"] = _signing(hub_signer.sign, count)
        if mode == "wrapped":
            store = SsfStore(clients.dynamodb, settings.table_name)
            for n in range(spec["streams"]):
                stream = model.create(
                    {
                        "events_requested": [SESSION_REVOKED],
                        "delivery": {
                            "method": model.PUSH,
                            "endpoint_url": f"http://127.0.0.1:{ports[n % len(ports)]}/ssf/{n}",
                            "authorization_header": f"Bearer push-{n}",
                        },
                    },
                    client_id=RECEIVER,
                    iss=settings.public_url,
                    base_url=settings.public_url,
                    now=int(time.time()),
                    allow_http=True,
                )
                store.save_stream(stream)
            result["push"] = _push(provisioned, spec, ports)
    return result


def _push(provisioned: Any, spec: dict[str, Any], ports: list[int]) -> list[dict[str, Any]]:
    from devstack.functions import load_function  # noqa: PLC0415
    from sethub.messages import SetEvent  # noqa: PLC0415

    function = load_function(provisioned.functions["DispatchFunction"], ROOT, provisioned.region)

    def sqs_event(events: int) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "messageId": str(uuid.uuid4()),
                    "receiptHandle": "bench",
                    "body": SetEvent(topic="bench.ssf", claims=_claims(n), hub_url="").to_json(),
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "md5OfBody": "",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": provisioned.queue_arns["EventsQueue"],
                    "awsRegion": provisioned.region,
                }
                for n in range(events)
            ]
        }

    function.invoke(sqs_event(1))  # a warm container: keys unwrapped, pools open
    rows = []
    for events in spec["events"]:
        walls, cpus, failures = [], [], 0
        for _ in range(REPEATS):
            before = _farm_posts(ports)
            wall, cpu = time.perf_counter(), time.process_time()
            answer = function.invoke(sqs_event(events))
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            failures += len(answer.get("batchItemFailures", [])) if isinstance(answer, dict) else 0
            delivered = _farm_posts(ports) - before
            if delivered != events * spec["streams"]:
                failures += abs(events * spec["streams"] - delivered)
        rows.append(
            {
                "events": events,
                "sets": events * spec["streams"],
                "wall": statistics.median(walls),
                "cpu": statistics.median(cpus),
                "failures": failures,
            }
        )
        print(f"bench: SSF {events} event(s) x {spec['streams']} streams done", file=sys.stderr, flush=True)
    return rows


def lines(result: dict[str, Any]) -> list[Any]:
    """The table's SSF lines (``bench.report.Line``)."""
    from bench.report import Line  # noqa: PLC0415

    found = []
    for row in result["push"]:
        failures = f"; {row['failures']} SETs not delivered" if row["failures"] else ""
        found.append(
            Line(
                f"SSF push {row['events']} event(s) x {result['streams']} streams",
                f"{row['sets'] / row['wall']:,.0f} SETs/s, {row['cpu'] / row['sets'] * 1e6:,.0f} µs CPU",
                note=f"{row['sets']} SETs, each signed for its stream (RS256) and pushed with its "
                f"authorization_header; one dispatch invocation, median of {REPEATS}{failures}",
            )
        )
    signing = result["signing"]
    ssf = signing["ssf wrapped"]
    found.append(
        Line(
            "SSF SET signing, SETHUB_SIGNING_MODE=wrapped",
            f"{ssf['cpu_us']:,.0f} µs CPU per SET, $0 per SET",
            note=f"RS256 2048 with the SSF ring's wrapped key, in process (wall {ssf['wall_us']:,.0f} µs); "
            f"one KMS Decrypt per key and container (${KMS_SYMMETRIC_PER_REQUEST * 1e6:.0f} per million "
            "cold starts)",
        )
    )
    ssf = signing["ssf kms"]
    found.append(
        Line(
            "SSF SET signing, SETHUB_SIGNING_MODE=kms",
            f"{ssf['wall_us'] / 1000:,.1f} ms per SET, ${KMS_RSA_2048_PER_SIGN * 1e6:,.0f} per million SETs",
            note="KMS Sign (RSA_2048, the SSF KMS key) per event and stream, shared by its retries, here "
            f"against moto over local HTTP ({ssf['cpu_us']:,.0f} µs client CPU); the private key never "
            "leaves KMS",
        )
    )
    wrapped, kms = signing["hub wrapped"], signing["hub kms"]
    found.append(
        Line(
            "hub SET signing, wrapped (for comparison)",
            f"{wrapped['cpu_us']:,.0f} µs CPU per SET, $0 per SET",
            note=f"ES256 in process (wall {wrapped['wall_us']:,.0f} µs): one signature per event, shared by "
            "all its subscribers",
        )
    )
    found.append(
        Line(
            "hub SET signing, kms (for comparison)",
            f"{kms['wall_us'] / 1000:,.1f} ms per SET, ${KMS_ECC_PER_SIGN * 1e6:,.0f} per million SETs",
            note=f"KMS Sign (ECC) per event, here against moto over local HTTP "
            f"({kms['cpu_us']:,.0f} µs client CPU); in-region KMS answers in milliseconds",
        )
    )
    return found


def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    Path(out_path).write_text(json.dumps(run(spec)))


def spec(aws_env: dict[str, str], ports: list[int], *, quick: bool) -> dict[str, Any]:
    return {
        "aws_env": aws_env,
        "ports": ports,
        "streams": 100,
        "events": [1, 10] if not quick else [1, 3],
        "signatures": 50 if quick else 300,
        "kms_signatures": 20 if quick else 100,
    }


def measure(aws_env: dict[str, str], ports: list[int], workdir: Path, *, quick: bool) -> dict[str, Any]:
    """Run the worker (its stdout, the handler's logs, to a file) and read its result."""
    import subprocess  # noqa: PLC0415

    spec_path, out_path, log_path = workdir / "ssf-spec.json", workdir / "ssf-out.json", workdir / "ssf.log"
    spec_path.write_text(json.dumps(spec(aws_env, ports, quick=quick)))
    with log_path.open("wb") as log:
        code = subprocess.call(
            [sys.executable, "-m", "bench.ssf", str(spec_path), str(out_path)], cwd=ROOT, stdout=log
        )
    if code != 0:
        raise SystemExit(f"bench: the SSF worker failed ({code}); its log: {log_path}")
    measured: dict[str, Any] = json.loads(out_path.read_text())
    return measured


def standalone(quick: bool) -> int:
    import tempfile  # noqa: PLC0415

    from bench.aws import start_moto  # noqa: PLC0415
    from bench.farm import start_farm  # noqa: PLC0415
    from bench.report import machine, table  # noqa: PLC0415

    print(f"bench: {machine()}; load {os.getloadavg()}", file=sys.stderr)
    farm = start_farm(4)
    moto = start_moto()
    try:
        with tempfile.TemporaryDirectory(prefix="sethub-bench-ssf-") as tmp:
            result = measure(moto.env(), farm.ports, Path(tmp), quick=quick)
    finally:
        moto.stop()
        farm.stop()
    print(table(lines(result)))
    print(f"bench: load {os.getloadavg()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--standalone"]:
        sys.exit(standalone(quick="--quick" in sys.argv))
    main(sys.argv[1], sys.argv[2])
