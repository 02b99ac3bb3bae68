"""Reading delivery records back: items written before outcomes were packed per event, and
what an operator reads when DynamoDB fails."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from sethub.clients import AwsClients
from sethub.errors import UpstreamError
from sethub.records import Attempt, DeliveryRecords, delivery_key, pack
from sethub.settings import Settings
from sethub.subscriptions import subscription_id

CALLBACK = "https://rp.example:8443/hooks/set?token=s3cr3t"


class OneItemTable:
    """A Query that answers the items it was given, or raises ``error``."""

    def __init__(self, items: list[dict[str, Any]] | None = None, error: Exception | None = None) -> None:
        self.items = items or []
        self.error = error

    def query(self, **kwargs: Any) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        return {"Items": self.items}


def read(table: OneItemTable, jti: str = "e1") -> list[Attempt]:
    return DeliveryRecords(AwsClients(dynamodb=table), Settings(table_name="hub")).for_event(jti)


def legacy_item(**extra: dict[str, str]) -> dict[str, Any]:
    """One attempt per item, as written before outcomes were packed per event."""
    return {
        "pk": {"S": delivery_key("e1")},
        "sk": {"S": "1764190000.0#1"},
        "topic": {"S": "acme.login"},
        "callback": {"S": CALLBACK},
        "attempt": {"N": "2"},
        "status": {"S": "retrying"},
        "at": {"N": "1764190000.5"},
        "status_code": {"N": "503"},
        "error": {"S": "HTTP 503"},
        "duration_ms": {"N": "12"},
        **extra,
    }


def test_an_old_record_with_the_callback_url_reads_back_without_it() -> None:
    (attempt,) = read(OneItemTable([legacy_item()]))

    assert attempt == Attempt(
        jti="e1",
        topic="acme.login",
        callback="",
        attempt=2,
        status="retrying",
        at=1764190000.5,
        status_code=503,
        error="HTTP 503",
        duration_ms=12,
        subscription_id=subscription_id("acme.login", CALLBACK),
        callback_host="rp.example:8443",
    )
    assert attempt.callback == ""


def test_an_old_record_already_redacted_keeps_its_names() -> None:
    item = legacy_item(subscription={"S": "sub-1"}, callback_host={"S": "rp.example"})
    del item["callback"], item["status_code"], item["error"]

    (attempt,) = read(OneItemTable([item]))

    assert (attempt.subscription_id, attempt.callback_host) == ("sub-1", "rp.example")
    assert (attempt.status_code, attempt.error) == (None, "")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (
            ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "Query"),
            "ProvisionedThroughputExceededException",
        ),
        (ClientError({}, "Query"), "ClientError"),
        (EndpointConnectionError(endpoint_url="https://dynamodb.example"), "EndpointConnectionError"),
    ],
)
def test_a_failed_read_names_what_dynamodb_answered(error: Exception, code: str) -> None:
    with pytest.raises(UpstreamError) as failed:
        read(OneItemTable(error=error))
    assert str(failed.value) == f"DynamoDB could not read delivery records: {code}"


def test_two_invocations_recording_the_same_moment_add_items_instead_of_overwriting() -> None:
    # Two dispatchers settling the same event's outcomes at the same millisecond.
    same = [Attempt("e1", "acme.login", "https://rp.example/hook", 1, "ok", 1764190000.0, 202)]

    first, second = pack(same)[0], pack(same)[0]

    assert first["pk"] == second["pk"]
    assert first["sk"] != second["sk"]
