"""The CloudWatch dashboard reads only metrics the code emits, with the dimensions it emits them with.

GIVEN template.yaml's dashboard, WHEN the dispatch handler publishes the metrics of a batch
that had every delivery outcome and its count of SSF streams by status (its EMF output, as
CloudWatch would ingest it), THEN every widget's metric in the ``sethub`` namespace is among
them. AWS's own namespaces (AWS/SQS,
AWS/Lambda) are what those services publish for the template's queues and functions.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, get_args

import pytest
from handlers import fresh_handler

from devstack.template import load_template
from sethub.dispatch import BatchResult
from sethub.hubstats import StreamCensus
from sethub.records import Status

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "sethub"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def dashboard_metrics(template: dict[str, Any]) -> list[list[Any]]:
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    text = body[0] if isinstance(body, list) else body
    # The substitutions are names of queues and functions: any string stands in for them.
    parsed = json.loads(re.sub(r"\$\{[^}]+\}", "x", text))
    return [metric for widget in parsed["widgets"] for metric in widget["properties"].get("metrics", [])]


@pytest.fixture(scope="module")
def dispatch_handler() -> ModuleType:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POWERTOOLS_SERVICE_NAME", "sethub")
        patch.setenv("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
        patch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        return fresh_handler("dispatch", "dashboard")


def emitted(
    module: ModuleType, result: BatchResult, capsys: pytest.CaptureFixture[str]
) -> list[dict[str, Any]]:
    """The EMF documents the handler writes for ``result`` (one JSON object per line)."""
    capsys.readouterr()
    module._publish_metrics(result)
    module.metrics.flush_metrics()
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]


@dataclass(frozen=True)
class Receiver:
    client_id: str


@dataclass(frozen=True)
class Stream:
    status: str


class Streams:
    """A receiver with a stream of each status (``SsfStore``'s two reads)."""

    def list_clients(self) -> list[Receiver]:
        return [Receiver("crm")]

    def list_streams(self, client_id: str) -> list[Stream]:
        return [Stream("enabled"), Stream("paused"), Stream("disabled")]


def census_emitted(module: ModuleType, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The EMF documents of a count of SSF streams by status, with the handler's metrics."""
    capsys.readouterr()
    StreamCensus(Streams()).publish(module.metrics, force=True)
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]


def names_and_dimensions(
    documents: list[dict[str, Any]],
) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    found = set()
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            dimensions = tuple(
                (name, str(document[name])) for group in directive["Dimensions"] for name in group
            )
            for metric in directive["Metrics"]:
                found.add((directive["Namespace"], metric["Name"], dimensions))
    return found


def test_every_widget_metric_of_the_sethub_namespace_is_emitted(
    template: dict[str, Any], dispatch_handler: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    every_outcome = BatchResult(
        counts=Counter(dict.fromkeys(get_args(Status), 1)), durations_ms=[12, 40], disabled=1
    )
    published = names_and_dimensions(
        emitted(dispatch_handler, every_outcome, capsys) + census_emitted(dispatch_handler, capsys)
    )

    wanted = [metric for metric in dashboard_metrics(template) if metric[0] == NAMESPACE]
    assert wanted, "the dashboard shows sethub's own metrics"
    for metric in wanted:
        namespace, name, *rest = metric
        dimensions = tuple(
            (rest[i], rest[i + 1]) for i in range(0, len(rest) - 1, 2) if isinstance(rest[i], str)
        )
        assert (namespace, name, dimensions) in published, f"{name} {dimensions} is not emitted by the code"


def test_the_dashboard_shows_every_delivery_outcome_and_aws_metrics_of_the_stack(
    template: dict[str, Any],
) -> None:
    metrics = dashboard_metrics(template)
    outcomes = {m[1] for m in metrics if m[0] == NAMESPACE and m[1].startswith("Deliveries")}
    assert outcomes == {f"Deliveries{status.capitalize()}" for status in get_args(Status)}
    aws = {(m[0], m[1]) for m in metrics if m[0].startswith("AWS/")}
    assert aws == {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
    }
    assert "DashboardUrl" in template["Outputs"]


def test_latency_keeps_its_spread_when_a_batch_has_more_than_emf_takes(
    dispatch_handler: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    durations = list(range(1, 251))
    documents = emitted(dispatch_handler, BatchResult(durations_ms=durations), capsys)
    values = []
    for document in documents:
        value = document["DeliveryLatency"]
        values.extend(value if isinstance(value, list) else [value])

    # EMF takes at most 100 values a metric; the fastest and about the p99 request are kept.
    assert len(values) <= 100
    assert min(values) == 1
    assert max(values) >= 247


def test_every_page_alarm_notifies_the_alarm_email(template: dict[str, Any]) -> None:
    alarms = {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert {
        "RetryDeadLetterQueueAlarm",
        "EventsDeadLetterQueueAlarm",
        "VerifyDeadLetterQueueAlarm",
        "EventsQueueAgeAlarm",
        "VerifyQueueAgeAlarm",
        "DispatchErrorRateAlarm",
        "ApiErrorRateAlarm",
    } <= set(alarms)
    for properties in alarms.values():
        assert properties["AlarmActions"] == {
            "Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]
        }
    documented = (ROOT / "docs" / "operations.md").read_text()
    for name in alarms:
        assert name in documented, f"docs/operations.md says nothing of {name}"
