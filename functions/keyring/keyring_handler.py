"""Custom::SigningKeyRing (wrapped signing mode): the deploy makes the ring's first key.

Thin: ``sethub.keyring.ensure_ring`` does the work (the local stack runs the same at
provision time); this module turns a CloudFormation request into that call and always
answers CloudFormation, failures included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from sethub import cfnresponse
from sethub.clients import AwsClients
from sethub.errors import SethubError
from sethub.keyring import DEFAULT_KEY_SPEC, ensure_ring

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> None:
    properties = event.get("ResourceProperties", {})
    table_name = str(properties.get("TableName", ""))
    # Stable across updates, so an update never replaces (and deletes) the ring.
    physical_id = event.get("PhysicalResourceId") or f"{table_name}/signing-key-ring"
    kind = event.get("RequestType", "")
    try:
        data: dict[str, str] = {}
        if kind in ("Create", "Update"):
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
