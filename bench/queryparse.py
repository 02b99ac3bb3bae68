"""Per item CPU of reading a 1000-subscription Query page: ``python -m bench.queryparse``.

The page is the fan-out bench's (the attributes ``SubscriptionStore.list_active`` projects,
plus a stored last outcome), parsed as botocore's endpoint would: by botocore's own parser,
and with ``sethub.queryjson``'s ``before-parse`` handler first. Then the store's mapping of
the items to ``Subscription`` (what dispatch gets) and ``due_outcomes`` of 1000 successful
deliveries. Each figure is the fastest of ``--runs`` runs (the least disturbed on a shared
machine), per item, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import botocore.session
from botocore.parsers import create_parser

from sethub import queryjson

ITEMS = 1000


def _page() -> bytes:
    items = [
        {
            "sk": {"S": f"SUB#{index:064x}"},
            "callback": {"S": f"http://127.0.0.1:8001/cb/bench.fanout.1000/{index}"},
            "requested_at": {"N": str(time.time_ns())},
            "format": {"S": "jwt"},
            "lease_seconds": {"N": "864000"},
            "expires_at": {"N": str(int(time.time()) + 864000)},
            "last_outcome": {"S": "delivered"},
            "last_outcome_at": {"N": f"{time.time():.3f}"},
        }
        for index in range(ITEMS)
    ]
    return json.dumps({"Count": ITEMS, "Items": items, "ScannedCount": ITEMS}).encode()


def _fastest(runs: int, work: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    operation = botocore.session.get_session().get_service_model("dynamodb").operation_model("Query")
    json_parser = create_parser("json")
    shape = operation.output_shape
    assert shape is not None
    body = _page()

    def botocore_parse() -> dict[str, Any]:
        response = {"status_code": 200, "headers": {}, "body": body}
        parsed: dict[str, Any] = json_parser.parse(response, shape)
        return parsed

    def hooked_parse() -> dict[str, Any]:
        response: dict[str, Any] = {"status_code": 200, "headers": {}, "body": body}
        customised: dict[str, Any] = {}
        queryjson.read_items(operation, response, customised)
        parsed: dict[str, Any] = json_parser.parse(response, shape)
        parsed.update(customised)
        return parsed

    assert hooked_parse() == botocore_parse(), "the two parses differ"
    rows = [
        ("botocore's parser", _fastest(runs, botocore_parse)),
        ("sethub.queryjson", _fastest(runs, hooked_parse)),
    ]
    rows += _store_rows(runs, hooked_parse)
    load = "/".join(f"{value:.1f}" for value in os.getloadavg())
    for name, seconds in rows:
        print(f"{name:<40} {seconds * 1e6 / ITEMS:6.2f} µs per item")
    print(f"({ITEMS} items, fastest of {runs} runs; load average {load} on {os.cpu_count()} cores)")


def _store_rows(runs: int, parse: Callable[[], dict[str, Any]]) -> list[tuple[str, float]]:
    """The store's share: items to Subscriptions, and the last-outcome check of their deliveries."""
    from sethub.clients import AwsClients  # noqa: PLC0415
    from sethub.records import Attempt  # noqa: PLC0415
    from sethub.settings import Settings  # noqa: PLC0415
    from sethub.store import SubscriptionStore  # noqa: PLC0415

    store = SubscriptionStore(AwsClients(), Settings(table_name="bench"))
    topic = "bench.fanout.1000"
    items = parse()["Items"]
    subscription = store._subscription  # what list_active does per item
    subscriptions = [subscription(topic, item) for item in items]
    at = time.time()
    attempts = [Attempt("jti", topic, s.callback, 1, "ok", at, 200) for s in subscriptions]
    assert not store.due_outcomes(attempts)
    return [
        (
            "store: items -> Subscription",
            _fastest(runs, lambda: [store._subscription(topic, i) for i in items]),
        ),
        ("store: due_outcomes, all delivered", _fastest(runs, lambda: store.due_outcomes(attempts))),
    ]


if __name__ == "__main__":
    main()
