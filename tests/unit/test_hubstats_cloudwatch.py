"""``sethub stats`` on a deployed stack: the delivery numbers from CloudWatch, one request.

GIVEN CloudWatch's answer to the metric queries (moto computes no percentiles, so a stub
answers as CloudWatch documents it), WHEN the window is summarised, THEN the outcomes are
the sums, latency the p50/p99 statistics (the larger when the window straddles two
periods), and the request names the metrics and dimensions dispatch publishes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sethub.hubstats import OUTCOMES, cloudwatch_summary

NOW = 1_796_000_000.0


class CloudWatch:
    def __init__(self, values: dict[str, list[float]]) -> None:
        self.values = values
        self.requests: list[dict[str, Any]] = []

    def get_metric_data(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        ids = [query["Id"] for query in request["MetricDataQueries"]]
        return {"MetricDataResults": [{"Id": i, "Values": self.values.get(i, [])} for i in ids]}


def test_outcomes_are_sums_and_latency_the_percentiles_of_the_window():
    cloudwatch = CloudWatch({"o_ok": [90.0, 10.0], "o_dead": [1.0], "p50": [18.0, 22.4], "p99": [950.6]})

    stats = cloudwatch_summary(
        cloudwatch, since=NOW - 3600, until=NOW, queues={"retry": 3}, disabled_subscriptions=2
    )

    assert stats.outcomes == {"dead": 1, "ok": 100}
    assert (stats.attempts, stats.dead_in_window, stats.retries) == (101, 1, 0)
    assert (stats.latency_p50_ms, stats.latency_p99_ms) == (22, 951)
    assert (stats.queues, stats.disabled_subscriptions) == ({"retry": 3}, 2)
    (request,) = cloudwatch.requests
    # The hour up to the end of the current minute (NOW is 20 s into one).
    assert (request["StartTime"], request["EndTime"]) == (
        datetime.fromtimestamp(NOW + 40 - 3600, UTC),
        datetime.fromtimestamp(NOW + 40, UTC),
    )
    stats_of = {q["Id"]: q["MetricStat"] for q in request["MetricDataQueries"]}
    assert {stats_of[f"o_{o}"]["Metric"]["MetricName"] for o in OUTCOMES} == {
        f"Deliveries{o.capitalize()}" for o in OUTCOMES
    }
    assert (stats_of["p99"]["Metric"]["MetricName"], stats_of["p99"]["Stat"]) == ("DeliveryLatency", "p99")
    for stat in stats_of.values():
        assert stat["Period"] == 3600
        assert stat["Metric"]["Namespace"] == "sethub"
        assert stat["Metric"]["Dimensions"] == [{"Name": "service", "Value": "sethub"}]


def test_a_quiet_hour_has_no_latency():
    stats = cloudwatch_summary(CloudWatch({}), since=NOW - 90, until=NOW, queues={}, disabled_subscriptions=0)

    assert (stats.outcomes, stats.attempts, stats.latency_p50_ms, stats.latency_p99_ms) == ({}, 0, None, None)
