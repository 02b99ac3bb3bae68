"""``python -m bench.costrun``: only the runs the cost rows need, and the cost rows.

The full ``make bench`` takes about ten minutes of both cores; the cost model needs only
the 10-subscriber dispatch rows (one event, and a full batch) and the one-event ingest
requests (with and without a publisher ``jti``). Same worker, same moto, same farm as
``make bench``; prints the cost rows, every line of each scenario and the assumptions, and
with ``--write`` replaces the cost section of docs/benchmarks.md (the rest of that page
is ``make bench``'s).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import cost, costrows
from bench.__main__ import CONCURRENCY, DOC, FARM_PROCESSES, _fanout
from bench.aws import start_moto
from bench.farm import start_farm
from bench.report import table

COST_HEADING = "## Cost per million events x 10 subscribers, every line"


def spec(aws_env: dict[str, str], ports: list[int], requests: int) -> dict[str, Any]:
    return {
        "aws_env": aws_env,
        "ports": ports,
        "concurrency": CONCURRENCY,
        "sizes": [10],
        "rows": [
            {"name": "1 event x 10", "events": 1, "subscribers": 10},
            {"name": "100 events x 10", "events": 100, "subscribers": 10},
        ],
        "ingest": [[1, requests, True], [1, requests, False]],
    }


def section(found: list[costrows.Scenario], prices: cost.Prices, *, intro: str = "") -> str:
    return "\n\n".join(
        [
            COST_HEADING,
            *([intro] if intro else []),
            costrows.table(found, prices),
            costrows.assumptions(found, prices),
            costrows.window_tradeoff(found, prices),
        ]
    )


def write_section(doc: Path, text: str) -> None:
    """Replace the cost section of ``doc`` (up to the next ``## `` heading) with ``text``."""
    page = doc.read_text()
    pattern = re.compile(re.escape(COST_HEADING) + r".*?(?=\n## |\Z)", re.DOTALL)
    if not pattern.search(page):
        raise SystemExit(f"bench.costrun: no {COST_HEADING!r} section in {doc.name}")
    doc.write_text(pattern.sub(lambda _match: text + "\n", page, count=1))


def _per_event(measured: dict[str, Any]) -> str:
    calls: dict[str, float] = measured["calls"]
    return ", ".join(f"{name} {count / measured['events']:.3g}" for name, count in sorted(calls.items()))


GOAL_SCENARIO = f"{costrows.CHEAPEST_HTTP.label()}, full batches, no publisher jti"
"""The row the goal is judged on (the median run's table is shown)."""


def spread(runs: list[list[costrows.Scenario]], prices: cost.Prices) -> str:
    """Markdown: each scenario's total, median (min-max) over the runs."""
    totals: dict[str, list[float]] = {}
    for found in runs:
        for scenario in found:
            totals.setdefault(scenario.name, []).append(
                cost.cost_per_events(scenario.usage, prices)[-1].dollars
            )
    render = [
        f"| scenario | median of {len(runs)} runs (min-max) | of the $3.00 goal |",
        "|---|---|---|",
    ]
    for name, values in totals.items():
        middle = statistics.median(values)
        render.append(
            f"| {name} | ${middle:,.2f} (${min(values):,.2f}-${max(values):,.2f}) "
            f"| {middle / cost.GOAL_DOLLARS:.2f} |"
        )
    return "\n".join(render)


def median_run(runs: list[list[costrows.Scenario]], prices: cost.Prices) -> list[costrows.Scenario]:
    """The run whose goal-row total is the median (the lower one of an even count)."""

    def goal_total(found: list[costrows.Scenario]) -> float:
        scenario = next(item for item in found if item.name == GOAL_SCENARIO)
        return cost.cost_per_events(scenario.usage, prices)[-1].dollars

    ordered = sorted(runs, key=goal_total)
    return ordered[(len(ordered) - 1) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.costrun", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="one-event POST /events per ingest row")
    parser.add_argument("--runs", type=int, default=5, help="measurement runs (the median run is shown)")
    parser.add_argument("--write", action="store_true", help="replace the cost section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    farm = start_farm(FARM_PROCESSES)
    moto = start_moto()
    results = []
    try:
        for run in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="sethub-costrun-") as tmp:
                results.append(_fanout(spec(moto.env(), farm.ports, args.requests), Path(tmp)))
            print(f"bench.costrun: run {run + 1} of {args.runs} done", file=sys.stderr, flush=True)
    finally:
        moto.stop()
        farm.stop()
    prices = cost.Prices()
    runs = [costrows.scenarios(result) for result in results]
    found = median_run(runs, prices)
    result = results[runs.index(found)]
    print(table(costrows.lines(found, prices)))
    print()
    intro = (
        f"Written by `python -m bench.costrun` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load averages {'/'.join(f'{value:.1f}' for value in os.getloadavg())} on {os.cpu_count()} cores): "
        f"the median of {len(runs)} runs (by the goal row's total; every total's min-max below). It "
        "can be newer than the cost rows of the table above, which `make bench` writes."
    )
    text = section(found, prices, intro=intro) + "\n\n" + spread(runs, prices)
    print(text)
    for item in result["ingest"]:
        per_request = item["log_bytes"] / item["requests"]
        print(f"ingest log bytes per request (publisher jti {item['with_jti']}): {per_request:,.0f}")
    for row in result["rows"]:
        print(f"dispatch log bytes per event ({row['name']}): {row['log_bytes'] / row['events']:,.0f}")
    # The counted calls and capacity units behind the table, per event.
    for item in result["ingest"]:
        print(f"ingest calls per event (publisher jti {item['with_jti']}): {_per_event(item)}")
    for row in result["rows"]:
        print(f"dispatch calls per event ({row['name']}): {_per_event(row)}")
    if args.write:
        write_section(DOC, text)
        print(f"bench.costrun: cost section written to {DOC.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
