"""Worker process: fan-out through the dispatch handler beside the two baselines, and ingest.

Run by ``bench.__main__`` as ``python -m bench.fanout SPEC.json OUT.json`` with its stdout
(the handlers' JSON logs) going to a file, so that log volume can be counted and the
table stays readable. Everything here is measured in this one process, whose CPU time
is the client's alone: moto and the receiver farm run in processes of their own.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOGIN_EVENT = ROOT / "events" / "events-loginSuccess.json"
LOCAL_OVERRIDES = {
    "SETHUB_ALLOW_PRIVATE_CALLBACKS": "true",
    "SETHUB_ALLOW_HTTP_CALLBACKS": "true",
    "SETHUB_PUBLIC_URL": "http://127.0.0.1:3000",
}
TRACING = {
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    # Nothing listens there: the segments are sent (their CPU is the handler's) and dropped.
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
}
"""With ``LAMBDA_TASK_ROOT``, what Lambda sets for a function with ``Tracing: Active``, as the
template deploys them: Powertools' Tracer on, botocore patched, a subsegment per AWS call."""
REPEATS = 5
"""Timed rounds per row: each round times the hub, then urllib3, then requests; a row shows the
median round and the spread of the rounds' ratios (this 2-core machine is shared: one run
alone swung 2x between two runs)."""
SINGLE_SHARD = 100_000
"""SETHUB_SHARD_SIZE for single-invocation rows: no topic is split."""


@dataclass
class Row:
    """One fan-out measurement: hub and baselines over the same POSTs."""

    name: str
    events: int
    subscribers: int
    deliveries: int = 0
    invocations: int = 0
    hub_wall: float = 0.0
    hub_cpu: float = 0.0
    hub_errors: int = 0
    urllib3_wall: float = 0.0
    urllib3_cpu: float = 0.0
    requests_wall: float = 0.0
    requests_cpu: float = 0.0
    baseline_errors: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    aws_wall: float = 0.0
    """Of hub_wall, the time the handler spent waiting on AWS (moto): its own calls, and the
    wait for the delivery-record writes still running once the deliveries are settled."""
    phases: dict[str, float] = field(default_factory=dict)
    log_bytes: int = 0
    """What the handler wrote to stdout (CloudWatch Logs in AWS)."""
    note: str = ""
    rounds: list[dict[str, float]] = field(default_factory=list)
    """Every round's figures (hub and baselines, wall and CPU seconds, the hub's AWS waits), for
    the spreads; the fields above are the median round's (by the hub's own time)."""


def _claims() -> dict[str, Any]:
    body = json.loads(json.loads(LOGIN_EVENT.read_text())["body"])
    claims = {key: value for key, value in body.items() if key != "topic"}
    claims["jti"] = str(uuid.uuid4())
    claims["iat"] = int(time.time())
    return claims


