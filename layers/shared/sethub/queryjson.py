"""DynamoDB ``Query`` items read straight from the response's JSON, not by botocore's parser.

botocore parses a response by walking the operation's model: every attribute of every item
is a tagged-union structure rebuilt member by member, about 30 µs an item here, and a fan-out
reads a page of up to 1,000 subscriptions per invocation (issue 12). Items in DynamoDB's JSON
are already what botocore returns but for binary values, base64 text in the JSON and bytes
from botocore: so ``json.loads`` and decoding those gives the same items for a tenth of the
CPU (``bench/queryparse.py``).

It hooks botocore's ``before-parse`` event of ``Query`` on one client: a successful JSON
response has its ``Items`` and ``LastEvaluatedKey`` read here and handed to botocore as its
customised response; the rest (counts, consumed capacity, metadata) and every error is still
parsed by botocore. Equality with botocore's parser is tested for every attribute type.
"""

from __future__ import annotations

import base64
import json
from typing import Any

_EVENT = "before-parse.dynamodb.Query"
_HANDLER_ID = "sethub.queryjson"


def install(client: Any) -> None:
    """Read ``client``'s Query items with ``read_items`` (once per client, however often called).

    A client without botocore's event system (a test's stand-in) is left as it is.
    """
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is not None:
        events.register(_EVENT, read_items, unique_id=_HANDLER_ID)


def read_items(
    operation_model: Any, response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """The ``before-parse`` handler: moves the items out of the body botocore will parse."""
    body = response_dict.get("body")
    if (
        response_dict.get("status_code") != 200
        or operation_model.service_model.resolved_protocol != "json"
        or not isinstance(body, bytes)
    ):
        return  # errors, and any other protocol a later botocore may speak: botocore's own parser
    try:
        parsed = json.loads(body)
    except ValueError:
        return  # botocore reports it as it would
    if not isinstance(parsed, dict) or not isinstance(parsed.get("Items", []), list):
        return
    moved: dict[str, Any] = {}
    if "Items" in parsed:
        moved["Items"] = [item_of(item) for item in parsed.pop("Items")]
    if "LastEvaluatedKey" in parsed:
        moved["LastEvaluatedKey"] = item_of(parsed.pop("LastEvaluatedKey"))
    response_dict["body"] = json.dumps(parsed).encode()
    customized_response_dict.update(moved)


def item_of(item: dict[str, Any]) -> dict[str, Any]:
    """An item (or a map's value) as botocore returns it, changed in place: binary values decoded."""
    for name, value in item.items():
        # Strings and numbers are most attributes, and botocore's form already.
        if "S" not in value and "N" not in value:
            item[name] = _value(value)
    return item


def _value(value: dict[str, Any]) -> dict[str, Any]:
    if "B" in value:
        return {"B": base64.b64decode(value["B"])}
    if "BS" in value:
        return {"BS": [base64.b64decode(member) for member in value["BS"]]}
    if "M" in value:
        return {"M": item_of(value["M"])}
    if "L" in value:
        return {"L": [_value(member) for member in value["L"]]}
    return value  # S, N, SS, NS, BOOL, NULL: the same in JSON and in botocore's result


__all__ = ["install", "item_of", "read_items"]
