"""The cost rows of ``make bench``: the measured run priced in each deployment scenario.

A scenario is a deployment (template parameters) and a batching regime. The deployment:

- ``Ingress``: ``rest``, the REST API with usage-plan keys ($3.50 per million requests), or
  ``http``, the HTTP API ($1.00) behind the API-key authorizer, whose answer API Gateway
  caches per key for ``AUTHORIZER_TTL_SECONDS`` (``PUBLISHER_KEYS`` keys publishing);
- ``Tracing``: ``Active`` (X-Ray's sampling, below) or ``PassThrough`` (no traces);
- ``SystemLogLevel``: ``INFO`` (Lambda's START/END/REPORT lines for every invocation) or
  ``WARN`` (none of them);
- ``Architecture``: ``x86_64`` or ``arm64`` (Graviton: less per GB-s). The arm64 column takes
  the durations measured here on x86_64: the emulator runs x86_64 only.

The batching regime:

- full batches: dispatch invoked with 10 events (100 events/s with ``BatchingWindowSeconds``
  of 1, or any rate with a window long enough to fill a batch); X-Ray then records about 6 %;
- batches of one: a million events spread over a month (0.39/s) with the default window
  of 0, so each event is an invocation of its own and X-Ray records every one of them.

Durations are the handlers' own time measured here with each wait on moto (a local
Python server, often the slowest part of a run) replaced by ``IN_REGION_CALL_MS`` per AWS
call; requests and capacity units are the counted ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from bench import cost
from bench.report import Line
from sethub.credentials.ratelimit import MAX_COLD_BATCH
from sethub.settings import DEFAULT_EVENT_RETENTION_DAYS

IN_REGION_CALL_MS = 10.0
"""An AWS call from a function in the same region (DynamoDB, SQS: single-digit to ~10 ms)."""
FULL_BATCH_RATE = 100.0
"""Events per second in the full-batch scenarios."""
LOW_RATE = 1_000_000 / cost.SECONDS_PER_MONTH
"""A million events a month, evenly spread."""
KMS_KEYS = 1
"""The template's data key (it also wraps the signing key); SigningMode kms adds a signing key."""
SQS_MAPPINGS = 3
"""Events, retry and verify queue mappings."""
AUTHORIZER_TTL_SECONDS = 300
"""The template's AuthorizerResultTtlInSeconds."""
PUBLISHER_KEYS = 10
"""Keys publishing at once (each needs its own authorizer answer per TTL)."""
AUTHORIZER_MS = IN_REGION_CALL_MS + 5.0
"""One GetItem of the key record and a few ms of its own (not measured here)."""
AUTHORIZER_MEMORY_MB = 256
"""The template's MemorySize of AuthorizerFunction (the bench provisions Ingress=rest)."""
KEY_COUNTER_WRITES = 1 / MAX_COLD_BATCH
"""Ingress=http: ingest's per-key counters (sethub.credentials.ratelimit), one UpdateItem (a
write unit) per 25 requests of a key far from its limits per container at the default
KeyBurstLimit (each of the 10 keys at 10 requests/s of its 50); the bench's ingest runs REST
events, which count nothing, so it is added."""


@dataclass(frozen=True)
class Deployment:
    """The template parameters that change the cost table."""

    ingress: str = "rest"
    tracing: bool = True
    platform_logs: bool = True
    architecture: str = "x86_64"

    def label(self) -> str:
        parts = ["REST API" if self.ingress == "rest" else "HTTP API"]
        if not self.tracing:
            parts.append("Tracing PassThrough")
        if not self.platform_logs:
            parts.append("SystemLogLevel WARN")
        if self.architecture != "x86_64":
            parts.append(self.architecture)
        return ", ".join(parts)


DEFAULTS = Deployment()
CHEAPEST_HTTP = Deployment(ingress="http", tracing=False, platform_logs=False)


@dataclass(frozen=True)
class Scenario:
    name: str
    usage: cost.Usage


def _per_event(calls: dict[str, float], events: int) -> dict[str, float]:
    return {name: count / events for name, count in calls.items()}


def _in_region_ms(wall: float, aws_wall: float, calls: dict[str, float], invocations: int) -> float:
    """An invocation's duration in AWS: the handler's own time measured here, its waits on moto
    replaced by ``IN_REGION_CALL_MS`` per AWS call (capacity-unit counters are not calls)."""
    made = sum(count for name, count in calls.items() if "." in name)
    return ((wall - aws_wall) * 1000 + made * IN_REGION_CALL_MS) / invocations


