"""Ingress=http: POST /events on an HTTP API, behind the API-key authorizer.

GIVEN a hub provisioned with ``Ingress=http`` (the authorizer function exists) whose
functions call moto through their roles of the SAM-transformed template (devstack.awsgate,
as the local stack does): the authorizer admits live admin and publisher keys and refuses
missing, unknown, revoked and subscriber keys; the ingest function takes the HTTP API's
payload 2.0 events as it takes the REST API's, with the hub's own URL from the stage
variable; it limits each key to its rate and daily quota (429 with Retry-After, nothing
queued, other keys served; the REST API's events are the usage plan's business); and an
authorizer whose role lacks GetItem cannot read a key.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from hubs import LOCAL_OVERRIDES, DirectClients, Hub

from devstack.credentials import seed_local_keys
from devstack.gateway import proxy_event
from devstack.provision import provision
from sethub.clients import AwsClients
from sethub.credentials import ratelimit
from sethub.credentials.admin import KeyAdmin
from sethub.credentials.dynamodb import DynamoDBCredentialStore
from sethub.messages import SetEvent, parse_message
from sethub.settings import Settings

LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"
HUB_BASE = "https://hub.example/Prod"
HTTP_INGRESS = {"Ingress": "http", "OpenTopics": "true"}
ADMIN, PUBLISHER, SUBSCRIBER = "local-dev-key", "local-publisher-key", "local-subscriber-key"


def http_api_event(
    key: str | None, body: str, *, stage_variables: dict[str, str] | None = None
) -> dict[str, Any]:
    """An HTTP API payload 2.0 event for POST /events, as API Gateway hands it to a Lambda."""
    headers = {"content-type": "application/json", "host": "abc123.execute-api.us-east-1.amazonaws.com"}
    if key is not None:
        headers["x-api-key"] = key  # HTTP APIs lower-case header names
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "POST /events",
        "rawPath": "/events",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": "/events",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "test",
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "POST /events",
            "stage": "$default",
            "time": "02/Dec/2026:05:00:00 +0000",
            "timeEpoch": 1796101200000,
        },
        "body": body,
        "isBase64Encoded": False,
    }
    if stage_variables is not None:
        event["stageVariables"] = stage_variables
    return event


def authorizer_event(key: str | None) -> dict[str, Any]:
    """The REQUEST authorizer's payload 2.0 event (identity source: the x-api-key header)."""
    event = http_api_event(key, "")
    event.pop("body")
    event["type"] = "REQUEST"
    event["routeArn"] = "arn:aws:execute-api:us-east-1:123456789012:abc123/$default/POST/events"
    event["identitySource"] = [key] if key is not None else []
    return event


def build(moto_endpoint: str, template: dict[str, Any], env: dict[str, str] | None = None) -> Hub:
    provisioned = provision(
        template,
        endpoint_url=moto_endpoint,
        parameters=HTTP_INGRESS,
        prefix=f"t{uuid.uuid4().hex[:10]}",
        # No public URL: the hub's own URL comes from the stage variable.
        overrides={**LOCAL_OVERRIDES, "SETHUB_PUBLIC_URL": "", **(env or {})},
    )
    seed_local_keys(provisioned, {})
    env = provisioned.union_env()
    return Hub(
        settings=Settings.from_env(env),
        clients=DirectClients(moto_endpoint),
        env=env,
        provisioned=provisioned,
    )


@pytest.fixture
def http_hub_factory(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Hub]]:
    """Hubs with Ingress=http, their functions' environment in os.environ (as the local stack does)."""
    built: list[Hub] = []

    def make(template: dict[str, Any], env: dict[str, str] | None = None) -> Hub:
        built.append(build(moto_endpoint, template, env))
        for name, value in built[-1].env.items():
            monkeypatch.setenv(name, value)
        return built[-1]

    yield make
    for hub in built:
        hub.close()


@pytest.fixture
def http_hub(template: dict[str, Any], http_hub_factory: Callable[..., Hub]) -> Hub:
    return http_hub_factory(template)


