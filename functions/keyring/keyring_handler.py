"""Custom::SigningKeyRing (wrapped signing mode): the deploy makes the ring's first key.
Custom::SsfSigningKey (kms signing mode): the deploy records the SSF KMS key in the SSF ring.

Thin: ``sethub.keyring.ensure_ring`` and ``sethub.ssf.keys.record_kms_key`` do the work (the
local stack runs the same at provision time); this module turns a CloudFormation request into
that call and always answers CloudFormation, failures included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from sethub import cfnresponse
from sethub.clients import AwsClients
from sethub.errors import SethubError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


SSF_SIGNING_KEY = "Custom::SsfSigningKey"


def ssf_signing_key(event: dict[str, Any]) -> None:
    """kms mode's SSF key: recorded on create and update (a slot flip names the next key),
    retired on delete (the stack left kms mode; the replaced keys stay published)."""
    from sethub.ssf.keys import record_kms_key, retire_kms_keys  # noqa: PLC0415 - this resource only

    properties = event.get("ResourceProperties", {})
    table_name = str(properties.get("TableName", ""))
    # Stable across updates: a new one would make CloudFormation delete (retire) the old one.
    physical_id = event.get("PhysicalResourceId") or f"{table_name}/ssf-kms-signing-key"
    kind = event.get("RequestType", "")
    try:
        clients = AwsClients()
        data: dict[str, str] = {}
        if kind in ("Create", "Update"):
            ring = record_kms_key(
                clients.kms, clients.dynamodb, table_name=table_name, key_id=str(properties.get("KeyId", ""))
            )
            data = {"Kid": ring.keys[0].kid}
            logger.info("SSF KMS signing key recorded", extra={"kid": data["Kid"], "keys": len(ring.keys)})
        elif kind == "Delete":
            retire_kms_keys(clients.dynamodb, table_name=table_name)
            logger.info("SSF KMS signing keys retired")
        cfnresponse.send(event, "SUCCESS", physical_id=physical_id, data=data)
    except SethubError as exc:
        logger.exception("SSF signing key failed")
        if kind == "Delete":
            # The stack is going (its table too, maybe): a failed delete would strand it.
            cfnresponse.send(event, "SUCCESS", physical_id=physical_id)
        else:
            cfnresponse.send(event, "FAILED", physical_id=physical_id, reason=str(exc))
    except Exception:
        logger.exception("SSF signing key failed")
        cfnresponse.send(
            event,
            "SUCCESS" if kind == "Delete" else "FAILED",
            physical_id=physical_id,
            reason="internal error, see the function's log",
        )


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> None:
    if event.get("ResourceType") == SSF_SIGNING_KEY:
        ssf_signing_key(event)
        return
    properties = event.get("ResourceProperties", {})
    table_name = str(properties.get("TableName", ""))
    # Stable across updates, so an update never replaces (and deletes) the ring.
    physical_id = event.get("PhysicalResourceId") or f"{table_name}/signing-key-ring"
    kind = event.get("RequestType", "")
    try:
        data: dict[str, str] = {}
        if kind in ("Create", "Update"):
            # Here, not at import: the key ring needs PyJWT and cryptography, a Delete does not.
            from sethub.keyring import DEFAULT_KEY_SPEC, ensure_ring  # noqa: PLC0415

            clients = AwsClients()
            ring = ensure_ring(
                clients.kms,
                clients.dynamodb,
                table_name=table_name,
                data_key_id=str(properties.get("DataKeyId", "")),
                spec=str(properties.get("KeySpec") or DEFAULT_KEY_SPEC),
            )
            data = {"Kid": ring.keys[0].kid}
            logger.info("signing key ring ready", extra={"kid": data["Kid"], "keys": len(ring.keys)})
        # Delete: the ring goes with the table; retired keys must stay published until then.
        cfnresponse.send(event, "SUCCESS", physical_id=physical_id, data=data)
    except SethubError as exc:
        logger.exception("signing key ring failed")
        cfnresponse.send(event, "FAILED", physical_id=physical_id, reason=str(exc))
    except Exception:
        logger.exception("signing key ring failed")
        cfnresponse.send(
            event, "FAILED", physical_id=physical_id, reason="internal error, see the function's log"
        )