def authorizer_invocations(rate: float) -> float:
    """Authorizer invocations per event: one per key and TTL while the keys keep publishing."""
    return min(1.0, PUBLISHER_KEYS / (rate * AUTHORIZER_TTL_SECONDS))


def usage(
    ingest: dict[str, Any],
    dispatch: dict[str, Any],
    memory: dict[str, int],
    *,
    rate: float,
    deployment: Deployment = DEFAULTS,
) -> cost.Usage:
    """Per event: one ``POST /events`` of one event (``ingest``), dispatch as measured in ``dispatch``."""
    i_calls = _per_event(ingest["calls"], ingest["events"])
    d_calls = _per_event(dispatch["calls"], dispatch["events"])
    invocations = dispatch["invocations"] / dispatch["events"]
    authorizer = authorizer_invocations(rate) if deployment.ingress == "http" else 0.0
    counters = KEY_COUNTER_WRITES if deployment.ingress == "http" else 0.0
    # Lambda's SQS poller: one ReceiveMessage and one DeleteMessageBatch per batch it hands over.
    poller = 2 * invocations
    platform = cost.PLATFORM_LOG_BYTES * (1 + invocations + authorizer) if deployment.platform_logs else 0.0
    logs = ingest["log_bytes"] / ingest["events"] + dispatch["log_bytes"] / dispatch["events"] + platform
    extra: tuple[cost.LambdaUse, ...] = ()
    if authorizer:
        extra = (
            cost.LambdaUse(
                "authorizer",
                authorizer,
                AUTHORIZER_MS,
                memory.get("AuthorizerFunction", AUTHORIZER_MEMORY_MB),
            ),
        )
    # A request and its ingest invocation are one trace; each dispatch invocation another
    # (an authorizer invocation is part of its request's trace).
    traces = cost.xray_traces([(1.0, rate), (invocations, rate * invocations)]) if deployment.tracing else 0.0
    return cost.Usage(
        functions=(
            cost.LambdaUse(
                "ingest",
                1.0,
                _in_region_ms(
                    ingest["wall"], ingest.get("aws_wall", 0.0), ingest["calls"], ingest["requests"]
                )
                + counters * IN_REGION_CALL_MS,
                memory["IngestFunction"],
            ),
            cost.LambdaUse(
                "dispatch",
                invocations,
                _in_region_ms(
                    dispatch["hub_wall"], dispatch["aws_wall"], dispatch["calls"], dispatch["invocations"]
                ),
                memory["DispatchFunction"],
            ),
            *extra,
        ),
        api_requests=1.0,
        sqs_requests=cost.sqs_requests(i_calls) + cost.sqs_requests(d_calls) + poller,
        dynamodb_write_units=i_calls.get("dynamodb WRU", 0) + d_calls.get("dynamodb WRU", 0) + counters,
        # The authorizer's GetItem of a key record: half a read unit (eventually consistent).
        dynamodb_read_units=i_calls.get("dynamodb RRU", 0) + d_calls.get("dynamodb RRU", 0) + authorizer / 2,
        archive_write_units=d_calls.get("dynamodb archive WRU", 0),
        archive_bytes=d_calls.get("dynamodb archive bytes", 0),
        archive_days=DEFAULT_EVENT_RETENTION_DAYS,
        kms_asymmetric_requests=d_calls.get("kms.Sign", 0),
        kms_symmetric_requests=sum(
            calls.get(f"kms.{name}", 0) for calls in (i_calls, d_calls) for name in ("Decrypt", "Encrypt")
        ),
        secrets_api_calls=i_calls.get("secretsmanager.GetSecretValue", 0),
        log_bytes=logs,
        xray_traces=traces,
        ingress=deployment.ingress,
        architecture=deployment.architecture,
    )


