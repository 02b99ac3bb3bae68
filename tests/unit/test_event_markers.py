"""jti markers: one write unit each, whatever the publisher's jti and topic. No network."""

from __future__ import annotations

import math
from typing import Any

import pytest

from sethub.clients import AwsClients
from sethub.records import EventMarkers, event_key, item_size
from sethub.settings import Settings


class CapturingDynamoDB:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        self.items.append(kwargs["Item"])
        return {}


@pytest.mark.parametrize(
    ("jti", "topic"),
    [
        ("8f14e45f-ceea-467f-a0e6-2b0e5d3f1a91", "acme.login"),
        ("j" * 256, "https://idp.example/" + "t" * 1000),
        ("\U0001f600" * 256, "acme.login"),  # 256 characters, 1024 bytes
    ],
)
def test_a_marker_is_one_write_unit(jti: str, topic: str) -> None:
    db = CapturingDynamoDB()
    markers = EventMarkers(AwsClients(dynamodb=db), Settings(table_name="hub"))

    assert markers.claim(jti, topic, now=1_764_190_000, publisher="a1b2c3d4e5f6a7b8")

    (item,) = db.items
    assert math.ceil(item_size(item) / 1024) == 1
    assert item["pk"]["S"] == event_key(jti, "a1b2c3d4e5f6a7b8")


def test_a_short_topic_is_kept_on_the_marker_for_operators() -> None:
    db = CapturingDynamoDB()
    EventMarkers(AwsClients(dynamodb=db), Settings(table_name="hub")).claim("e1", "acme.login", now=1.0)

    assert db.items[0]["topic"] == {"S": "acme.login"}
