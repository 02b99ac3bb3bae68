"""The bench's emulator rows: what it reads from the REPORT line, and what it says without Docker."""

from __future__ import annotations

from bench import emulator
from bench.__main__ import _emulator_lines

# As the SAM CLI's Runtime Interface Emulator prints them (tab separated).
FIRST = (
    "REPORT RequestId: 39cbedf4-3f1f-4664-aa16-00619093424c\tInit Duration: 0.06 ms\tDuration: 1183.23 ms\t"
    "Billed Duration: 1184 ms\tMemory Size: 512 MB\tMax Memory Used: 512 MB\t"
)
WARM = (
    "REPORT RequestId: 63b77f15-cf21-4348-8215-94646af22335\tDuration: 2.29 ms\tBilled Duration: 3 ms\t"
    "Memory Size: 512 MB\tMax Memory Used: 512 MB\t"
)


def test_report_lines_give_duration_and_what_the_emulator_claims() -> None:
    assert emulator.parse_report(FIRST) == emulator.Report(1183.23, 0.06, 512.0)
    assert emulator.parse_report(WARM) == emulator.Report(2.29, None, 512.0)
    assert emulator.parse_report("END RequestId: 39cbedf4-3f1f-4664-aa16-00619093424c") is None


def test_without_docker_the_bench_says_not_measured_instead_of_failing(tmp_path) -> None:
    result = emulator.measure(docker=str(tmp_path / "no-docker-here"))

    assert result == emulator.EmulatorResult([], "not measured: no Docker")
    lines = _emulator_lines(result)
    assert [(line.measurement, line.hub) for line in lines] == [
        ("cold start in the emulator (sam local)", "not measured: no Docker")
    ]


def test_a_measured_function_reads_first_invoke_warm_and_memory() -> None:
    start = emulator.FunctionStart(
        function="DispatchFunction",
        first_ms=1005.2,
        warm_ms=10.2,
        peak_rss_mb=54.4,
        reported_init_ms=0.09,
        reported_max_memory_mb=1024.0,
        memory_size_mb=1024,
        function_error="BatchProcessingError",
    )

    (line,) = _emulator_lines(emulator.EmulatorResult([start]))

    assert line.measurement == "cold start in the emulator: DispatchFunction"
    assert line.hub == "first invoke 1,005 ms, warm 10 ms, peak RSS 54 MB"
    assert line.note.startswith("init ≈ 995 ms (first - warm); 1024 MB configured;")
    assert line.note.endswith("the bench event ended in BatchProcessingError")