def scenarios(result: dict[str, Any]) -> list[Scenario]:
    memory = result["memory_mb"]
    single = [item for item in result["ingest"] if item["batch"] == 1]
    with_jti = next(item for item in single if item["with_jti"])
    without_jti = next((item for item in single if not item["with_jti"]), None)
    rows = [row for row in result["rows"] if row["subscribers"] == 10]
    full = next(row for row in rows if row["events"] > 1)
    alone = next(row for row in rows if row["events"] == 1)
    full_batches, batches_of_1 = "full batches", "batches of 1, 1M events a month"
    found: list[Scenario] = []

    def add(deployment: Deployment, regime: str, *, jti: bool = True, kms: bool = False) -> None:
        ingest = with_jti if jti else without_jti
        if ingest is None:
            return
        row, rate = (full, FULL_BATCH_RATE) if regime == full_batches else (alone, LOW_RATE)
        measured = usage(ingest, row, memory, rate=rate, deployment=deployment)
        name = f"{deployment.label()}, {regime}"
        if kms:
            # The run signs as the template's default (wrapped: in process, one Decrypt per
            # container); SigningMode=kms instead makes one KMS Sign per event.
            measured = replace(measured, kms_asymmetric_requests=measured.kms_asymmetric_requests + 1.0)
            name += ", SigningMode kms"
        found.append(Scenario(name + ("" if jti else ", no publisher jti"), measured))

    for ingress in ("rest", "http"):
        deployment = Deployment(ingress=ingress)
        add(deployment, full_batches)
        if ingress == "rest":
            add(deployment, full_batches, kms=True)
        add(deployment, batches_of_1)
        add(deployment, full_batches, jti=False)
    # The cheapest deployment: both ingresses, so the REST API's own line shows.
    add(replace(CHEAPEST_HTTP, ingress="rest"), full_batches, jti=False)
    add(CHEAPEST_HTTP, full_batches, jti=False)
    # What Architecture=arm64 takes off the cheapest deployment (durations as measured on x86_64).
    add(replace(CHEAPEST_HTTP, architecture="arm64"), full_batches, jti=False)
    add(CHEAPEST_HTTP, full_batches)
    add(CHEAPEST_HTTP, batches_of_1, jti=False)
    return found


def lines(found: list[Scenario], prices: cost.Prices) -> list[Line]:
    """One row per scenario: its total, the ratio to the goal, and its three biggest lines."""
    rows = []
    for scenario in found:
        priced = cost.cost_per_events(scenario.usage, prices)
        total = priced[-1].dollars
        biggest = sorted(priced[:-1], key=lambda line: line.dollars, reverse=True)[:3]
        verdict = "goal met" if total <= cost.GOAL_DOLLARS else "over the goal"
        rows.append(
            Line(
                f"cost per 1M events x 10 subscribers: {scenario.name}",
                f"${total:,.2f}",
                ratio=f"{total / cost.GOAL_DOLLARS:.2f} of $3.00",
                note=f"{verdict}; biggest: "
                + ", ".join(f"{line.item} ${line.dollars:,.2f}" for line in biggest),
            )
        )
    monthly = cost.fixed_monthly(prices, kms_keys=KMS_KEYS, sqs_mappings=SQS_MAPPINGS)
    rows.append(
        Line(
            "cost per month with no events",
            f"${sum(line.dollars for line in monthly):,.2f}",
            note="; ".join(
                f"{line.item} {line.quantity:,.0f} {line.unit} ${line.dollars:,.2f}" for line in monthly
            )
            + "; not per event: at 1M events a month it adds as much per million",
        )
    )
    return rows


def table(found: list[Scenario], prices: cost.Prices) -> str:
    """Markdown: every billed line (rows) of every scenario (columns)."""
    priced = [cost.cost_per_events(scenario.usage, prices) for scenario in found]
    items = [line.item for line in priced[0][:-1]]
    # The ingress line is named after each scenario's API type: one row for both.
    names = ["ingress (API Gateway)" if item.startswith("API Gateway") else item for item in items]
    header = ["line", *[scenario.name for scenario in found]]
    body = []
    for index, name in enumerate(names):
        body.append([name, *[_cell(lines[index]) for lines in priced]])
    body.append(["total", *[f"**${lines[-1].dollars:,.2f}**" for lines in priced]])
    render = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    render += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(render)


def _cell(line: cost.CostLine) -> str:
    quantity = f"{line.quantity:,.3f}" if line.unit in ("GB", "GB-months") else f"{line.quantity:,.0f}"
    return f"${line.dollars:,.2f} ({quantity} {line.unit})"


