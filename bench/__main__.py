"""``make bench``: every benchmark in one run, one table printed and written to docs/benchmarks.md.

Processes: the receiver farm (``bench.farm``) and moto (``bench.aws``) run in processes
of their own; the fan-out and ingest measurements run in a worker (``bench.fanout``)
whose stdout takes the handlers' logs; cold starts in fresh interpreters; the end to
end rows against ``python -m devstack``. ``--quick`` scales everything down (a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import coldstart, cost, costrows, e2e, emulator, ssf
from bench.aws import start_moto
from bench.fanout import cpu_per_delivery, cpu_ratios, own_ratios, whole_ratios
from bench.farm import start_farm
from bench.report import Line, machine, markdown, spread, table

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
FARM_PROCESSES = 4
CONCURRENCY = 32
"""SETHUB_DELIVERY_CONCURRENCY, the template's value; the baselines use as many threads."""


def _spec(quick: bool, aws_env: dict[str, str], ports: list[int]) -> dict[str, Any]:
    big = 200 if quick else 1000
    return {
        "aws_env": aws_env,
        "ports": ports,
        "concurrency": CONCURRENCY,
        "sizes": [10, 100, big],
        "rows": [
            {"name": "1 event x 10", "events": 1, "subscribers": 10},
            {"name": "1 event x 100", "events": 1, "subscribers": 100},
            {"name": f"1 event x {big}", "events": 1, "subscribers": big, "note": "one invocation"},
            {
                "name": f"1 event x {big}, sharded",
                "events": 1,
                "subscribers": big,
                "shard_size": 200,
                "note": "SETHUB_SHARD_SIZE=200: shard messages drained through the handler",
            },
            {"name": "100 events x 10", "events": 20 if quick else 100, "subscribers": 10},
        ],
        "ingest": [
            [100, 2 if quick else 5, True],
            [100, 2 if quick else 5, False],
            [1, 5 if quick else 20, True],
            [1, 5 if quick else 20, False],
        ],
    }


