"""Rotation of the SET signing keys in ``kms`` mode (``sethub signing-keys rotate --stack NAME``).

``kms`` mode: rotating updates the stack (its current template) with the other
``SigningKeySlot``, so CloudFormation creates a new KMS key that signs from the update on,
and lists the key it replaces in ``PreviousSigningKeyArns`` (tagged ``sethub:retired-at``),
keeping retired keys published for ``publish_seconds``. ``wrapped`` mode's rotation is
``sethub.keyring.rotate``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from sethub.errors import SethubError, UpstreamError
from sethub.keyring import DEFAULT_PUBLISH_SECONDS

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

RETIRED_AT_TAG = "sethub:retired-at"
# UsePreviousTemplate on a SAM template: the transform runs again.
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]

Clock = Callable[[], float]


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