def assumptions(found: list[Scenario], prices: cost.Prices) -> str:
    functions = "; ".join(
        f"{scenario.name}: "
        + ", ".join(
            f"{f.name} {f.invocations_per_event:g}/event x {f.duration_ms:,.0f} ms x {f.memory_mb} MB"
            for f in scenario.usage.functions
        )
        for scenario in found[:2]
    )
    return (
        f"Cost model ({cost.PRICES_NOTE}): Lambda x86_64 ${prices.lambda_gb_second:.10f}/GB-s, arm64 "
        f"${prices.lambda_gb_second_arm64:.10f}/GB-s, and $0.20/1M requests on either; API Gateway "
        "REST $3.50/1M, HTTP $1.00/1M; SQS $0.40/1M (64 KiB chunks); DynamoDB "
        "on-demand $0.625/1M WRU, $0.125/1M RRU; KMS ECC Sign $0.15/10k, symmetric $0.03/10k, $1 per "
        "key-month; CloudWatch Logs $0.50/GB; X-Ray $5.00 per million traces recorded. One event per "
        "POST /events. Requests are the calls the handlers made in this run, counted per call; DynamoDB "
        "units from the size of every item written (1 KB a unit; a failed conditional put too) and read "
        "(4 KB a unit, half when eventually consistent); Lambda's poller adds a ReceiveMessage and a "
        "DeleteMessageBatch per dispatch invocation. Event archive (accepted events kept for recovery, "
        "sethub.archive): the write units of its items (one per batch and topic, compressed) and their "
        f"bytes kept {DEFAULT_EVENT_RETENTION_DAYS} days at $0.25/GB-month of DynamoDB storage plus $0.20 "
        "of point-in-time recovery; S3 would bill $5 per million PUTs, an object per batch. "
        "X-Ray: Lambda's fixed rule (the first request "
        f"each second, 5 % of the rest): {FULL_BATCH_RATE:g} events/s in the full-batch scenarios, "
        f"{LOW_RATE:.2f}/s (every request traced) at a million a month. Logs: what the handlers logged "
        f"plus {cost.PLATFORM_LOG_BYTES} bytes of START/END/REPORT per invocation. Durations: the "
        "handlers' own time measured here, their waits on moto replaced by "
        f"{IN_REGION_CALL_MS:g} ms per AWS call ({functions}); a full core here, while Lambda gives "
        "256 MB (ingest) about 0.15 vCPU and 1024 MB (dispatch) 0.58, so their CPU-bound part "
        "(a few ms per request) is longer there. HTTP API columns (Ingress=http): the API at $1.00 "
        f"per million plus the authorizer, invoked once per key per {AUTHORIZER_TTL_SECONDS} s (its "
        f"cached answer) with {PUBLISHER_KEYS} keys publishing: {AUTHORIZER_MS:g} ms x "
        f"{AUTHORIZER_MEMORY_MB} MB, half a read unit and, with SystemLogLevel INFO, its START/END/REPORT "
        "lines each time (not measured: one GetItem), and ingest's per-key counters (Ingress=http: "
        f"{KEY_COUNTER_WRITES:g} UpdateItem per request, a write unit and {IN_REGION_CALL_MS:g} ms each, "
        "one per 25 requests of a key far from its limits per warm container at the default "
        "KeyBurstLimit; not measured, "
        "the bench's ingest runs REST events). Tracing PassThrough: no X-Ray traces. "
        "SystemLogLevel WARN: no START/END/REPORT lines (Lambda's JSON log format; the functions' "
        "own lines, already JSON, are counted as measured). arm64 (Architecture=arm64): Lambda duration "
        "at the arm64 price, the durations taken as measured on x86_64 (not measured on arm64: the "
        "emulator runs x86_64 only); every other line as on x86_64."
    )


def window_tradeoff(found: list[Scenario], prices: cost.Prices) -> str:
    """The cost/latency trade-off that BatchingWindowSeconds controls, in this run's figures."""
    totals = {scenario.name: cost.cost_per_events(scenario.usage, prices)[-1].dollars for scenario in found}
    full, alone = totals["REST API, full batches"], totals["REST API, batches of 1, 1M events a month"]
    return (
        "Batching window (template parameter BatchingWindowSeconds, the MaximumBatchingWindowInSeconds "
        "of the dispatch mappings): at the default 0 an event is handed to dispatch as soon as a poller "
        "receives it, so the window adds nothing to the latency; at a low rate each event is then a "
        f"batch of one (${alone:,.2f} per million with the REST API, every line above). A window of W "
        "seconds gathers up to 10 events per invocation at any rate (full batches: "
        f"${full:,.2f}): one dispatch invocation, one ReceiveMessage and DeleteMessageBatch, one "
        "subscription Query and one X-Ray trace per 10 events instead of per event, for up to W seconds "
        "more before each delivery (a window of W fills batches of 10 at 10/W events per second and "
        "more). At 0, a batch is what one receive finds waiting: about one event until the rate "
        "outruns the pollers, so the full-batch figures need a window, or hundreds of events per second."
    )