def _fanout(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    spec_path, out_path, log_path = workdir / "spec.json", workdir / "out.json", workdir / "handlers.log"
    spec_path.write_text(json.dumps(spec))
    with log_path.open("wb") as log:
        code = subprocess.call(
            [sys.executable, "-m", "bench.fanout", str(spec_path), str(out_path)], cwd=ROOT, stdout=log
        )
    if code != 0:
        raise SystemExit(f"bench: the fan-out worker failed ({code}); its log: {log_path}")
    result: dict[str, Any] = json.loads(out_path.read_text())
    return result


def _load(averages: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.1f}" for value in averages)


def _rate(count: float, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s" if seconds else "-"


def _phase_note(phases: dict[str, float]) -> str:
    order = [
        "validate",
        "topic check",
        "jti claims",
        "query",
        "sign",
        "deliver",
        "settle+log",
        "records",
        "records wait",
        "sqs send",
    ]
    parts = [f"{name} {phases[name] * 1000:,.0f}" for name in order if phases.get(name)]
    return "time in ms: " + ", ".join(parts) if parts else ""


def _fanout_lines(rows: list[dict[str, Any]]) -> list[Line]:
    lines = []
    for row in rows:
        n = row["deliveries"] or row["events"] * row["subscribers"]

        def cell(wall: float, cpu: float, n: int = n) -> str:
            return f"{_rate(n, wall)}, {cpu / n * 1e6:,.0f} µs CPU"

        errors = f"; {row['hub_errors']} hub errors" if row["hub_errors"] else ""
        note = f"{row['invocations']} invocation(s)" + (f"; {row['note']}" if row["note"] else "") + errors
        note += f"; {_phase_note(row['phases'])}; AWS waits {row['aws_wall'] * 1000:,.0f}"
        lines.append(
            Line(
                f"fan-out {row['name']}",
                cell(row["hub_wall"], row["hub_cpu"]),
                cell(row["urllib3_wall"], row["urllib3_cpu"]),
                cell(row["requests_wall"], row["requests_cpu"]),
                spread(whole_ratios(row)),
                note,
            )
        )
    return lines


def _calls_line(row: dict[str, Any]) -> Line:
    events = row["events"]
    calls = row["calls"]
    per_event = ", ".join(f"{name} {count / events:g}" for name, count in sorted(calls.items()))
    return Line(
        "AWS calls per event (100 x 10)",
        f"Sign {calls.get('kms.Sign', 0) / events:g}, Query {calls.get('dynamodb.Query', 0) / events:g}",
        note=f"all calls per event: {per_event}; SQS batches of 10",
    )


def _emulator_lines(emulated: emulator.EmulatorResult) -> list[Line]:
    if emulated.not_measured:
        return [Line("cold start in the emulator (sam local)", emulated.not_measured)]
    lines = []
    for start in emulated.starts:
        rss = f"peak RSS {start.peak_rss_mb:,.0f} MB" if start.peak_rss_mb is not None else "peak RSS unknown"
        cpu = f"runtime CPU {start.cpu_ms:,.0f} ms" if start.cpu_ms is not None else "runtime CPU unknown"
        if start.cpu_wait_ms is not None:
            cpu += f" + {start.cpu_wait_ms:,.0f} ms waiting for a CPU"
        note = (
            f"init ≈ {start.init_ms:,.0f} ms (first - warm); {cpu}; {start.memory_size_mb} MB configured; "
            f"event: {start.event}; AWS calls (moto): first {emulator.calls_text(start.first_calls)}, "
            f"warm {emulator.calls_text(start.warm_calls)}; the emulator reported Init Duration "
            f"{start.reported_init_ms} ms and Max Memory Used {start.reported_max_memory_mb:g} MB "
            "(not measurements)"
        )
        if start.function_error:
            note += f"; the bench event ended in {start.function_error}"
        lines.append(
            Line(
                f"cold start in the emulator: {start.function}",
                f"first invoke {start.first_ms:,.0f} ms, warm {start.warm_ms:,.0f} ms, {rss}",
                note=note,
            )
        )
    return lines


def _coldstart_lines(colds: dict[str, coldstart.Imports]) -> list[Line]:
    boto3 = colds["boto3"]
    lines = []
    for name, imports in colds.items():
        cpu_ms = [value * 1000 for value in imports.cpu]
        wall_ms = [value * 1000 for value in imports.wall]
        cell = (
            f"{statistics.median(cpu_ms):,.0f} ms CPU ({min(cpu_ms):,.0f}-{max(cpu_ms):,.0f}), "
            f"wall {statistics.median(wall_ms):,.0f} ms ({min(wall_ms):,.0f}-{max(wall_ms):,.0f})"
        )
        ratio = imports.cpu_median / boto3.cpu_median
        lines.append(
            Line(
                f"cold start: import {name}",
                cell,
                ratio="" if name == "boto3" else f"{ratio:.2f} of boto3 (goal <= {coldstart.TARGET_RATIO:g})",
                note=f"median (min-max) of {len(imports.cpu)} fresh interpreters, Lambda's environment"
                + ("" if name == "boto3" else f"; wall {imports.median / boto3.median:.2f} of boto3"),
            )
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, not written to docs/")
    parser.add_argument("--no-e2e", action="store_true", help="skip the local stack rows")
    parser.add_argument("--no-emulator", action="store_true", help="skip the sam local (Docker) rows")
    args = parser.parse_args(argv)
    started = time.monotonic()
    description = machine()
    load_before = os.getloadavg()
    print(f"bench: {description}", file=sys.stderr)
    farm = start_farm(FARM_PROCESSES)
    moto = start_moto()
    try:
        with tempfile.TemporaryDirectory(prefix="sethub-bench-") as tmp:
            print("bench: fan-out and ingest (worker process)", file=sys.stderr, flush=True)
            result = _fanout(_spec(args.quick, moto.env(), farm.ports), Path(tmp))
            print("bench: SSF push streams and signing (worker process)", file=sys.stderr, flush=True)
            ssf_result = ssf.measure(moto.env(), farm.ports, Path(tmp), quick=args.quick)
            print("bench: cold starts", file=sys.stderr, flush=True)
            colds = coldstart.measure(moto.env(), runs=2 if args.quick else 5)
            end_to_end = None
            if not args.no_e2e:
                print("bench: end to end on the local stack", file=sys.stderr, flush=True)
                end_to_end = e2e.measure(
                    farm,
                    latency_events=40 if args.quick else 100,
                    rate=20.0,
                    subscribers=20 if args.quick else 100,
                    publishes=10 if args.quick else 30,
                )
    finally:
        moto.stop()
        farm.stop()
    # After moto and the farm have stopped: the containers get the machine to themselves.
    emulated = emulator.EmulatorResult([], "not measured: --no-emulator")
    if not args.no_emulator:
        print("bench: cold starts in the Lambda runtime emulator (sam local)", file=sys.stderr, flush=True)
        emulated = emulator.measure()

    rows = result["rows"]
    lines = _fanout_lines(rows)
    headline = next(row for row in rows if row["subscribers"] >= 200 and not row["note"].startswith("SETHUB"))
    # moto answers a Query of 1000 items in seconds, DynamoDB in tens of milliseconds: the
    # hub without its AWS waits is the part this code controls (deliveries, logs, records' CPU).
    own = headline["hub_wall"] - headline["aws_wall"]
    n = headline["deliveries"]
    rounds = len(headline["rounds"])
    lines.append(
        Line(
            f"fan-out 1 event x {headline['subscribers']}, AWS waits excluded",
            f"{_rate(n, own)}",
            _rate(n, headline["urllib3_wall"]),
            _rate(n, headline["requests_wall"]),
            f"{spread(own_ratios(headline))} (goal >= 0.85)",
            f"median (min-max) of {rounds} rounds; handler wall time minus the "
            f"{headline['aws_wall'] * 1000:,.0f} ms it spent waiting on AWS "
            "(Query, Sign, and the BatchWriteItems still running once the deliveries were settled; "
            "those overlapping the deliveries are not subtracted)",
        )
    )
    hub_cpu, lib_cpu = cpu_per_delivery(headline)
    lines.append(
        Line(
            f"fan-out 1 event x {headline['subscribers']}, client CPU per delivery",
            spread(hub_cpu, " µs", 1e6, 0),
            spread(lib_cpu, " µs", 1e6, 0),
            ratio=f"{spread(cpu_ratios(headline))}x (goal <= 1.3)",
            note=f"median (min-max) of {rounds} rounds; process CPU time over deliveries, each round's "
            "ratio taken within the round",
        )
    )
    lines.append(_calls_line(next(row for row in rows if row["events"] > 1)))
    lines += ssf.lines(ssf_result)
    lines += _coldstart_lines(colds)
    lines += _emulator_lines(emulated)
    for item in result["ingest"]:
        jti = "publisher jti (idempotency marker per event)" if item["with_jti"] else "no publisher jti"
        lines.append(
            Line(
                f"ingest, batches of {item['batch']}",
                f"{_rate(item['accepted'], item['wall'])}, {item['cpu'] / item['events'] * 1e6:,.0f} µs CPU",
                note=f"{jti}; {item['wall'] / item['requests'] * 1000:,.0f} ms per request; "
                f"{_phase_note(item['phases'])}",
            )
        )
    if end_to_end:
        p50, p99 = end_to_end["p50s"], end_to_end["p99s"]
        lines.append(
            Line(
                "e2e publish-to-delivery latency",
                f"p50 {spread(p50, ' ms', 1e3, 0)}, p99 {spread(p99, ' ms', 1e3, 0)}",
                ratio=f"{statistics.median(p50) / 0.050:.2f}, {statistics.median(p99) / 0.250:.2f} of goal",
                note=f"goal p50 <= 50 ms, p99 <= 250 ms; 1 subscriber, median (min-max) of "
                f"{end_to_end['latency_runs']} runs of {end_to_end['latency_events']} events at "
                f"{end_to_end['rate']:g}/s after a warm-up; BatchingWindowSeconds 0",
            )
        )
        lines.append(
            Line(
                "e2e fan-out through make local",
                _rate(end_to_end["deliveries"], end_to_end["seconds"]),
                note=f"{end_to_end['subscribers']} subscribers x {end_to_end['publishes']} publishes",
            )
        )
    prices = cost.Prices()
    priced = costrows.scenarios(result)
    lines += costrows.lines(priced, prices)

    body = table(lines)
    load_after = os.getloadavg()
    notes = [
        f"Machine load: 1/5/15-minute load averages {_load(load_before)} at the start and "
        f"{_load(load_after)} at the end, on {os.cpu_count()} cores"
        + (
            ": the machine was shared and loaded during this run (other processes than the bench's "
            "were runnable), so wall times and rates are pessimistic and noisier than on an idle "
            "machine; ratios within a row are taken in the same run."
            if max(load_before[0], load_after[0]) > (os.cpu_count() or 1)
            else "."
        ),
        f"Headline: sethub / bare urllib3 at 1 x {headline['subscribers']} (one invocation), median "
        f"(min-max) of {rounds} rounds: {spread(whole_ratios(headline))}; without the time spent waiting "
        f"on AWS (moto) calls: **{spread(own_ratios(headline))}** (goal 0.85); client CPU per delivery "
        f"**{spread(cpu_ratios(headline))}x** urllib3's (goal 1.3).",
        f"Where the time goes at 1 x {n}: {headline['aws_wall'] * 1000:,.0f} ms waiting on AWS calls "
        f"(the subscription Query {headline['phases'].get('query', 0) * 1000:,.0f} ms: moto scans its whole "
        f"table on every Query, DynamoDB does not), {headline['phases'].get('records', 0) * 1000:,.0f} ms "
        f"writing {n} delivery records ({headline['calls'].get('dynamodb.BatchWriteItem', 0)} "
        "BatchWriteItem calls of 25, summed over the writer threads, each started as soon as its 25 "
        "outcomes were settled, so they overlap the deliveries; the handler then waited "
        f"{headline['phases'].get('records wait', 0) * 1000:,.0f} ms for the last ones), and "
        f"{headline['phases'].get('settle+log', 0) * 1000:,.0f} ms settling the outcomes on one thread "
        f"({headline['log_bytes'] / max(n, 1):,.0f} bytes of logs per delivery: successes are logged "
        "at DEBUG, plus one summary line per event).",
        "Fan-out cells: deliveries per second, then client CPU per delivery (process CPU time / deliveries). "
        f"Concurrency {result['concurrency']} (SETHUB_DELIVERY_CONCURRENCY) for the hub and both baselines; "
        f"the receiver farm is {FARM_PROCESSES} processes on 127.0.0.1, one ThreadingHTTPServer port each, "
        "HTTP/1.1 keep-alive, `202` with an empty body; callbacks are spread round-robin over its ports. "
        "The baselines POST the hub's very requests: its body and its headers (DESIGN.md's, for a jwt "
        "subscription without a secret).",
        "sethub rows time the dispatch handler (`functions/dispatch/dispatch_handler.handler`, "
        "Powertools and all) on SQS events of up to 10 messages: the subscription Query, the KMS Sign, "
        "the deliveries, the "
        "delivery-record BatchWriteItems and its logging (to a file). SQS receives are Lambda's, not timed. "
        "Each row follows an untimed warm-up invocation (a warm container); baselines warm their pools too. "
        f"Each row is {rounds} rounds, each timing the hub, then urllib3, then requests over the same "
        "POSTs; a row's cells are its median round (by the hub's time, AWS waits excluded) and its "
        "ratios the median (min-max) of the rounds' ratios (this 2-core machine is shared: best-of-2 "
        "runs once swung 2x). DynamoDB capacity units are counted "
        "from the calls' items after the timed run, not on the handler's threads. "
        "The `time in ms` notes split the handler's wall time by library phase (summed over the row; "
        "`deliver` includes `settle+log`, which runs in its collection loop; `records` runs on "
        "threads of its own, beside `deliver`, and `records wait` is the part after it).",
        "The 1 x 1000 row sets SETHUB_SHARD_SIZE high so one invocation serves all 1000; the sharded row "
        "keeps the deployed 200 and drains the FanoutShard messages through the handler, counting them in.",
        "moto (the embedded AWS) runs in a process of its own, so its CPU is not charged to the hub, but "
        "every AWS call is a local HTTP round trip to a Python server, slower than DynamoDB/KMS in-region.",
        "Cold start: `time.process_time` (CPU) and `time.perf_counter` (wall) around the import of the "
        "handler module in a fresh interpreter (interpreter start-up excluded), with the variables Lambda "
        "sets for a function with `Tracing: Active` (`LAMBDA_TASK_ROOT`, the X-Ray daemon address): "
        "outside Lambda the X-Ray SDK builds two botocore clients for centralized sampling and Powertools "
        "turns tracing off, neither of which a deployed function does. Median (min-max) of "
        f"{len(colds['boto3'].wall)} rounds, the modules taking turns in each round. The ratio to `import "
        f"boto3` (goal <= {coldstart.TARGET_RATIO:g}) is taken on CPU time: on this shared machine the wall "
        "time of an import is mostly waiting for a core (see the wall column's spread). Handlers build "
        "their AWS clients on first use, not at import.",
        "Cold start in the emulator: `sam build` into a scratch folder, `sam local start-lambda "
        f"--warm-containers EAGER` on {emulator.IMAGE} (AWS's image or the stand-in of "
        "../shared/tools/lambda-runtime), each function invoked twice with the same event it can "
        "receive (the row names it): one it answers without AWS where it has one, else the nearest it "
        "receives in AWS, whose calls go to a moto server the containers reach (the template's tables, "
        "empty; each row lists the calls). The emulator starts the runtime on the first invoke and "
        "its REPORT line gives an Init "
        "Duration under a millisecond and Max Memory Used equal to the memory size, so neither is used: "
        "the first invoke's REPORT Duration (runtime start, imports, first event) and the second's (warm) "
        "are shown, their difference estimates the init; memory is the peak resident set (VmHWM) of the "
        "runtime's python process after both invokes, read inside the container, with its CPU time and "
        "its wait for a CPU (/proc/PID/schedstat): on a loaded machine most of first - warm is that wait.",
        "Ingest: API Gateway proxy events handed to `ingest_handler.handler`, which checks the API key, "
        "validates, checks the topic, claims jti markers and sends to SQS in batches of 10.",
        "End to end: `python -m devstack` as a subprocess on free ports (its own moto, in a process of its "
        "own: devstack.motoserver); the publish time is "
        "taken before each POST /events, the arrival time by the farm; the events queue's "
        "batching window (template parameter BatchingWindowSeconds, default 0: "
        "each event is handed to dispatch as soon as a poller receives it) is part of the latency.",
        costrows.assumptions(priced, prices),
        costrows.window_tradeoff(priced, prices),
        f"Set-up outside the timed phases (provisioning, {sum({r['subscribers'] for r in rows})} "
        "subscriptions: 5 per topic through the store's request/verify/apply path, the rest batch-written "
        "as the same item, then read back through the store): "
        f"{result['setup_seconds']:.1f} s. Whole run: "
        f"{time.monotonic() - started:.0f} s.",
    ]
    print(body)
    print()
    print(costrows.table(priced, prices))
    print()
    for note in notes[:1]:
        print(note.replace("**", ""))
    if not args.quick:
        cost_section = "## Cost per million events x 10 subscribers, every line\n\n" + costrows.table(
            priced, prices
        )
        DOC.write_text(markdown(description, body, notes, sections=[cost_section]))
        print(f"bench: written to {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
