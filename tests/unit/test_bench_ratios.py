"""How make bench reports a fan-out row measured in rounds: each round's ratios, then median (min-max)."""

from __future__ import annotations

import pytest

from bench.fanout import cpu_ratios, own_ratios, whole_ratios
from bench.report import spread


def _round(
    hub_wall: float, aws_wall: float, urllib3_wall: float, hub_cpu: float, urllib3_cpu: float
) -> dict[str, float]:
    return {
        "hub_wall": hub_wall,
        "aws_wall": aws_wall,
        "hub_cpu": hub_cpu,
        "deliveries": 1000,
        "posts": 1000,
        "urllib3_wall": urllib3_wall,
        "urllib3_cpu": urllib3_cpu,
        "requests_wall": 1.0,
        "requests_cpu": 1.0,
    }


def test_each_round_is_compared_with_the_baseline_of_the_same_round() -> None:
    row = {"rounds": [_round(2.0, 1.0, 0.9, 0.6, 0.5), _round(3.0, 1.0, 1.8, 0.9, 0.6)]}
    # AWS waits excluded: 0.9 / (2 - 1) and 1.8 / (3 - 1), not a best of each side.
    assert own_ratios(row) == pytest.approx([0.9, 0.9])
    assert whole_ratios(row) == pytest.approx([0.45, 0.6])
    assert cpu_ratios(row) == pytest.approx([1.2, 1.5])


def test_cpu_per_delivery_counts_only_the_deliveries_that_arrived() -> None:
    lost = {**_round(2.0, 1.0, 1.0, 0.5, 0.5), "deliveries": 500}
    # Half the hub's deliveries missing: its CPU per delivery doubles against the baseline's.
    assert cpu_ratios({"rounds": [lost]}) == pytest.approx([2.0])


def test_spread_is_the_median_then_the_range_of_the_runs() -> None:
    assert spread([0.9, 0.7, 1.1]) == "0.90 (0.70-1.10)"
    assert spread([0.037, 0.040, 0.101], " ms", 1e3, 0) == "40 ms (37-101 ms)"
