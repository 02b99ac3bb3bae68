"""``sethub`` (``python -m sethub``) against a hub in moto: what an operator sees and changes.

The CLI finds the hub as it finds ``make local``'s (``--endpoint`` and the stack prefix)
or a deployed stack (``--stack``: CloudFormation outputs, here a stack in moto whose
outputs name this hub's resources)."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from counting import Counting

from sethub.cli import main
from sethub.cli.target import CliClients, endpoint_and_region
from sethub.messages import DeliveryRetry
from sethub.records import Attempt, DeliveryRecords
from sethub.ssf.model import Stream
from sethub.ssf.store import SsfStore
from sethub.store import SubscriptionStore
from sethub.subscriptions import subscription_id

TOPIC = "acme.login"
CRM = "https://crm.example/hook?token=crm-t0ken"
SIEM = "https://siem.example:8443/sets"


class Cli:
    """Runs the CLI in-process against one hub, as an operator's shell would."""

    def __init__(self, hub: Any, moto_endpoint: str) -> None:
        self.hub = hub
        self.where = ["--endpoint", moto_endpoint, "--stack", hub.provisioned.prefix]
        # The clients main builds from those options, made once: a boto3 session per command
        # cost most of each test's time and tests nothing of the CLI.
        self.clients = CliClients(*endpoint_and_region(moto_endpoint, None, {}))

    def __call__(self, *argv: str, stdin: str = "", where: list[str] | None = None) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            [*argv, *(self.where if where is None else where)],
            clients=self.clients if where is None else None,
            env={},
            out=out,
            err=err,
            stdin=io.StringIO(stdin),
        )
        return code, out.getvalue(), err.getvalue()

    def with_dynamodb(self, dynamodb: Any, *argv: str) -> tuple[int, str, str]:
        """Runs with ``dynamodb`` as the CLI's DynamoDB client (to count what it calls)."""
        out, err = io.StringIO(), io.StringIO()
        clients = CliClients(self.where[1], "us-east-1", dynamodb=dynamodb)
        code = main([*argv, *self.where], clients=clients, env={}, out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def json(self, *argv: str, where: list[str] | None = None) -> Any:
        code, out, err = self(*argv, "--json", where=where)
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(hub: Any, moto_endpoint: str) -> Cli:
    return Cli(hub, moto_endpoint)


def subscribe(
    hub: Any, callback: str, *, lease: int = 3600, owner: str | None = None, ago: float = 0.0
) -> None:
    store = SubscriptionStore(hub.clients, hub.settings)
    now = time.time() - ago
    request_id = store.put_pending(
        mode="subscribe",
        topic=TOPIC,
        callback=callback,
        format="jwt",
        secret=None,
        lease_seconds=lease,
        requested_at=time.time_ns(),
        now=now,
        owner=owner,
    )
    pending = store.get_pending(TOPIC, callback, request_id, now=now)
    assert pending is not None
    assert store.apply_verified(pending, now=now)


def test_topics_register_list_and_deregister(cli: Cli) -> None:
    code, out, _ = cli("topics", "register", TOPIC)
    assert code == 0
    assert "new" in out
    assert cli.json("topics", "register", TOPIC)["registered"] == "already registered"

    listed = cli.json("topics", "list")
    assert [(t["topic"], t["subscriptions"]) for t in listed] == [(TOPIC, 0)]

    code, out, _ = cli("topics", "list")
    header, row = out.splitlines()
    assert header.split() == ["topic", "created", "subscriptions"]
    assert row.split()[0] == TOPIC

    assert cli("topics", "deregister", TOPIC)[0] == 0
    assert cli.json("topics", "list") == []
    code, _, err = cli("topics", "deregister", TOPIC)
    assert code == 1
    assert err == f"sethub: unknown topic: {TOPIC}\n"


def test_subscriptions_show_state_owner_and_failing_since(cli: Cli, hub: Any) -> None:
    assert cli("topics", "register", TOPIC)[0] == 0
    subscribe(hub, CRM, owner="k-crm")
    subscribe(hub, SIEM)
    store = SubscriptionStore(hub.clients, hub.settings)
    crm = store.get_active(TOPIC, CRM, now=time.time())
    assert crm is not None
    # Its deliveries fail (dispatch notes when that started).
    store.mark_failing(TOPIC, CRM, requested_at=crm.requested_at, now=time.time() - 60)

    rows = {row["callback_host"]: row for row in cli.json("subscriptions", "list")}

    assert rows["crm.example"] | {"expires": None, "failing_since": None} == {
        "topic": TOPIC,
        "subscription": subscription_id(TOPIC, CRM),
        "callback_host": "crm.example",
        "state": "active",
        "owner": "k-crm",
        "format": "jwt",
        "expires": None,
        "failing_since": None,
        "last_outcome": None,  # no delivery yet
        "last_outcome_at": None,
    }
    assert rows["crm.example"]["failing_since"] is not None
    assert (rows["siem.example:8443"]["owner"], rows["siem.example:8443"]["failing_since"]) == (None, None)
    assert cli.json("topics", "list")[0]["subscriptions"] == 2
    # Names a callback by host and id, never by its URL (it may carry a token).
    assert "t0ken" not in cli("subscriptions", "list")[1]


def other_topics(hub: Any, count: int) -> None:
    """Subscriptions of other topics, and delivery records: what a listing must not read."""
    store = SubscriptionStore(hub.clients, hub.settings)
    now = time.time()
    for n in range(count):
        topic = f"other.{n}"
        store.register_topic(topic)
        request_id = store.put_pending(
            mode="subscribe",
            topic=topic,
            callback=f"https://other{n}.example/",
            format="json",
            secret=None,
            lease_seconds=3600,
            requested_at=time.time_ns(),
            now=now,
        )
        pending = store.get_pending(topic, f"https://other{n}.example/", request_id, now=now)
        assert pending is not None
        assert store.apply_verified(pending, now=now)
    DeliveryRecords(hub.clients, hub.settings).write(
        [Attempt(f"e{n}", TOPIC, CRM, 1, "ok", now, 200, "", 5) for n in range(count)]
    )


def test_subscriptions_are_read_by_topic_or_state_a_page_at_a_time_never_scanned(cli: Cli, hub: Any) -> None:
    assert cli("topics", "register", TOPIC)[0] == 0
    subscribe(hub, CRM)
    subscribe(hub, SIEM, ago=7200)  # its hour's lease ran out an hour ago (TTL deletes it later)
    other_topics(hub, 3)
    store = SubscriptionStore(hub.clients, hub.settings)
    # A verified unsubscribe leaves a tombstone (state unsubscribed).
    now = time.time()
    request_id = store.put_pending(
        mode="unsubscribe",
        topic="other.0",
        callback="https://other0.example/",
        format="json",
        secret=None,
        lease_seconds=0,
        requested_at=time.time_ns(),
        now=now,
    )
    pending = store.get_pending("other.0", "https://other0.example/", request_id, now=now)
    assert pending is not None
    assert store.apply_verified(pending, now=now)
    counting = Counting(hub.clients.dynamodb)

    def listed(*argv: str) -> tuple[list[str], str]:
        code, out, err = cli.with_dynamodb(counting, "subscriptions", "list", *argv, "--json")
        assert code == 0, err
        return [f"{row['topic']} {row['state']}" for row in json.loads(out)], err

    # One topic: that topic's partition only
    assert sorted(listed("--topic", TOPIC)[0]) == [f"{TOPIC} active", f"{TOPIC} expired"]
    assert listed("--topic", TOPIC, "--state", "expired")[0] == [f"{TOPIC} expired"]
    # A state: the index of that state
    assert sorted(listed("--state", "active")[0]) == [f"{TOPIC} active", "other.1 active", "other.2 active"]
    assert listed("--state", "unsubscribed")[0] == ["other.0 unsubscribed"]
    assert listed("--state", "disabled")[0] == []
    assert counting.calls.get("scan", 0) == 0

    # Everything, two at a time: each page says how to go on, no subscription twice or lost
    seen: list[str] = []
    token: list[str] = []
    while True:
        rows, err = listed("--limit", "2", *token)
        assert len(rows) <= 2
        seen += rows
        if "--next" not in err:
            break
        token = ["--next", err.split("--next ")[1].strip()]
    assert sorted(seen) == sorted(
        [f"{TOPIC} active", f"{TOPIC} expired", "other.0 unsubscribed", "other.1 active", "other.2 active"]
    )
    assert counting.calls.get("scan", 0) == 0
    # A token it did not write is bad usage
    code, _, err = cli("subscriptions", "list", "--next", "bm90LWEtdG9rZW4=")
    assert (code, err) == (2, "sethub: not a page token of this listing (pass --next as printed)\n")


def test_topics_are_listed_from_the_index_never_scanned_and_older_topics_indexed_once(
    cli: Cli, hub: Any
) -> None:
    assert cli("topics", "register", TOPIC)[0] == 0
    subscribe(hub, CRM)
    subscribe(hub, SIEM, ago=7200)  # expired: not live
    other_topics(hub, 2)
    # A topic registered before topic items were indexed (no state): as an older hub wrote it.
    hub.clients.dynamodb.put_item(
        TableName=hub.settings.table_name,
        Item={
            "pk": {"S": "TOPIC#acme.legacy"},
            "sk": {"S": "TOPIC"},
            "topic": {"S": "acme.legacy"},
            "created_at": {"N": "1764190000"},
        },
    )
    expected = [("acme.legacy", 0), (TOPIC, 1), ("other.0", 1), ("other.1", 1)]

    first = Counting(hub.clients.dynamodb)
    code, out, err = cli.with_dynamodb(first, "topics", "list", "--json")
    assert code == 0, err
    assert [(t["topic"], t["subscriptions"]) for t in json.loads(out)] == expected
    assert err == (
        "indexed 1 topic(s) registered before the topic index "
        "(a one-off scan of the table; later listings read the index only)\n"
    )
    assert json.loads(out)[0]["created"] == "2025-11-26T20:46:40Z"

    # From then on: the index only, whatever else the table holds.
    again = Counting(hub.clients.dynamodb)
    code, out, err = cli.with_dynamodb(again, "topics", "list", "--json")
    assert (code, err) == (0, "")
    assert [(t["topic"], t["subscriptions"]) for t in json.loads(out)] == expected
    assert again.calls.get("scan", 0) == 0
    assert again.calls.get("query", 0) == 2  # the topic and active partitions, one page each
    # A topic registered now is indexed as it is written.
    assert cli("topics", "register", "acme.new")[0] == 0
    assert "acme.new" in [t["topic"] for t in cli.json("topics", "list")]


def test_deliveries_of_an_event_and_not_found(cli: Cli, hub: Any) -> None:
    DeliveryRecords(hub.clients, hub.settings).write(
        [
            Attempt("jti-1", TOPIC, CRM, 1, "retrying", 1764190000.25, 503, "HTTP 503", 41),
            Attempt("jti-1", TOPIC, CRM, 2, "ok", 1764190031.0, 200, "", 9),
        ]
    )

    attempts = cli.json("deliveries", "jti-1")
    assert [(a["attempt"], a["status"], a["http"]) for a in attempts] == [
        (1, "retrying", 503),
        (2, "ok", 200),
    ]
    code, out, _ = cli("deliveries", "jti-1", "--callback", CRM)
    assert code == 0
    assert out.splitlines()[1].split()[0] == "2025-11-26T20:46:40.250Z"

    code, out, err = cli("deliveries", "no-such-event")
    assert (code, out) == (1, "")
    assert err == "sethub: no delivery attempts recorded for no-such-event (records are kept 30 days)\n"


def test_keys_create_list_scope_revoke(cli: Cli) -> None:
    created = cli.json("keys", "create", "--role", "publisher", "--topics", "acme.*", "--name", "acme")
    assert len(created["key"]) >= 20
    assert (created["role"], created["topics"], created["status"]) == ("publisher", ["acme.*"], "active")

    listed = {row["key_id"]: row for row in cli.json("keys", "list")}
    assert listed[created["key_id"]]["name"] == "acme"
    assert all("key" not in row for row in listed.values())

    scoped = cli.json("keys", "scope", created["key_id"], "--topics", "acme.*,billing.*")
    assert scoped["topics"] == ["acme.*", "billing.*"]
    revoked = cli.json("keys", "revoke", created["key_id"])
    assert revoked["status"].startswith("revoked ")

    code, _, err = cli("keys", "revoke", "nope")
    assert code == 1
    assert err == "sethub: no key has the id 'nope'\n"
    code, _, err = cli("keys", "scope", created["key_id"])
    assert code == 2
    assert err == "sethub: keys scope: give --topics and/or --issuer\n"


def test_ssf_receivers_and_streams(cli: Cli, hub: Any) -> None:
    created = cli.json("ssf", "receivers", "create", "crm-receiver", "--name", "CRM")
    assert created["client_secret"]
    assert [r["client_id"] for r in cli.json("ssf", "receivers", "list")] == ["crm-receiver"]
    assert cli("ssf", "receivers", "create", "crm-receiver")[0] == 1
    SsfStore(hub.clients.dynamodb, hub.settings.table_name).save_stream(
        Stream(
            stream_id="s-1",
            client_id="crm-receiver",
            iss="https://hub.example",
            method="urn:ietf:rfc:8935",
            endpoint_url="https://crm.example/ssf?token=t0ken",
            status="paused",
            created_at=1764190000,
        )
    )

    streams = cli.json("ssf", "streams", "list")
    assert [(s["stream_id"], s["status"], s["method"], s["endpoint_host"]) for s in streams] == [
        ("s-1", "paused", "push", "crm.example")
    ]
    assert cli.json("ssf", "streams", "list", "--status", "enabled") == []

    assert cli.json("ssf", "receivers", "delete", "crm-receiver")["deleted"] is True
    code, _, err = cli("ssf", "receivers", "delete", "crm-receiver")
    assert (code, err) == (1, "sethub: no receiver crm-receiver\n")


def test_dead_letters_list_and_replay(cli: Cli, hub: Any) -> None:
    sqs = hub.clients.sqs
    dlq = hub.provisioned.queue_urls["RetryDeadLetterQueue"]
    retry = hub.provisioned.queue_urls["RetryQueue"]
    record = DeliveryRetry(
        topic=TOPIC,
        callback=CRM,
        jti="jti-dead",
        hub_url="https://hub.example/hub",
        content_type="application/secevent+jwt",
        body_b64="",
        attempts=9,
        not_before=0.0,
        last_error="HTTP 503",
    )
    sqs.send_message(QueueUrl=dlq, MessageBody=record.to_json())

    listed = cli.json("dead-letters", "list")
    assert [(d["kind"], d["jti"], d["attempts"], d["last_error"]) for d in listed] == [
        ("retry", "jti-dead", 9, "HTTP 503")
    ]
    assert "t0ken" not in json.dumps(listed)
    # Peeking leaves it there; a dry run too.
    assert cli.json("dead-letters", "replay", "--dry-run")["moved"] == 1
    assert len(cli.json("dead-letters", "list")) == 1

    assert cli.json("dead-letters", "replay")["moved"] == 1
    assert cli.json("dead-letters", "list") == []
    moved = sqs.receive_message(QueueUrl=retry, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["attempts"] for m in moved] == [0]


def test_signing_keys_show_and_rotate(cli: Cli) -> None:
    before = cli.json("signing-keys", "show")
    rotated = cli.json("signing-keys", "rotate", "--activate-in", "0")
    assert len(rotated) == len(before) + 1
    assert [k["state"] for k in rotated].count("signing") == 1
    assert cli.json("signing-keys", "show") == rotated


def test_stats_of_the_last_hour(cli: Cli, hub: Any) -> None:
    now = time.time()
    DeliveryRecords(hub.clients, hub.settings).write(
        [
            Attempt("a", TOPIC, CRM, 1, "ok", now - 100, 200, "", 10),
            Attempt("b", TOPIC, CRM, 1, "retrying", now - 90, 503, "HTTP 503", 30),
            Attempt("b", TOPIC, CRM, 2, "ok", now - 80, 200, "", 20),
            Attempt("c", TOPIC, SIEM, 9, "dead", now - 70, 500, "HTTP 500", 1000),
            Attempt("old", TOPIC, SIEM, 1, "ok", now - 7200, 200, "", 5),
        ]
    )
    dlq = hub.provisioned.queue_urls["RetryDeadLetterQueue"]
    hub.clients.sqs.send_message(QueueUrl=dlq, MessageBody="{}")

    stats = cli.json("stats")

    assert stats["outcomes"] == {"dead": 1, "ok": 2, "retrying": 1}
    assert (stats["attempts"], stats["retries"], stats["dead_in_window"]) == (4, 2, 1)
    assert (stats["latency_p50_ms"], stats["latency_p99_ms"]) == (20, 1000)
    assert stats["queues"]["dead_letters"] == 1
    assert stats["disabled_subscriptions"] == 0
    assert set(stats["sources"]) >= {"outcomes", "latency_ms", "queues"}
    code, out, _ = cli("stats", "--minutes", "60")
    assert code == 0
    assert ["latency", "p99", "ms", "1000"] in [line.split() for line in out.splitlines()]


def test_a_deployed_stack_is_found_by_its_outputs(cli: Cli, hub: Any) -> None:
    outputs = {
        "TableName": hub.settings.table_name,
        "DeadLetterQueueUrl": hub.provisioned.queue_urls["RetryDeadLetterQueue"],
        "RetryQueueUrl": hub.provisioned.queue_urls["RetryQueue"],
    }
    name = f"{hub.provisioned.prefix}-deployed"
    hub.clients._client("cloudformation").create_stack(
        StackName=name,
        TemplateBody=json.dumps(
            {
                "Resources": {"Nothing": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {key: {"Value": value} for key, value in outputs.items()},
            }
        ),
    )
    assert cli("topics", "register", TOPIC, where=["--stack", name])[0] == 0
    assert [t["topic"] for t in cli.json("topics", "list")] == [TOPIC]

    code, _, err = cli("topics", "list", where=["--stack", "no-such-stack"])
    assert code == 1
    assert err.startswith("sethub: could not read stack no-such-stack: ")
    assert err.count("\n") == 1


def test_stats_of_a_deployed_stack_come_from_cloudwatch_not_the_table(cli: Cli, hub: Any) -> None:
    name = f"{hub.provisioned.prefix}-metrics"
    hub.clients._client("cloudformation").create_stack(
        StackName=name,
        TemplateBody=json.dumps(
            {
                "Resources": {"Nothing": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {"TableName": {"Value": hub.settings.table_name}},
            }
        ),
    )
    # What dispatch published in the last hour (its EMF, as CloudWatch keeps it) ...
    service = [{"Name": "service", "Value": "sethub"}]
    hub.clients._client("cloudwatch").put_metric_data(
        Namespace="sethub",
        MetricData=[
            {"MetricName": "DeliveriesOk", "Dimensions": service, "Value": 5, "Unit": "Count"},
            {"MetricName": "DeliveriesRetrying", "Dimensions": service, "Value": 2, "Unit": "Count"},
            {"MetricName": "DeliveriesDead", "Dimensions": service, "Value": 1, "Unit": "Count"},
        ],
    )
    # ... and a record the table holds, which the command does not read.
    DeliveryRecords(hub.clients, hub.settings).write([Attempt("x", TOPIC, CRM, 1, "gone", time.time(), 410)])
    counting = Counting(hub.clients.dynamodb)
    out, err = io.StringIO(), io.StringIO()

    code = main(
        ["stats", "--stack", name, "--json"],
        clients=CliClients(None, "us-east-1", dynamodb=counting),
        env={},
        out=out,
        err=err,
    )

    assert code == 0, err.getvalue()
    stats = json.loads(out.getvalue())
    assert stats["outcomes"] == {"dead": 1, "ok": 5, "retrying": 2}
    assert (stats["attempts"], stats["retries"], stats["dead_in_window"]) == (8, 2, 1)
    assert stats["sources"]["outcomes"].startswith("CloudWatch")
    assert counting.calls.get("scan", 0) == 0


def test_usage_errors_and_help(cli: Cli) -> None:
    assert cli("--help", where=[])[0] == 0
    code, _, err = cli("stats", where=[])
    assert code == 2
    assert err == (
        "sethub: no hub table: pass --stack NAME (a deployed stack), --endpoint URL (make local), "
        "or set SETHUB_TABLE_NAME\n"
    )
    for group in ("topics", "subscriptions", "keys", "ssf", "dead-letters", "signing-keys"):
        assert cli(group, where=[])[0] == 2
        assert cli(group, "--help", where=[])[0] == 0
