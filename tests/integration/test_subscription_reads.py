"""What dispatch reads of a subscription: the projected fan-out Query loses nothing.

``SubscriptionStore.list_active`` (dispatch's fan-out) projects the attributes a
``Subscription`` holds and reads the Query's items with ``sethub.queryjson`` instead of
botocore's parser; ``get_active`` (a retry's read) reads the whole item with botocore's.
Both run against the hub's table in moto, over HTTP.
"""

from __future__ import annotations

import base64
import dataclasses
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hubs import Hub

from sethub import queryjson
from sethub.clients import DEFAULT_CONFIG, new_session
from sethub.outcomes import LastOutcome
from sethub.store import OutcomeWrite, SubscriptionStore

TOPIC = "acme.login"
CALLBACK = "https://crm.example/hook?token=crm-t0ken"
OWNER = "key-crm"


def _whsec(fill: int) -> bytes:
    return b"whsec_" + base64.b64encode(bytes([fill]) * 32)


def _subscribe(store: SubscriptionStore, secret: bytes) -> int:
    requested_at = time.time_ns()
    request_id = store.put_pending(
        mode="subscribe",
        topic=TOPIC,
        callback=CALLBACK,
        format="json",
        secret=secret,
        lease_seconds=7200,
        requested_at=requested_at,
        requester=OWNER,
        owner=OWNER,
        signing="standard-webhooks",
        events=frozenset({"https://schemas.openid.net/secevent/caep/event-type/session-revoked"}),
    )
    pending = store.get_pending(TOPIC, CALLBACK, request_id)
    assert pending is not None
    assert store.apply_verified(pending)
    return requested_at


def test_the_fanout_read_of_a_subscription_with_every_field_equals_the_full_read(hub: Hub) -> None:
    writer = SubscriptionStore(hub.clients, hub.settings)
    writer.register_topic(TOPIC)
    _subscribe(writer, _whsec(1))
    requested_at = _subscribe(writer, _whsec(2))  # a new secret: the first signs on as the previous
    now = time.time()
    assert writer.mark_failing(TOPIC, CALLBACK, requested_at=requested_at, now=now - 60) > 0
    writer.list_active(TOPIC, now=now)  # learns the subscription, so it may store an outcome
    outcome = LastOutcome("failed", now, 503, "HTTP 503")
    assert writer.write_outcome(OutcomeWrite(TOPIC, CALLBACK, requested_at, outcome))

    dispatch = SubscriptionStore(hub.clients, hub.settings)
    (fanout,), cursor = dispatch.list_active(TOPIC, now=now)
    retry = SubscriptionStore(hub.clients, hub.settings)
    full = retry.get_active(TOPIC, CALLBACK, now=now)

    assert cursor is None
    assert full is not None
    # Every field is set, none at its default: an attribute left out of the projection shows.
    defaults = {"format": "jwt", "signing": "websub"}
    for field in dataclasses.fields(full):
        value = getattr(full, field.name)
        assert value, field.name
        assert value != defaults.get(field.name), field.name
    assert fanout == full
    assert fanout.secret == _whsec(2)
    assert fanout.previous_secret == _whsec(1)
    # The stored last outcome is known alike, so a repeat failure is no write.
    assert dispatch._known_outcomes == retry._known_outcomes
    stored = LastOutcome("failed", float(f"{now:.3f}"))
    assert list(dispatch._known_outcomes.values()) == [(requested_at, stored)]


def _every_type(pk: str, sk: str) -> dict[str, Any]:
    return {
        "pk": {"S": pk},
        "sk": {"S": sk},
        "s": {"S": "text é"},
        "n": {"N": "-12.5"},
        "b": {"B": b"\x00\xffbytes"},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]},
        "bs": {"BS": [b"\x01", b"\x02\x03"]},
        "bool": {"BOOL": False},
        "null": {"NULL": True},
        "m": {"M": {"inner": {"B": b"\x10"}, "deep": {"M": {"x": {"L": [{"B": b"\x11"}, {"N": "3"}]}}}}},
        "l": {"L": [{"S": "x"}, {"B": b"\x12"}, {"M": {"y": {"BS": [b"\x13"]}}}, {"NULL": True}, {"L": []}]},
        "empty_m": {"M": {}},
    }


@pytest.fixture
def two_clients(hub: Hub) -> tuple[Any, Any]:
    """One client reading Query items by sethub.queryjson, one by botocore's own parser."""
    session = new_session()
    endpoint = hub.clients.dynamodb.meta.endpoint_url
    hooked = session.create_client("dynamodb", endpoint_url=endpoint, config=DEFAULT_CONFIG)
    queryjson.install(hooked)
    queryjson.install(hooked)  # once per client, however often
    plain = session.create_client("dynamodb", endpoint_url=endpoint, config=DEFAULT_CONFIG)
    return hooked, plain


def test_query_items_read_from_json_equal_botocores_for_every_attribute_type(
    hub: Hub, two_clients: tuple[Any, Any]
) -> None:
    hooked, plain = two_clients
    table = hub.settings.table_name
    for sk in ("A", "B"):
        plain.put_item(TableName=table, Item=_every_type("TEST#types", sk))
    request = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": "TEST#types"}},
        "ReturnConsumedCapacity": "TOTAL",
    }

    for page in ({"Limit": 1}, {}):  # one with a LastEvaluatedKey, one without
        ours, theirs = hooked.query(**request, **page), plain.query(**request, **page)
        for response in (ours, theirs):
            response["ResponseMetadata"].pop("RequestId", None)
            response["ResponseMetadata"].pop("HTTPHeaders", None)
        assert ours == theirs
        assert ours["Items"][0] == _every_type("TEST#types", "A")
    assert "LastEvaluatedKey" in hooked.query(**request, Limit=1)


def test_a_query_error_is_botocores_own(two_clients: tuple[Any, Any]) -> None:
    hooked, plain = two_clients
    errors = []
    for client in two_clients:
        with pytest.raises(ClientError) as raised:
            client.query(
                TableName="no-such-table",
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": "x"}},
            )
        errors.append(raised.value.response["Error"])
    assert errors[0] == errors[1]
    assert errors[0]["Code"] == "ResourceNotFoundException"
    assert hooked is not plain
