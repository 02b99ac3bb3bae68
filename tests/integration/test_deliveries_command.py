"""``sethub deliveries`` against the moto hub table: what an operator sees.

Callbacks are named by subscription id and host: the table never holds a callback URL,
whose path or query may carry a token."""

from __future__ import annotations

from typing import Any

import pytest
from operator_cli import run_cli, table_rows

from sethub.records import Attempt, DeliveryRecords
from sethub.subscriptions import subscription_id

JTI = "8f14e45f-ceea-467f-a0e6-2b0e5d3f1a91"
CRM = "https://crm.example/hook/tenant-acme?token=crm-t0ken"
SIEM = "https://siem.example:8443/sets/siem-path-t0ken"
CRM_ID = subscription_id("acme.login", CRM)
SIEM_ID = subscription_id("acme.login", SIEM)


@pytest.fixture
def recorded(hub: Any) -> list[Attempt]:
    attempts = [
        Attempt(JTI, "acme.login", CRM, 1, "retrying", 1764190000.25, 503, "HTTP 503", 41),
        Attempt(JTI, "acme.login", SIEM, 1, "ok", 1764190000.5, 202, "", 12),
        Attempt(JTI, "acme.login", CRM, 2, "ok", 1764190031.0, 200, "", 9),
        Attempt("another-event", "acme.login", CRM, 1, "ok", 1764190000.0, 200, "", 5),
    ]
    DeliveryRecords(hub.clients, hub.settings).write(attempts)
    return attempts


def run(hub: Any, *argv: str, env: dict[str, str] | None = None) -> tuple[int, list[list[str]], str]:
    code, out, err = run_cli(["deliveries", *argv], clients=hub.clients, env=env)
    return code, table_rows(out), err


def test_every_attempt_of_an_event_is_listed_oldest_first(hub: Any, recorded: list[Attempt]) -> None:
    code, rows, _ = run(hub, JTI, "--table", hub.settings.table_name)

    assert code == 0
    assert rows == [
        [
            "time",
            "topic",
            "subscription",
            "callback_host",
            "attempt",
            "status",
            "http",
            "duration_ms",
            "error",
        ],
        [
            "2025-11-26T20:46:40.250Z",
            "acme.login",
            CRM_ID,
            "crm.example",
            "1",
            "retrying",
            "503",
            "41",
            "HTTP 503",
        ],
        ["2025-11-26T20:46:40.500Z", "acme.login", SIEM_ID, "siem.example:8443", "1", "ok", "202", "12", "-"],
        ["2025-11-26T20:47:11.000Z", "acme.login", CRM_ID, "crm.example", "2", "ok", "200", "9", "-"],
    ]


def test_the_table_keeps_no_callback_path_or_query(hub: Any, recorded: list[Attempt]) -> None:
    table = hub.clients.dynamodb.scan(TableName=hub.settings.table_name)["Items"]
    items = [item for item in table if item["pk"]["S"].startswith("DELIVERY#")]

    assert len(items) == len(recorded)
    assert "t0ken" not in repr(items)
    assert "/hook" not in repr(items)


def test_callback_narrows_to_one_subscriber_and_the_table_comes_from_the_environment(
    hub: Any, recorded: list[Attempt]
) -> None:
    code, rows, _ = run(hub, JTI, "--callback", CRM, env={"SETHUB_TABLE_NAME": hub.settings.table_name})

    assert code == 0
    assert [(row[2], row[3], row[4], row[5], row[6]) for row in rows[1:]] == [
        (CRM_ID, "crm.example", "1", "retrying", "503"),
        (CRM_ID, "crm.example", "2", "ok", "200"),
    ]


def test_an_event_nobody_was_sent_says_so_and_exits_1(hub: Any, recorded: list[Attempt]) -> None:
    code, rows, err = run(hub, "never-published", "--table", hub.settings.table_name)

    assert code == 1
    assert rows == []
    assert (
        err.strip() == "sethub: no delivery attempts recorded for never-published (records are kept 30 days)"
    )


def test_a_missing_table_is_an_error_with_a_reason(hub: Any) -> None:
    code, _, err = run(hub, JTI, "--table", "no-such-table")

    assert code == 1
    assert err.strip() == "sethub: DynamoDB could not read delivery records: ResourceNotFoundException"
