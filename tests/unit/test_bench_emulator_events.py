"""The emulator bench's events, run by the real handlers in this process against the bench's moto.

GIVEN moto as the bench serves it (the template's tables, the answers' bucket, every request
recorded), WHEN each function's handler is invoked twice with its bench event, THEN every
event is handled (no error) and its AWS calls are the ones the row reports: none but the
lookup of an unknown key (ingest, the authorizer), dispatch's count of SSF streams on its
first batch and the key ring's answer PUT. A handler that starts calling AWS on its bench
event fails here, not as seconds of botocore retries in the emulator's row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from handlers import fresh_handler

from bench import emulator, emulator_inputs
from devstack.template import load_template

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = {
    "IngestFunction": "ingest",
    "AuthorizerFunction": "authorizer",
    "WebSubFunction": "websub",
    "SsfFunction": "ssf",
    "VerifierFunction": "verifier",
    "DispatchFunction": "dispatch",
    "KeyRingFunction": "keyring",
}
# What sam local gives the functions: a Ref is the resource's logical id.
SAM_LOCAL_ENV = {
    "SETHUB_TABLE_NAME": "HubTable",
    "SETHUB_EVENTS_QUEUE_URL": "EventsQueue",
    "SETHUB_VERIFY_QUEUE_URL": "VerifyQueue",
    "SETHUB_RETRY_QUEUE_URL": "RetryQueue",
    "SETHUB_DEAD_LETTER_QUEUE_URL": "RetryDeadLetterQueue",
    "SETHUB_DATA_KEY_ID": "DataKey",
    "POWERTOOLS_SERVICE_NAME": "sethub",
    "POWERTOOLS_METRICS_NAMESPACE": "sethub",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "AWS_DEFAULT_REGION": emulator_inputs.REGION,
    "AWS_REGION": emulator_inputs.REGION,
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
}


class Context:
    """The parts of Lambda's context object the handlers read."""

    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    memory_limit_in_mb = 512
    aws_request_id = "bench"
    log_group_name = "bench"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture(scope="module")
def aws() -> Iterator[emulator_inputs.LocalAws]:
    local = emulator_inputs.LocalAws("127.0.0.1")
    local.start()
    local.create_resources(load_template(ROOT / "template.yaml"))
    yield local
    local.stop()


@pytest.fixture(scope="module")
def environment(aws: emulator_inputs.LocalAws) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**SAM_LOCAL_ENV, "AWS_ENDPOINT_URL": aws.endpoint}.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        yield


def invoke_twice(
    aws: emulator_inputs.LocalAws, function: str
) -> tuple[list[Any], tuple[str, ...], tuple[str, ...]]:
    """Both answers and the AWS calls of each invoke, as the bench makes them."""
    handler = fresh_handler(HANDLERS[function], "bench_events").handler
    event = emulator_inputs.bench_events(aws.endpoint)[function].payload
    answers: list[Any] = []
    calls: list[tuple[str, ...]] = []
    for _ in range(2):
        mark = aws.mark()
        answers.append(handler(json.loads(json.dumps(event)), Context()))
        calls.append(aws.calls_since(mark))
    return answers, calls[0], calls[1]


def test_every_function_of_the_template_has_a_bench_event() -> None:
    functions = emulator._memory_sizes(load_template(ROOT / "template.yaml"))

    assert set(functions) == set(emulator_inputs.bench_events("http://moto")) == set(HANDLERS)


@pytest.mark.usefixtures("environment")
@pytest.mark.parametrize(("function", "status"), [("WebSubFunction", 200), ("SsfFunction", 401)])
def test_api_events_are_answered_without_an_aws_call(
    aws: emulator_inputs.LocalAws, function: str, status: int
) -> None:
    answers, first, warm = invoke_twice(aws, function)

    assert [answer["statusCode"] for answer in answers] == [status, status]
    assert (first, warm) == ((), ())


@pytest.mark.usefixtures("environment")
def test_ingest_refuses_a_key_it_does_not_hold_after_one_lookup(aws: emulator_inputs.LocalAws) -> None:
    answers, first, warm = invoke_twice(aws, "IngestFunction")

    assert [answer["statusCode"] for answer in answers] == [403, 403]
    # The warm invoke finds the refusal in the container's key cache.
    assert (first, warm) == (("dynamodb.GetItem",), ())


@pytest.mark.usefixtures("environment")
def test_the_authorizer_denies_a_key_it_does_not_hold_after_one_lookup(aws: emulator_inputs.LocalAws) -> None:
    answers, first, warm = invoke_twice(aws, "AuthorizerFunction")

    assert answers == [{"isAuthorized": False}, {"isAuthorized": False}]
    assert (first, warm) == (("dynamodb.GetItem",), ())


@pytest.mark.usefixtures("environment")
def test_the_verifier_settles_an_empty_batch_without_an_aws_call(aws: emulator_inputs.LocalAws) -> None:
    answers, first, warm = invoke_twice(aws, "VerifierFunction")

    assert answers == [{"batchItemFailures": []}, {"batchItemFailures": []}]
    assert (first, warm) == ((), ())


@pytest.mark.usefixtures("environment")
def test_dispatch_counts_ssf_streams_on_its_first_batch_only(aws: emulator_inputs.LocalAws) -> None:
    answers, first, warm = invoke_twice(aws, "DispatchFunction")

    # No failed batch: the rows' "ended in DeliveryNotSettledError" came from a message
    # that was not sethub's.
    assert answers == [{"batchItemFailures": []}, {"batchItemFailures": []}]
    assert first == ("dynamodb.Query",)
    assert warm == ()


@pytest.mark.usefixtures("environment")
def test_the_key_ring_answers_a_delete_with_success_and_nothing_else(aws: emulator_inputs.LocalAws) -> None:
    answers, first, warm = invoke_twice(aws, "KeyRingFunction")

    answer = f"PUT /{emulator_inputs.RESPONSE_BUCKET}/keyring-response (unsigned)"
    assert answers == [None, None]
    assert (first, warm) == ((answer,), (answer,))
    stored = aws.client("s3").get_object(Bucket=emulator_inputs.RESPONSE_BUCKET, Key="keyring-response")
    document = json.loads(stored["Body"].read())
    assert (document["Status"], document["LogicalResourceId"]) == ("SUCCESS", "SigningKeyRing")
