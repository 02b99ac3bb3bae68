"""``python -m sethub.signingkeys``: show and rotate the SET signing keys, in either signing mode.

    python -m sethub.signingkeys show   [--stack NAME]
    python -m sethub.signingkeys rotate [--stack NAME] [--key-spec RSA_2048] [--activate-in 300]

``wrapped`` mode (the default): ``rotate`` adds a fresh key to the key ring in the hub
table, wrapped under the stack's data key. It is published in the JWKS at once and signs
after ``--activate-in`` seconds (default: the JWKS's max-age, so receivers' cached copies
refresh first); the key it replaces stays published for ``--publish-days`` (default 16:
retries, 14 days in the dead-letter queue, a replay). Needs ``kms:Encrypt`` on the data key
and the table's GetItem/PutItem: an administrator's credentials.

``kms`` mode: ``rotate --stack NAME`` updates the stack (its current template) with the
other ``SigningKeySlot``, so CloudFormation creates a new KMS key that signs from the
update on, and lists the key it replaces in ``PreviousSigningKeyArns`` (tagged
``sethub:retired-at``), keeping retired keys published for ``--publish-days``.

The table, data key and mode come from the stack (``--stack``: outputs ``TableName``,
alias ``alias/<stack>/data``, parameter ``SigningMode``) or from ``SETHUB_TABLE_NAME``,
``SETHUB_DATA_KEY_ID`` and ``SETHUB_SIGNING_MODE``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from sethub.clients import AwsClients
from sethub.errors import SethubError, UpstreamError
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

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

RETIRED_AT_TAG = "sethub:retired-at"
# UsePreviousTemplate on a SAM template: the transform runs again.
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]

Clock = Callable[[], float]


@dataclass(frozen=True)
class Target:
    """Where the keys of one hub live."""

    mode: str
    table_name: str = ""
    data_key_id: str = ""
    stack_name: str = ""


# ---------------------------------------------------------------------------- kms mode


def _arns(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def kms_rotation_parameters(
    parameters: Mapping[str, str],
    *,
    retiring_arn: str,
    retired_at: Mapping[str, int | None],
    now: int,
    publish_seconds: int = DEFAULT_PUBLISH_SECONDS,
) -> dict[str, str]:
    """The stack parameters that rotate a kms-mode signing key: the other slot, and the
    retiring key first among the retired keys (those retired longer ago than
    ``publish_seconds`` drop out; a key without a known retirement time stays)."""
    slot = "b" if parameters.get("SigningKeySlot", "a") == "a" else "a"
    kept = [
        arn
        for arn in _arns(parameters.get("PreviousSigningKeyArns", ""))
        if arn != retiring_arn and ((at := retired_at.get(arn)) is None or now - at < publish_seconds)
    ]
    return {"SigningKeySlot": slot, "PreviousSigningKeyArns": ",".join([retiring_arn, *kept])}


def _retired_at(kms: KMSClient, arn: str) -> int | None:
    try:
        tags = kms.list_resource_tags(KeyId=arn).get("Tags", [])
    except (ClientError, BotoCoreError):
        return None  # another account's key, or gone: keep publishing it
    for tag in tags:
        if tag["TagKey"] == RETIRED_AT_TAG and tag["TagValue"].isdigit():
            return int(tag["TagValue"])
    return None


def rotate_kms(
    cloudformation: Any,
    kms: KMSClient,
    stack_name: str,
    *,
    publish_seconds: int = DEFAULT_PUBLISH_SECONDS,
    now: Clock = time.time,
) -> dict[str, str]:
    """Start the stack update that rotates the kms-mode key; the parameters it changed."""
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        retiring = outputs.get("SigningKeyArn", "")
        if parameters.get("SigningMode", "kms") != "kms" or not retiring:
            raise SethubError(f"stack {stack_name} does not sign with KMS (SigningMode kms)")
        at = int(now())
        kms.tag_resource(KeyId=retiring, Tags=[{"TagKey": RETIRED_AT_TAG, "TagValue": str(at)}])
        previous = _arns(parameters.get("PreviousSigningKeyArns", ""))
        changed = kms_rotation_parameters(
            parameters,
            retiring_arn=retiring,
            retired_at={arn: _retired_at(kms, arn) for arn in previous},
            now=at,
            publish_seconds=publish_seconds,
        )
        cloudformation.update_stack(
            StackName=stack_name,
            UsePreviousTemplate=True,
            Parameters=[
                {"ParameterKey": name, "ParameterValue": changed[name]}
                if name in changed
                else {"ParameterKey": name, "UsePreviousValue": True}
                for name in sorted({*parameters, *changed})
            ],
            Capabilities=CAPABILITIES,
        )
    except (ClientError, BotoCoreError) as exc:
        code = exc.response.get("Error", {}).get("Code", "error") if isinstance(exc, ClientError) else ""
        raise UpstreamError(f"could not rotate the KMS signing key of {stack_name}: {code or exc}") from exc
    return changed


# ---------------------------------------------------------------------------- the command


def _when(epoch: int | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def show_ring(ring: KeyRing, out: TextIO, *, now: float) -> None:
    signing = ring.signing_key(now)
    print(
        f"{'kid':<44} {'alg':<6} {'signs from':<21} {'retired':<21} {'published until':<21} state", file=out
    )
    for key in ring.keys:
        state = (
            "signing"
            if signing is not None and key.kid == signing.kid
            else ("next" if key.not_before > now else "retired")
        )
        print(
            f"{key.kid:<44} {key.alg:<6} {_when(key.not_before):<21} {_when(key.retired_at):<21} "
            f"{_when(key.publish_until):<21} {state}",
            file=out,
        )


def _target(args: argparse.Namespace, cloudformation: Callable[[], Any]) -> Target:
    if not args.stack:
        return Target(
            mode=args.mode or os.environ.get("SETHUB_SIGNING_MODE", "") or SIGNING_MODES[0],
            table_name=os.environ.get("SETHUB_TABLE_NAME", ""),
            data_key_id=os.environ.get("SETHUB_DATA_KEY_ID", ""),
        )
    try:
        stack = cloudformation().describe_stacks(StackName=args.stack)["Stacks"][0]
    except (ClientError, BotoCoreError) as exc:
        raise UpstreamError(f"could not read stack {args.stack}") from exc
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return Target(
        mode=args.mode or parameters.get("SigningMode", "") or SIGNING_MODES[0],
        table_name=outputs.get("TableName", ""),
        data_key_id=f"alias/{args.stack}/data",
        stack_name=args.stack,
    )


def main(
    argv: Sequence[str] | None = None,
    *,
    clients: AwsClients | None = None,
    cloudformation: Any = None,
    out: TextIO | None = None,
    now: Clock = time.time,
) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="python -m sethub.signingkeys", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", choices=["show", "rotate"])
    parser.add_argument("--stack", default="", help="the deployed stack (else the SETHUB_* variables)")
    parser.add_argument("--mode", choices=SIGNING_MODES, default="", help="override SETHUB_SIGNING_MODE")
    parser.add_argument("--key-spec", choices=sorted(KEY_SPECS), default=DEFAULT_KEY_SPEC)
    parser.add_argument(
        "--activate-in", type=int, default=DEFAULT_ACTIVATE_SECONDS, help="seconds before the new key signs"
    )
    parser.add_argument(
        "--publish-days",
        type=float,
        default=DEFAULT_PUBLISH_SECONDS / 86400,
        help="how long a replaced key stays in the JWKS",
    )
    args = parser.parse_args(argv)
    clients = clients or AwsClients()

    def stacks() -> Any:
        # Only --stack needs CloudFormation.
        return cloudformation or boto3.client("cloudformation")

    publish_seconds = int(args.publish_days * 86400)
    try:
        target = _target(args, stacks)
        if target.mode == "kms":
            if args.command == "show":
                print("kms mode: the signing keys are the stack's SigningKeyIds output", file=out)
                return 0
            if not target.stack_name:
                parser.error("kms mode rotates by updating the stack: pass --stack")
            changed = rotate_kms(
                stacks(),
                clients.kms,
                target.stack_name,
                publish_seconds=publish_seconds,
                now=now,
            )
            print(f"stack update started: {changed}", file=out)
            return 0
        if not target.table_name:
            parser.error("set SETHUB_TABLE_NAME or pass --stack")
        if args.command == "show":
            show_ring(RingStore(clients.dynamodb, target.table_name).load(consistent=True), out, now=now())
            return 0
        key, ring = rotate(
            clients.kms,
            clients.dynamodb,
            table_name=target.table_name,
            data_key_id=target.data_key_id,
            spec=args.key_spec,
            activate_in=args.activate_in,
            publish_seconds=publish_seconds,
            now=now,
        )
        print(
            f"new signing key {key.kid} ({key.alg}), published now, signs from {_when(key.not_before)}",
            file=out,
        )
        show_ring(ring, out, now=now())
        return 0
    except SethubError as exc:
        print(f"signingkeys: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