class Bench:
    def __init__(self, spec: dict[str, Any]) -> None:
        os.environ.update(spec["aws_env"])
        # The handlers run traced, as deployed (before anything imports Powertools).
        os.environ.pop("POWERTOOLS_TRACE_DISABLED", None)
        os.environ.update({**TRACING, "LAMBDA_TASK_ROOT": str(ROOT / "functions" / "dispatch")})
        from devstack.provision import provision  # noqa: PLC0415
        from devstack.template import load_template  # noqa: PLC0415

        self.ports: list[int] = spec["ports"]
        self.concurrency: int = spec["concurrency"]
        self.provisioned = provision(
            load_template(ROOT / "template.yaml"),
            endpoint_url=spec["aws_env"]["AWS_ENDPOINT_URL"],
            prefix=f"bench{uuid.uuid4().hex[:6]}",
            overrides={**LOCAL_OVERRIDES, "SETHUB_DELIVERY_CONCURRENCY": str(self.concurrency)},
        )
        os.environ.update(self.provisioned.union_env())
        from devstack.credentials import seed_local_keys  # noqa: PLC0415

        # Keys live in the hub table (hashed), as the operator command stores them.
        self.publisher_key = seed_local_keys(self.provisioned, {}).keys["publisher"][0]
        from bench.aws import CallCounter  # noqa: PLC0415
        from bench.phases import instrument  # noqa: PLC0415
        from sethub.clients import AwsClients  # noqa: PLC0415
        from sethub.settings import Settings  # noqa: PLC0415

        self.phases = instrument()
        self.settings = Settings.from_env()
        self.setup_clients = AwsClients()
        self.counter = CallCounter()
        self.topics: dict[int, str] = {}

    # -- set-up (not measured) -----------------------------------------------------

    def callback(self, topic: str, index: int) -> str:
        """Subscriber ``index`` of ``topic``: spread round-robin over the farm's ports."""
        return f"http://127.0.0.1:{self.ports[index % len(self.ports)]}/cb/{topic}/{index}"

    def subscribe(self, sizes: list[int]) -> None:
        """One topic per size with that many active subscriptions.

        The first few go through the store's own path (request, verification, apply); the
        rest are batch-written as the very item that path writes, because moto copies the
        whole table on every transaction (quadratic set-up). The store must then read
        them all back as active, identical to the ones it made.
        """
        from sethub.store import SubscriptionStore  # noqa: PLC0415
        from sethub.subscriptions import expiry, state_ttl, subscription_key, topic_key  # noqa: PLC0415

        store = SubscriptionStore(self.setup_clients, self.settings)
        lease = self.settings.default_lease_seconds
        by_store = 5
        for size in sizes:
            topic = f"bench.fanout.{size}"
            store.register_topic(topic)
            self.topics[size] = topic
            for index in range(min(by_store, size)):
                request_id = store.put_pending(
                    mode="subscribe",
                    topic=topic,
                    callback=self.callback(topic, index),
                    format="jwt",
                    secret=None,
                    lease_seconds=lease,
                    requested_at=time.time_ns(),
                )
                pending = store.get_pending(topic, self.callback(topic, index), request_id)
                assert pending is not None
                store.apply_verified(pending)
            now = time.time()
            items = [
                {
                    "pk": {"S": topic_key(topic)},
                    "sk": {"S": subscription_key(self.callback(topic, index))},
                    "callback": {"S": self.callback(topic, index)},
                    "requested_at": {"N": str(time.time_ns())},
                    "state": {"S": "active"},
                    "format": {"S": "jwt"},
                    "lease_seconds": {"N": str(lease)},
                    "expires_at": {"N": str(expiry(lease, now))},
                    "ttl": {"N": str(state_ttl(expiry(lease, now), now))},
                }
                for index in range(by_store, size)
            ]
            self._batch_write([{"PutRequest": {"Item": item}} for item in items])
            found, _ = store.list_active(topic, now=time.time())
            if len(found) != size:
                raise RuntimeError(f"{topic}: the store reads {len(found)} active subscriptions, not {size}")
            made = {(s.format, s.secret, s.lease_seconds) for s in found}
            if len(made) != 1:
                raise RuntimeError(f"{topic}: bulk-written subscriptions differ from the store's: {made}")

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        table = self.settings.table_name
        for start in range(0, len(requests), 25):
            pending: Any = {table: requests[start : start + 25]}
            while pending:
                pending = self.setup_clients.dynamodb.batch_write_item(RequestItems=pending).get(
                    "UnprocessedItems"
                )

    def forget_records(self, topic: str, jtis: list[str], subscribers: int) -> None:
        """Delete the delivery records of ``jtis`` (not timed): moto's Query scans the whole
        table, so records piling up would slow every later subscription query."""
        from sethub.records import delivery_key  # noqa: PLC0415

        keys = []
        for jti in jtis:
            found = self.setup_clients.dynamodb.query(
                TableName=self.settings.table_name,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": delivery_key(jti)}},
                ProjectionExpression="pk, sk",
            )["Items"]
            keys += [{"DeleteRequest": {"Key": {"pk": item["pk"], "sk": item["sk"]}}} for item in found]
        self._batch_write(keys)

    def load_dispatch(self) -> Any:
        from bench.aws import counting_clients  # noqa: PLC0415
        from devstack.functions import load_function  # noqa: PLC0415

        function = load_function(
            self.provisioned.functions["DispatchFunction"], ROOT, self.provisioned.region
        )
        # The handler builds AwsClients() once per container: give it counting ones.
        sys.modules["dispatch_handler"].AwsClients = counting_clients(self.counter)  # type: ignore[attr-defined]
        return function

    def bodies(self, events: int) -> list[bytes]:
        """Bodies of the same size as the hub's: the same claims, signed by the same key."""
        from sethub.keyring import signer_for  # noqa: PLC0415

        # The signer of the template's SETHUB_SIGNING_MODE, as the dispatcher builds it.
        signer = signer_for(self.setup_clients, self.settings)
        return [signer.sign(_claims()).encode("ascii") for _ in range(events)]

    def headers(self, topic: str, body: bytes) -> dict[str, str]:
        """The headers the hub sends a subscription of the bench (jwt, no secret) with ``body``."""
        from sethub import sets  # noqa: PLC0415
        from sethub.delivery import headers_for  # noqa: PLC0415

        jti = json.loads(base64.urlsafe_b64decode(body.split(b".")[1] + b"=="))["jti"]
        return headers_for(
            topic=topic,
            hub_url=f"{self.settings.public_url}/hub",
            jti=jti,
            content_type=sets.SET_CONTENT_TYPE,
            body=body,
            secret=None,
        )

    # -- the hub ---------------------------------------------------------------------

    def _sqs_event(self, topic: str, count: int) -> dict[str, Any]:
        from sethub.messages import SetEvent  # noqa: PLC0415

        hub_url = f"{self.settings.public_url}/hub"
        return {
            "Records": [
                {
                    "messageId": str(uuid.uuid4()),
                    "receiptHandle": "bench",
                    "body": SetEvent(topic=topic, claims=_claims(), hub_url=hub_url).to_json(),
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "md5OfBody": "",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.provisioned.queue_arns["EventsQueue"],
                    "awsRegion": self.provisioned.region,
                }
                for _ in range(count)
            ]
        }

    def _drain_shards(self) -> list[dict[str, Any]]:
        """FanoutShard messages the handler queued, as SQS events (receiving is Lambda's job)."""
        sqs = self.setup_clients.sqs
        url = self.provisioned.queue_urls["EventsQueue"]
        batches: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
            if not messages:
                return batches
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
            )
            batches.append(
                {
                    "Records": [
                        {
                            "messageId": m["MessageId"],
                            "receiptHandle": m["ReceiptHandle"],
                            "body": m["Body"],
                            "attributes": {"ApproximateReceiveCount": "1"},
                            "messageAttributes": {},
                            "md5OfBody": m.get("MD5OfBody", ""),
                            "eventSource": "aws:sqs",
                            "eventSourceARN": self.provisioned.queue_arns["EventsQueue"],
                            "awsRegion": self.provisioned.region,
                        }
                        for m in messages
                    ]
                }
            )

    def hub_run(
        self, function: Any, topic: str, subscribers: int, events: int, batch: int
    ) -> tuple[float, float, int, int]:
        """Invoke the handler on ``events`` events in SQS batches of ``batch`` (then any shards).

        Returns wall and CPU seconds spent inside the handler, invocations, and batch item failures.
        """
        pending = [self._sqs_event(topic, min(batch, events - start)) for start in range(0, events, batch)]
        wall = cpu = 0.0
        invocations = failures = 0
        while pending:
            for event in pending:
                w, c = time.perf_counter(), time.process_time()
                result = _invoke_traced(function, event)
                wall += time.perf_counter() - w
                cpu += time.process_time() - c
                invocations += 1
                failures += len((result or {}).get("batchItemFailures") or [])
                self.forget_records(topic, [_event_jti(r["body"]) for r in event["Records"]], subscribers)
            pending = self._drain_shards()
        return wall, cpu, invocations, failures

    def row(
        self,
        function: Any,
        name: str,
        events: int,
        subscribers: int,
        *,
        shard_size: int,
        note: str = "",
        repeats: int = REPEATS,
    ) -> Row:
        from bench.baselines import requests_run, urllib3_run  # noqa: PLC0415

        os.environ["SETHUB_SHARD_SIZE"] = str(shard_size)
        topic = self.topics[subscribers]
        # Warm-up: a container that has served this topic before (pools full, clients built).
        self.hub_run(function, topic, subscribers, min(events, 10), 10)
        urls = [self.callback(topic, index) for index in range(subscribers)]
        # The same POSTs as the hub's: its body and its headers (a jwt subscription without a
        # secret, as the bench's are), so that the baselines pay for the same bytes on the wire.
        jobs = [(url, body, self.headers(topic, body)) for body in self.bodies(events) for url in urls]
        warmup = jobs[: self.concurrency * len(self.ports)]
        runs: list[Row] = []
        for _ in range(repeats):
            row = Row(name=name, events=events, subscribers=subscribers, note=note)
            before, logged, aws = self.counter.snapshot(), _logged(), self.counter.seconds
            posted = _farm_posts(self.ports)
            with self.phases.measuring() as phases:
                row.hub_wall, row.hub_cpu, row.invocations, failures = self.hub_run(
                    function, topic, subscribers, events, 10
                )
            row.phases = phases
            row.deliveries = _farm_posts(self.ports) - posted
            row.hub_errors = failures + (events * subscribers - row.deliveries)
            row.calls = dict(self.counter.since(before))
            row.log_bytes = _logged() - logged
            row.aws_wall = self.counter.seconds - aws + phases.get("records wait", 0.0)
            # The baselines right after, so each round's ratios compare runs of the same moment.
            lib = urllib3_run(jobs, warmup, self.concurrency)
            req = requests_run(jobs, warmup, self.concurrency)
            row.urllib3_wall, row.urllib3_cpu = lib.wall, lib.cpu
            row.requests_wall, row.requests_cpu = req.wall, req.cpu
            row.baseline_errors = lib.errors + req.errors
            runs.append(row)
        # The median round by the hub's own time (AWS waits excluded: moto's vary the most).
        median = sorted(runs, key=lambda r: r.hub_wall - r.aws_wall)[len(runs) // 2]
        median.rounds = [
            {
                "hub_wall": r.hub_wall,
                "hub_cpu": r.hub_cpu,
                "aws_wall": r.aws_wall,
                "deliveries": r.deliveries,
                "posts": len(jobs),
                "urllib3_wall": r.urllib3_wall,
                "urllib3_cpu": r.urllib3_cpu,
                "requests_wall": r.requests_wall,
                "requests_cpu": r.requests_cpu,
            }
            for r in runs
        ]
        median.hub_errors = sum(r.hub_errors for r in runs)
        median.baseline_errors = sum(r.baseline_errors for r in runs)
        return median

    # -- ingest ----------------------------------------------------------------------

    def ingest(self, batch: int, requests: int, with_jti: bool) -> dict[str, Any]:
        """``requests`` POST /events of ``batch`` events each; ``with_jti``: the publisher names
        each event's jti, so the hub claims an idempotency marker per event."""
        from bench.aws import counting_clients  # noqa: PLC0415
        from devstack.functions import load_function  # noqa: PLC0415

        # A fresh queue per row: moto's SendMessageBatch slows down as a queue fills up.
        queue = f"{self.provisioned.prefix}-ingest-{batch}-{int(with_jti)}"
        os.environ["SETHUB_EVENTS_QUEUE_URL"] = self.setup_clients.sqs.create_queue(QueueName=queue)[
            "QueueUrl"
        ]
        function = load_function(self.provisioned.functions["IngestFunction"], ROOT, self.provisioned.region)
        sys.modules["ingest_handler"].AwsClients = counting_clients(self.counter)  # type: ignore[attr-defined]
        template = json.loads(LOGIN_EVENT.read_text())
        topic = self.topics[min(self.topics)]

        def event() -> dict[str, Any]:
            items = []
            for _ in range(batch):
                claims = _claims()
                claims.pop("iat")  # the hub sets iat
                claims.pop("iss")  # and a publisher key's pinned issuer
                if not with_jti:
                    claims.pop("jti")
                items.append({"topic": topic, **claims})
            # A publisher key, as a deployed publisher sends (its jti markers scoped by the key).
            headers = {**template["headers"], "x-api-key": self.publisher_key}
            return {
                **template,
                "headers": headers,
                "multiValueHeaders": {key: [value] for key, value in headers.items()},
                "body": json.dumps({"events": items}),
            }

        _invoke_traced(function, event())  # warm-up: clients and the API key built
        prepared = [event() for _ in range(requests)]
        before, logged, aws = self.counter.snapshot(), _logged(), self.counter.seconds
        wall = cpu = 0.0
        statuses: Counter[int] = Counter()
        with self.phases.measuring() as phases:
            for item in prepared:
                w, c = time.perf_counter(), time.process_time()
                result = _invoke_traced(function, item)
                wall += time.perf_counter() - w
                cpu += time.process_time() - c
                statuses[int(result["statusCode"])] += 1
        return {
            "batch": batch,
            "with_jti": with_jti,
            "requests": requests,
            "events": batch * requests,
            "wall": wall,
            "cpu": cpu,
            "accepted": statuses.get(202, 0) * batch,
            "calls": dict(self.counter.since(before)),
            "log_bytes": _logged() - logged,
            "phases": phases,
            # Waits on AWS calls made on the handler's thread (a single event's are all there).
            "aws_wall": self.counter.seconds - aws,
        }


def _invoke_traced(function: Any, event: dict[str, Any]) -> Any:
    """Invoke as Lambda does with tracing active: each invocation its own sampled trace header."""
    os.environ["_X_AMZN_TRACE_ID"] = (
        f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=1"
    )
    return function.invoke(event)


def own_ratios(row: dict[str, Any]) -> list[float]:
    """Each round's urllib3 wall time over the hub's own (its AWS waits excluded): the fan-out goal."""
    return [r["urllib3_wall"] / (r["hub_wall"] - r["aws_wall"]) for r in row["rounds"]]


def whole_ratios(row: dict[str, Any]) -> list[float]:
    """Each round's urllib3 wall time over the whole handler's."""
    return [r["urllib3_wall"] / r["hub_wall"] for r in row["rounds"]]


def cpu_per_delivery(row: dict[str, Any]) -> tuple[list[float], list[float]]:
    """Each round's client CPU seconds per delivery: the hub's (per delivery that arrived) and
    urllib3's (per POST it made)."""
    rounds = row["rounds"]
    return [r["hub_cpu"] / r["deliveries"] for r in rounds], [r["urllib3_cpu"] / r["posts"] for r in rounds]


def cpu_ratios(row: dict[str, Any]) -> list[float]:
    """Each round's client CPU per delivery, the hub's over urllib3's."""
    hub, lib = cpu_per_delivery(row)
    return [ours / theirs for ours, theirs in zip(hub, lib, strict=True)]


def _event_jti(body: str) -> str:
    message = json.loads(body)
    return str(message["claims"]["jti"] if "claims" in message else message["payload"]["jti"])


def _logged() -> int:
    """Bytes written to stdout so far (it is a file: see ``bench.__main__``)."""
    sys.stdout.flush()
    return os.fstat(sys.stdout.fileno()).st_size


def _farm_posts(ports: list[int]) -> int:
    import urllib.request  # noqa: PLC0415

    total = 0
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=10) as response:
            total += int(json.loads(response.read())["posts"])
    return total


def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    bench = Bench(spec)
    started = time.perf_counter()
    bench.subscribe(sorted(set(spec["sizes"])))
    setup_seconds = time.perf_counter() - started
    function = bench.load_dispatch()
    rows = []
    for row in spec["rows"]:
        rows.append(
            bench.row(
                function,
                row["name"],
                row["events"],
                row["subscribers"],
                shard_size=row.get("shard_size") or SINGLE_SHARD,
                note=row.get("note", ""),
                repeats=spec.get("repeats", REPEATS),
            )
        )
        print(f"bench: {row['name']} done", file=sys.stderr, flush=True)
    ingest = [bench.ingest(batch, requests, with_jti) for batch, requests, with_jti in spec["ingest"]]
    memory = {
        logical_id: function_spec.memory_size
        for logical_id, function_spec in bench.provisioned.functions.items()
    }
    Path(out_path).write_text(
        json.dumps(
            {
                "rows": [asdict(row) for row in rows],
                "ingest": ingest,
                "setup_seconds": setup_seconds,
                "memory_mb": memory,
                "concurrency": bench.concurrency,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
