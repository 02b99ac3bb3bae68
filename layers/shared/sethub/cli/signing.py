"""``sethub signing-keys``: show and rotate the SET signing keys, in either signing mode.

``wrapped`` mode (the default): ``rotate`` adds a fresh key to the key ring in the hub
table, wrapped under the stack's data key: published in the JWKS at once, signing after
``--activate-in`` seconds (default: the JWKS's max-age, so receivers' cached copies
refresh first); the key it replaces stays published ``--publish-days`` (default 16).
``kms`` mode: ``rotate --stack NAME`` updates the stack with the other
``SigningKeySlot`` (docs/operations.md, "Signing key rotation").
"""

from __future__ import annotations

import argparse
from typing import Any

from sethub.cli.context import Context
from sethub.cli.output import when
from sethub.cli.target import UsageError
from sethub.keyring import (
    DEFAULT_ACTIVATE_SECONDS,
    DEFAULT_KEY_SPEC,
    DEFAULT_PUBLISH_SECONDS,
    KEY_SPECS,
    KeyRing,
    RingStore,
    rotate,
)
from sethub.settings import SIGNING_MODES
from sethub.signingkeys import rotate_kms

COLUMNS = ["kid", "alg", "signs_from", "retired", "published_until", "state"]


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    group = groups.add_parser("signing-keys", help="SET signing keys: show, rotate", description=__doc__)
    group.add_argument("--mode", choices=SIGNING_MODES, help="override the stack's signing mode")
    commands = group.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "show", parents=[common], help="the key ring: which key signs, which are published"
    ).set_defaults(run=show_keys)
    rotation = commands.add_parser("rotate", parents=[common], help="a new signing key")
    rotation.add_argument("--key-spec", choices=sorted(KEY_SPECS), default=DEFAULT_KEY_SPEC)
    rotation.add_argument(
        "--activate-in", type=int, default=DEFAULT_ACTIVATE_SECONDS, help="seconds before the new key signs"
    )
    rotation.add_argument(
        "--publish-days",
        type=float,
        default=DEFAULT_PUBLISH_SECONDS / 86400,
        help="how long a replaced key stays in the JWKS",
    )
    rotation.set_defaults(run=rotate_keys)


def rows(ring: KeyRing, now: float) -> list[dict[str, Any]]:
    signing = ring.signing_key(now)
    found = []
    for key in ring.keys:
        if signing is not None and key.kid == signing.kid:
            state = "signing"
        else:
            state = "next" if key.not_before > now else "retired"
        found.append(
            {
                "kid": key.kid,
                "alg": key.alg,
                "signs_from": when(key.not_before),
                "retired": when(key.retired_at),
                "published_until": when(key.publish_until),
                "state": state,
            }
        )
    return found


def _mode(context: Context) -> str:
    return str(context.args.mode or context.target.signing_mode or SIGNING_MODES[0])


def show_keys(context: Context) -> int:
    if _mode(context) == "kms":
        context.note("kms mode: the signing keys are KMS keys, the stack's SigningKeyIds output")
        context.emit([])
        return 0
    table = context.target.table()
    ring = RingStore(context.clients.dynamodb, table).load(consistent=True)
    context.emit(rows(ring, context.now()), COLUMNS)
    return 0


def rotate_keys(context: Context) -> int:
    args = context.args
    publish_seconds = int(args.publish_days * 86400)
    target = context.target
    if _mode(context) == "kms":
        if target.kind != "stack":
            raise UsageError("kms mode rotates by updating the stack: pass --stack NAME")
        changed = rotate_kms(
            context.clients.cloudformation,
            context.clients.kms,
            target.stack_name,
            publish_seconds=publish_seconds,
            now=context.now,
        )
        context.emit({"stack_update_started": True, **changed})
        return 0
    if not target.data_key_id:
        raise UsageError("no data key: pass --stack NAME, --endpoint URL, or set SETHUB_DATA_KEY_ID")
    key, ring = rotate(
        context.clients.kms,
        context.clients.dynamodb,
        table_name=target.table(),
        data_key_id=target.data_key_id,
        spec=args.key_spec,
        activate_in=args.activate_in,
        publish_seconds=publish_seconds,
        now=context.now,
    )
    context.note(f"new signing key {key.kid} ({key.alg}): published now, signs from {when(key.not_before)}")
    context.emit(rows(ring, context.now()), COLUMNS)
    return 0
