"""The bench's emulator rows: what it reads from the REPORT line, and what it says without Docker."""

from __future__ import annotations

from pathlib import Path

from bench import emulator, emulator_inputs
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


def test_without_docker_the_bench_says_not_measured_instead_of_failing(tmp_path: Path) -> None:
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
        event="an empty SQS batch",
        first_calls=("dynamodb.Query",),
        cpu_ms=812.0,
        cpu_wait_ms=150.0,
    )

    (line,) = _emulator_lines(emulator.EmulatorResult([start]))

    assert line.measurement == "cold start in the emulator: DispatchFunction"
    assert line.hub == "first invoke 1,005 ms, warm 10 ms, peak RSS 54 MB"
    assert line.note.startswith(
        "init ≈ 995 ms (first - warm); runtime CPU 812 ms + 150 ms waiting for a CPU; 1024 MB configured;"
    )
    assert "event: an empty SQS batch; AWS calls (moto): first dynamodb.Query, warm none;" in line.note
    assert line.note.endswith("the bench event ended in BatchProcessingError")


def test_the_runtime_is_the_python_process_with_the_largest_peak() -> None:
    # As _RUNTIME_STATS prints them: the runtime, then the reading shell (its script names python).
    output = "36864 61 7 697604109 718228853 299\n1200 0 1 3000000 1000000 4\nticks 100\n"

    stats = emulator.runtime_stats(output)

    assert stats == emulator.RuntimeStats(peak_rss_mb=36.0, cpu_ms=697.604109, cpu_wait_ms=718.228853)


def test_without_schedstat_the_cpu_time_is_counted_in_ticks_and_the_wait_is_unknown() -> None:
    output = "36864 61 7\n1200 0 1\nticks 250\n"

    assert emulator.runtime_stats(output) == emulator.RuntimeStats(36.0, 272.0, None)


def test_several_containers_of_a_function_are_read_together() -> None:
    # sam local may start a second container on the first invoke: the first one has no runtime.
    idle = "900 0 0 1000 0 1\nticks 100\n"
    serving = "40960 70 10 800000000 5000000 310\nticks 100\n"

    stats = emulator.runtime_stats(idle + serving)

    assert stats is not None
    assert (stats.peak_rss_mb, stats.cpu_ms) == (40.0, 800.0)


def test_runtime_stats_read_nothing_from_a_container_without_python() -> None:
    assert emulator.runtime_stats("ticks 100\n") is None
    assert emulator.runtime_stats("") is None


def test_requests_to_moto_are_named_by_service_and_operation() -> None:
    signed = (
        "AWS4-HMAC-SHA256 Credential=defaultkey/20261202/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=ce61"
    )
    query = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "HTTP_AUTHORIZATION": signed,
        "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.Query",
    }
    bucket = {
        "REQUEST_METHOD": "PUT",
        "PATH_INFO": "/sethub-bench",
        "HTTP_AUTHORIZATION": signed.replace("/dynamodb/", "/s3/"),
    }
    answer = {"REQUEST_METHOD": "PUT", "PATH_INFO": "/sethub-bench/keyring-response"}

    assert emulator_inputs.call_name(query) == "dynamodb.Query"
    assert emulator_inputs.call_name(bucket) == "s3.PUT /sethub-bench"
    assert emulator_inputs.call_name(answer) == "PUT /sethub-bench/keyring-response (unsigned)"


def test_a_functions_line_says_its_event_and_the_aws_calls_of_each_invoke() -> None:
    start = emulator.FunctionStart(
        function="DispatchFunction",
        first_ms=880.4,
        warm_ms=3.2,
        peak_rss_mb=49.2,
        reported_init_ms=0.1,
        reported_max_memory_mb=1024.0,
        memory_size_mb=1024,
        function_error=None,
        event="an empty SQS batch",
        first_calls=("dynamodb.Query", "dynamodb.Query", "s3.PUT /b"),
        warm_calls=(),
        cpu_ms=700.0,
        cpu_wait_ms=150.4,
    )

    assert emulator.describe(start) == (
        "DispatchFunction: init ≈ 877 ms (first invoke 880 ms, warm 3 ms, runtime CPU 700 ms + 150 ms "
        "waiting for a CPU), "
        "peak RSS 49 MB; event: an empty SQS batch; AWS calls (moto): first dynamodb.Query x2, "
        "s3.PUT /b, warm none"
    )
