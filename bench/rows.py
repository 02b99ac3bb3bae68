"""One speed row of ``make bench``, run several times: ``python -m bench.rows fanout|coldstart|latency``.

For checking a change to the hot path without the whole run (about 12 minutes): each
row is measured as ``make bench`` measures it and printed as the median (min-max) of
``--runs`` runs, with the machine's load averages. Nothing is written to docs/.

- ``fanout``: 1 event x 1000 subscribers, one invocation, ``--runs`` rounds of hub then
  baselines (as ``make bench`` times each row): sethub / bare urllib3 with AWS waits excluded (goal
  >= 0.85) and client CPU per delivery beside urllib3's (goal <= 1.3x);
- ``coldstart``: each handler's import, CPU, in fresh interpreters beside ``import boto3``
  (goal <= 1.3x); with ``--emulator``, beside it the function's init in the Lambda runtime
  emulator (``bench.emulator``: one start of each, after the imports are measured);
- ``latency``: publish-to-delivery through ``make local``, 1 subscriber, 100 events at 20/s
  per run (goal p50 <= 50 ms, p99 <= 250 ms).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import coldstart, e2e, emulator
from bench.__main__ import CONCURRENCY, FARM_PROCESSES, _fanout
from bench.aws import start_moto
from bench.fanout import cpu_per_delivery, cpu_ratios, own_ratios, whole_ratios
from bench.farm import start_farm
from bench.report import spread
from devstack.template import load_template

BIG = 1000


def _load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg()) + f" on {os.cpu_count()} cores"


def fanout(runs: int) -> list[str]:
    farm, moto = start_farm(FARM_PROCESSES), start_moto()
    try:
        row = {"name": f"1 event x {BIG}", "events": 1, "subscribers": BIG, "note": "one invocation"}
        spec: dict[str, Any] = {
            "aws_env": moto.env(),
            "ports": farm.ports,
            "concurrency": CONCURRENCY,
            "sizes": [BIG],
            "rows": [row],
            "repeats": runs,
            "ingest": [],
        }
        with tempfile.TemporaryDirectory(prefix="sethub-bench-") as tmp:
            (measured,) = _fanout(spec, Path(tmp))["rows"]
    finally:
        moto.stop()
        farm.stop()
    rounds = measured["rounds"]
    hub_cpu, lib_cpu = cpu_per_delivery(measured)
    return [
        f"fan-out 1 x {BIG}, AWS waits excluded: sethub / urllib3 {spread(own_ratios(measured))}"
        " (goal >= 0.85)",
        f"fan-out 1 x {BIG}, whole handler: sethub / urllib3 {spread(whole_ratios(measured))}",
        f"client CPU per delivery: sethub {spread(hub_cpu, ' µs', 1e6, 0)}, urllib3 "
        f"{spread(lib_cpu, ' µs', 1e6, 0)}, ratio {spread(cpu_ratios(measured))}"
        " (goal <= 1.3)",
        f"{len(rounds)} rounds, {measured['hub_errors']} hub errors",
    ]


def cold(runs: int, *, with_emulator: bool = False) -> list[str]:
    moto = start_moto()
    try:
        colds = coldstart.measure(moto.env(), runs=runs)
    finally:
        moto.stop()
    # After the imports, so the emulator's build and containers do not load their runs.
    emulated = emulator.measure() if with_emulator else None
    inits = _emulator_inits(emulated)
    boto3 = colds.pop("boto3")
    lines = [f"import boto3: {spread(boto3.cpu, ' ms', 1e3, 0)} CPU"]
    for name, imports in colds.items():
        ratio = imports.cpu_median / boto3.cpu_median
        init = f"; {inits.get(name, 'emulator: not measured')}" if emulated else ""
        lines.append(
            f"import {name}: {spread(imports.cpu, ' ms', 1e3, 0)} CPU, {ratio:.2f} of boto3 "
            f"(goal <= {coldstart.TARGET_RATIO:g}){init}"
        )
    lines.append(f"median (min-max) of {runs} fresh interpreters each, taking turns")
    if emulated and emulated.not_measured:
        lines.append(f"emulator {emulated.not_measured}")
    elif emulated:
        lines.append(
            "emulator init: first invoke less a warm one, one start each (bench.emulator); "
            f"layer modules with usable bytecode: {emulated.layer_bytecode}"
        )
    return lines


def _emulator_inits(emulated: emulator.EmulatorResult | None) -> dict[str, str]:
    """Each handler's emulator init as a phrase, by handler module."""
    if emulated is None or emulated.not_measured:
        return {}
    starts = {start.function: start for start in emulated.starts}
    inits = {}
    for handler, function in coldstart.handler_functions(
        load_template(coldstart.ROOT / "template.yaml")
    ).items():
        start = starts.get(function)
        if start is None:
            continue
        error = f", its event ended in {start.function_error}" if start.function_error else ""
        inits[handler] = f"emulator init ≈ {start.init_ms:,.0f} ms ({function}{error})"
    return inits


def latency(runs: int) -> list[str]:
    farm = start_farm(1)
    try:
        measured = e2e.measure(
            farm, latency_events=100, rate=20.0, subscribers=1, publishes=1, latency_runs=runs
        )
    finally:
        farm.stop()
    return [
        f"publish-to-delivery p50 {spread(measured['p50s'], ' ms', 1e3, 0)}, p99 "
        f"{spread(measured['p99s'], ' ms', 1e3, 0)} (goal p50 <= 50 ms, p99 <= 250 ms)",
        f"of which POST /events answered p50 {spread(measured['ingest_p50s'], ' ms', 1e3, 0)}, then to "
        f"the arrival (queue wait, dispatch) p50 {spread(measured['after_accept_p50s'], ' ms', 1e3, 0)}",
        f"{runs} runs of 100 events at 20/s, 1 subscriber, after a warm-up",
    ]


ROWS = {"fanout": fanout, "coldstart": cold, "latency": latency}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rows", description=__doc__.splitlines()[0])
    parser.add_argument("row", choices=sorted(ROWS))
    parser.add_argument("--runs", type=int, default=5, help="runs of the row (default 5)")
    parser.add_argument(
        "--emulator",
        action="store_true",
        help="coldstart only: each function's init in the Lambda runtime emulator too (Docker)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.emulator and args.row != "coldstart":
        parser.error("--emulator goes with the coldstart row only")
    before = _load()
    lines = cold(args.runs, with_emulator=True) if args.emulator else ROWS[args.row](args.runs)
    for line in lines:
        print(line)
    print(f"load averages {before} at the start, {_load()} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
