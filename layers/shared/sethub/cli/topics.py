"""``sethub topics``: the registered topics and their live subscriptions.

``list`` reads the table's ``ByState`` index (topics, and the active subscriptions per
topic), never the whole table; the first listing after the upgrade that indexed topics
indexes the topics registered before it, once (it says so on stderr).
"""

from __future__ import annotations

import argparse
from typing import Any

from sethub import inventory
from sethub.cli.context import Context
from sethub.cli.output import when
from sethub.settings import Settings
from sethub.store import SubscriptionStore


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    group = groups.add_parser("topics", help="registered topics", description=__doc__)
    commands = group.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser(
        "list", parents=[common], help="every registered topic, with its number of live subscriptions"
    )
    listing.set_defaults(run=list_topics)
    add = commands.add_parser("register", parents=[common], help="register a topic (as hub.mode=register)")
    add.add_argument("topic")
    add.set_defaults(run=register_topic)
    remove = commands.add_parser(
        "deregister", parents=[common], help="remove a topic and every subscription to it"
    )
    remove.add_argument("topic")
    remove.set_defaults(run=deregister_topic)


def _store(context: Context) -> SubscriptionStore:
    return SubscriptionStore(context.clients, Settings(table_name=context.target.table()))


def list_topics(context: Context) -> int:
    table = context.target.table()
    store = _store(context)
    if not store.topics_indexed():
        # Once per table, after the upgrade that put topics in the ByState index.
        count = store.index_old_topics()
        if count:
            context.note(
                f"indexed {count} topic(s) registered before the topic index "
                "(a one-off scan of the table; later listings read the index only)"
            )
    found = inventory.topics(context.clients.dynamodb, table, now=context.now())
    context.emit(
        [
            {"topic": t.topic, "created": when(t.created_at), "subscriptions": t.active_subscriptions}
            for t in found
        ],
        ["topic", "created", "subscriptions"],
    )
    return 0


def register_topic(context: Context) -> int:
    created = _store(context).register_topic(context.args.topic, now=context.now())
    context.emit({"topic": context.args.topic, "registered": "new" if created else "already registered"})
    return 0


def deregister_topic(context: Context) -> int:
    _store(context).deregister_topic(context.args.topic)
    context.emit({"topic": context.args.topic, "deregistered": True})
    return 0