def admin_of(hub: Hub) -> KeyAdmin:
    dynamodb = boto3.client("dynamodb", endpoint_url=hub.provisioned.endpoint_url, region_name="us-east-1")
    return KeyAdmin(DynamoDBCredentialStore(AwsClients(dynamodb=dynamodb), hub.settings.table_name))


def test_the_authorizer_admits_publishing_keys_and_refuses_the_others(http_hub: Hub) -> None:
    authorizer = http_hub.function("AuthorizerFunction")
    admin = admin_of(http_hub)
    revoked, record = admin.create("publisher", name="gone")
    admin.revoke(record.key_id)

    answers = {
        name: authorizer.invoke(authorizer_event(key))
        for name, key in {
            "admin": ADMIN,
            "publisher": PUBLISHER,
            "subscriber": SUBSCRIBER,
            "unknown": "shk" + "x" * 43,
            "revoked": revoked,
            "missing": None,
        }.items()
    }

    assert answers["admin"] == {
        "isAuthorized": True,
        "context": {"keyId": answers["admin"]["context"]["keyId"], "role": "admin"},
    }
    assert answers["publisher"]["isAuthorized"] is True
    assert answers["publisher"]["context"]["role"] == "publisher"
    for refused in ("subscriber", "unknown", "revoked", "missing"):
        assert answers[refused] == {"isAuthorized": False}, refused
    # The context names the key by its public id, never the key.
    assert PUBLISHER not in json.dumps(answers)


def test_ingest_takes_http_api_events_with_the_hubs_own_url(http_hub: Hub) -> None:
    ingest = http_hub.function("IngestFunction")
    published = {"topic": "acme.login", "events": {LOGIN: {"user": {"id": "42"}}}}

    response = ingest.invoke(
        http_api_event(PUBLISHER, json.dumps(published), stage_variables={"hubBaseUrl": HUB_BASE})
    )

    assert response["statusCode"] == 202, response["body"]
    (accepted,) = json.loads(response["body"])["accepted"]
    sqs = boto3.client("sqs", endpoint_url=http_hub.provisioned.endpoint_url, region_name="us-east-1")
    queue = http_hub.provisioned.env_for("IngestFunction")["SETHUB_EVENTS_QUEUE_URL"]
    (message,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    event = parse_message(message["Body"])
    assert isinstance(event, SetEvent)
    assert event.jti == accepted["jti"]
    # Published through the HTTP API's domain, the SET still names the hub (REST API) URL.
    assert event.hub_url == f"{HUB_BASE}/hub"
    assert event.claims["iss"] == HUB_BASE


def test_ingest_refuses_on_http_api_events_as_on_rest_events(http_hub: Hub) -> None:
    ingest = http_hub.function("IngestFunction")
    bad = "{not json"

    subscriber = ingest.invoke(http_api_event(SUBSCRIBER, json.dumps({"topic": "t", "events": {}})))
    missing = ingest.invoke(http_api_event(None, "{}"))
    v2 = ingest.invoke(http_api_event(PUBLISHER, bad))
    v1 = ingest.invoke(
        proxy_event(
            resource="/events",
            method="POST",
            headers=[("x-api-key", PUBLISHER), ("Content-Type", "application/json")],
            body=bad.encode(),
        )
    )

    assert subscriber["statusCode"] == 403
    assert json.loads(subscriber["body"]) == {"error": "a subscriber key cannot publish or manage topics"}
    assert missing["statusCode"] == 401
    assert v2["statusCode"] == v1["statusCode"] == 400
    assert json.loads(v2["body"]) == json.loads(v1["body"])


def test_an_authorizer_role_without_getitem_cannot_read_keys(
    template: dict[str, Any], http_hub_factory: Callable[..., Hub]
) -> None:
    broken = copy.deepcopy(template)
    statements = broken["Resources"]["AuthorizerFunction"]["Properties"]["Policies"][0]["Statement"]
    statements[0]["Action"] = ["dynamodb:Query"]
    hub = http_hub_factory(broken)

    authorizer = hub.function("AuthorizerFunction")
    with pytest.raises(Exception, match="AccessDenied"):
        authorizer.invoke(authorizer_event(PUBLISHER))


def publish(ingest: Any, key: str, *, rest: bool = False) -> dict[str, Any]:
    body = json.dumps({"topic": "acme.login", "events": {LOGIN: {"user": {"id": "42"}}}})
    if rest:
        headers = [("x-api-key", key), ("Content-Type", "application/json")]
        return ingest.invoke(
            proxy_event(resource="/events", method="POST", headers=headers, body=body.encode())
        )
    return ingest.invoke(http_api_event(key, body, stage_variables={"hubBaseUrl": HUB_BASE}))


def queued(hub: Hub) -> int:
    """Events waiting on the events queue."""
    sqs = boto3.client("sqs", endpoint_url=hub.provisioned.endpoint_url, region_name="us-east-1")
    queue = hub.provisioned.env_for("IngestFunction")["SETHUB_EVENTS_QUEUE_URL"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def key_limits(*, rate: int, burst: int, daily_quota: int) -> dict[str, str]:
    """What the template sets from KeyRateLimit, KeyBurstLimit and KeyDailyQuota with Ingress=http
    (tests/unit/test_template.py; set here directly: another set of parameters costs a SAM
    transform of seconds)."""
    return {
        "SETHUB_KEY_RATE_LIMIT": str(rate),
        "SETHUB_KEY_BURST_LIMIT": str(burst),
        "SETHUB_KEY_DAILY_QUOTA": str(daily_quota),
    }


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The limiter's clock (sethub.credentials.ratelimit reads time.time per call), set by the test."""
    clock = SimpleNamespace(now=1_796_176_800.25)  # 2026-12-02T02:00:00.25Z
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: clock.now))
    return clock


