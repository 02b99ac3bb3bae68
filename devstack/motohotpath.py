"""Two costs of moto's per request that DynamoDB and AWS do not have, cut in the embedded AWS.

- moto answers a DynamoDB ``Query`` of a table (not of an index) by sorting every item of
  the table and keeping those of the partition asked for: its cost grows with the table,
  which grows by a ``jti`` marker and delivery records with every event, so the local
  stack's dispatch got slower the longer it ran (~12 ms of CPU per Query after a few
  hundred events). DynamoDB reads the one partition; here too: the Query is moto's own,
  only the items it looks at are the partition's, which are exactly those it kept, in the
  same order. Queries of an index are moto's, unchanged.
- moto lists a response class's methods (``inspect.getmembers``) on every request to find
  the action's handler; a class's methods do not change while it serves: listed once.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.core import responses
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

_installed = threading.Lock()
_asked = threading.local()
"""The (table, partition key) of the Query this thread is answering, until its items are read."""


def lighten_moto_hot_path() -> None:
    """Install both in this process's moto (idempotent): call it before moto serves."""
    with _installed:
        if getattr(Table, "_sethub_partition_query", False):
            return
        Table.query = _partition_query(Table.query)  # type: ignore[method-assign]
        Table.all_items = _partition_items(Table.all_items)  # type: ignore[method-assign,assignment]
        Table._sethub_partition_query = True  # type: ignore[attr-defined]
        # call_action looks the name up in its module on every request.
        responses.method_names_from_class = functools.cache(responses.method_names_from_class)  # type: ignore[attr-defined]


_INDEX_NAME_AT = 6
"""Where ``Table.query`` takes ``index_name`` among its positional arguments after the hash key."""


def _partition_query(query: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(query)
    def partition_query(self: Table, hash_key: DynamoType | None, *args: Any, **kwargs: Any) -> Any:
        index_name = args[_INDEX_NAME_AT] if len(args) > _INDEX_NAME_AT else kwargs.get("index_name")
        _asked.query = None if index_name or hash_key is None else (self, hash_key)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _asked.query = None

    return partition_query


def _partition_items(all_items: Callable[[Table], list[Item]]) -> Callable[[Table], list[Item]]:
    @functools.wraps(all_items)
    def partition_items(self: Table) -> list[Item]:
        asked = getattr(_asked, "query", None)
        if asked is None or asked[0] is not self:
            return all_items(self)
        _asked.query = None  # the Query reads the table once
        # .get: self.items is a defaultdict, and a lookup must not add an empty partition.
        partition = self.items.get(asked[1])
        if partition is None:
            return []
        items: list[Item] = list(partition.values()) if self.range_key_attr else [partition]
        # moto's order (by hash key, then range key): within one partition, by range key.
        return sorted(items, key=_range_key) if self.range_key_attr else items

    return partition_items


def _range_key(item: Item) -> Any:
    return item.range_key


__all__ = ["lighten_moto_hot_path"]
