"""How a failed AWS call is named in sethub's messages: by its error code, never by AWS's
message text, which can echo what was sent (a key id, an item's attributes)."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from sethub.errors import BadRequestError, aws_error_code

ECHO = "The conditional request failed for item {'secret': 's3cr3t'}"


def test_a_client_error_is_named_by_its_code_not_its_message() -> None:
    error = ClientError({"Error": {"Code": "ThrottlingException", "Message": ECHO}}, "PutItem")

    assert aws_error_code(error) == "ThrottlingException"


def test_a_modelled_client_error_is_named_by_its_code() -> None:
    # What boto3 raises for a modelled error: a ClientError subclass per code.
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    error = dynamodb.exceptions.ConditionalCheckFailedException(
        {"Error": {"Code": "ConditionalCheckFailedException", "Message": ECHO}}, "PutItem"
    )

    assert aws_error_code(error) == "ConditionalCheckFailedException"


@pytest.mark.parametrize(
    "response",
    [{}, {"Error": {}}, {"Error": {"Message": ECHO}}, {"Error": {"Code": "", "Message": ECHO}}],
)
def test_a_client_error_without_a_code_is_named_by_its_class(response: dict[str, object]) -> None:
    assert aws_error_code(ClientError(response, "Query")) == "ClientError"  # type: ignore[arg-type]


def test_a_failure_before_aws_answered_is_named_by_its_class() -> None:
    assert aws_error_code(EndpointConnectionError(endpoint_url="https://dynamodb.example")) == (
        "EndpointConnectionError"
    )
    assert aws_error_code(ReadTimeoutError(endpoint_url="https://kms.example")) == "ReadTimeoutError"


def test_any_other_exception_is_named_by_its_class_without_its_text() -> None:
    assert aws_error_code(ValueError(ECHO)) == "ValueError"


def test_a_refusal_reads_as_its_reason_and_lists_no_problems_unless_given() -> None:
    refused = BadRequestError("hub.topic is required")
    problems: list[dict[str, object]] = [{"index": 1, "error": "iss is missing"}]
    with_problems = BadRequestError("2 events refused", problems=problems)

    assert (str(refused), refused.reason, refused.status, refused.problems) == (
        "hub.topic is required",
        "hub.topic is required",
        400,
        [],
    )
    assert (str(with_problems), with_problems.problems) == ("2 events refused", problems)