def test_a_key_over_its_rate_gets_429_while_another_key_is_served(
    template: dict[str, Any], http_hub_factory: Callable[..., Hub], frozen_clock: SimpleNamespace
) -> None:
    # 3 requests per 3 s window, each key's requests added to the table one by one.
    hub = http_hub_factory(template, key_limits(rate=1, burst=3, daily_quota=1000))
    ingest = hub.function("IngestFunction")

    served = [publish(ingest, PUBLISHER)["statusCode"] for _ in range(3)]
    refused = publish(ingest, PUBLISHER)
    other = publish(ingest, ADMIN)
    # The REST API's requests are limited by its usage plan, not counted here.
    rest = publish(ingest, PUBLISHER, rest=True)

    assert served == [202] * 3
    assert refused["statusCode"] == 429
    assert json.loads(refused["body"]) == {
        "error": "this API key is over its rate limit of 1 requests per second"
    }
    # The 3 s window of 02:00:00.25 ends at 02:00:03.
    assert refused["headers"]["Retry-After"] == "3"
    assert other["statusCode"] == 202
    assert rest["statusCode"] == 202
    assert queued(hub) == 5  # the refused request queued nothing
    frozen_clock.now += 3
    assert publish(ingest, PUBLISHER)["statusCode"] == 202


def test_a_key_over_its_daily_quota_gets_429_until_midnight_utc(
    template: dict[str, Any], http_hub_factory: Callable[..., Hub], frozen_clock: SimpleNamespace
) -> None:
    hub = http_hub_factory(template, key_limits(rate=100, burst=100, daily_quota=3))
    ingest = hub.function("IngestFunction")

    served = []
    for _ in range(3):
        served.append(publish(ingest, PUBLISHER)["statusCode"])
        frozen_clock.now += 60
    refused = publish(ingest, PUBLISHER)
    other = publish(ingest, ADMIN)

    assert served == [202] * 3
    assert refused["statusCode"] == 429
    assert json.loads(refused["body"]) == {
        "error": "this API key used its daily quota of 3 requests (UTC day)"
    }
    # 02:03:00.25 UTC: 21h57m of the day left.
    assert refused["headers"]["Retry-After"] == str(22 * 3600 - 180)
    assert other["statusCode"] == 202
    frozen_clock.now = 1_796_256_000.0  # the next UTC day
    assert publish(ingest, PUBLISHER)["statusCode"] == 202
