"""Operator listings read every page DynamoDB answers, and name a failed read by its code."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from sethub import inventory
from sethub.errors import UpstreamError
from sethub.records import Attempt, pack
from sethub.store import TOPIC_STATE
from sethub.subscriptions import SUBSCRIPTION_PREFIX, topic_key

NOW = 1764190000.0


class PagedTable:
    """Answers Query and Scan one item a page (each page but the last with a LastEvaluatedKey),
    BatchGetItem with every key asked; or raises ``error`` on Query and Scan."""

    def __init__(self, items: list[dict[str, Any]], error: Exception | None = None) -> None:
        self.items = items
        self.error = error
        self.calls: list[str] = []

    def _page(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(operation)
        if self.error is not None:
            raise self.error
        matching = [item for item in self.items if _matches(item, request)]
        start = int(request.get("ExclusiveStartKey", {}).get("n", {}).get("N", "0"))
        page: dict[str, Any] = {"Items": matching[start : start + 1]}
        if start + 1 < len(matching):
            page["LastEvaluatedKey"] = {"n": {"N": str(start + 1)}}
        return page

    def query(self, **request: Any) -> dict[str, Any]:
        return self._page("query", request)

    def scan(self, **request: Any) -> dict[str, Any]:
        return self._page("scan", request)

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, asked),) = RequestItems.items()
        keys = [(key["pk"]["S"], key["sk"]["S"]) for key in asked["Keys"]]
        return {"Responses": {table: [i for i in self.items if (i["pk"]["S"], i["sk"]["S"]) in keys]}}


def _matches(item: dict[str, Any], request: dict[str, Any]) -> bool:
    """The key conditions inventory asks for (filters are DynamoDB's business, not read here)."""
    values: dict[str, dict[str, str]] = request.get("ExpressionAttributeValues", {})
    pk: str = item["pk"]["S"]
    if "IndexName" in request:
        wanted = next(value["S"] for name, value in values.items() if name in (":topic", ":active"))
        return bool(item.get("state", {}).get("S") == wanted)
    if ":pk" in values:
        return pk == values[":pk"]["S"]
    return pk.startswith(values[":delivery"]["S"])


def topic_item(topic: str, created_at: int) -> dict[str, Any]:
    return {
        "pk": {"S": topic_key(topic)},
        "sk": {"S": "TOPIC"},
        "topic": {"S": topic},
        "state": {"S": TOPIC_STATE},
        "created_at": {"N": str(created_at)},
    }


def subscription_item(topic: str, callback: str) -> dict[str, Any]:
    return {
        "pk": {"S": topic_key(topic)},
        "sk": {"S": f"{SUBSCRIPTION_PREFIX}{callback}"},
        "topic": {"S": topic},
        "callback": {"S": callback},
        "state": {"S": "active"},
        "expires_at": {"N": str(int(NOW) + 3600)},
    }


def test_topics_are_read_over_every_page() -> None:
    table = PagedTable(
        [
            topic_item("acme.login", 100),
            topic_item("acme.logout", 200),
            subscription_item("acme.login", "https://rp.example/a"),
            subscription_item("acme.login", "https://rp.example/b"),
            subscription_item("acme.logout", "https://rp.example/c"),
        ]
    )

    found = inventory.topics(table, "hub", now=NOW)  # type: ignore[arg-type]

    assert found == [
        inventory.TopicInfo("acme.login", 100, 2),
        inventory.TopicInfo("acme.logout", 200, 1),
    ]


def test_a_subscription_is_found_by_id_on_a_later_page() -> None:
    callbacks = [f"https://rp{n}.example/hook" for n in range(3)]
    table = PagedTable([subscription_item("acme.login", callback) for callback in callbacks])
    last = inventory.subscriptions(table, "hub", now=NOW, topic="acme.login").items[-1]  # type: ignore[arg-type]

    found = inventory.subscription(table, "hub", now=NOW, topic="acme.login", name=last.subscription_id)  # type: ignore[arg-type]

    assert found == last
    assert found.callback_host == "rp2.example"


def test_recent_attempts_are_read_over_every_page_of_the_scan() -> None:
    attempts = [
        Attempt(f"e{n}", "acme.login", "https://rp.example/hook", 1, "ok", NOW + n, 200) for n in range(3)
    ]
    table = PagedTable([item for attempt in attempts for item in pack([attempt])])

    found = inventory.recent_attempts(table, "hub", since=NOW)  # type: ignore[arg-type]

    assert [attempt.jti for attempt in found] == ["e0", "e1", "e2"]
    assert table.calls == ["scan", "scan", "scan"]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (
            ClientError({"Error": {"Code": "ThrottlingException", "Message": "echo"}}, "Scan"),
            "ThrottlingException",
        ),
        (EndpointConnectionError(endpoint_url="https://dynamodb.example"), "EndpointConnectionError"),
    ],
)
def test_a_failed_read_names_the_operation_table_and_code(error: Exception, code: str) -> None:
    table = PagedTable([], error=error)

    with pytest.raises(UpstreamError) as scanned:
        inventory.recent_attempts(table, "hub", since=NOW)  # type: ignore[arg-type]
    with pytest.raises(UpstreamError) as queried:
        inventory.topics(table, "hub", now=NOW)  # type: ignore[arg-type]

    assert str(scanned.value) == f"DynamoDB could not scan hub: {code}"
    assert str(queried.value) == f"DynamoDB could not query hub: {code}"
