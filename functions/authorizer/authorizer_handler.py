"""The HTTP API ingress's Lambda authorizer (``Ingress=http``): thin, the work is
``sethub.credentials.authorizer``.

API Gateway caches each answer per ``x-api-key`` value for the authorizer's TTL, so this
runs about once per key and TTL, not per request. The key checker (and its client) is
built once per container.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from sethub.api import key_checker
from sethub.clients import AwsClients
from sethub.credentials.authorizer import decide
from sethub.errors import SethubError
from sethub.runtime import per_environment
from sethub.settings import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
checker = per_environment(lambda: key_checker(AwsClients(), Settings.from_env()))


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        decision = decide(checker(), event.get("headers"))
    except SethubError as exc:
        # The key table could not be read: raising makes API Gateway answer 500, and an
        # error is not cached, so the next request asks again.
        logger.error("key check failed", extra={"error": type(exc).__name__})
        raise
    # Denials at INFO (an operator looks for them), admissions at DEBUG: either happens
    # once per key per cache period, never per request.
    log = logger.debug if decision.allowed else logger.info
    log(
        "authorizer",
        extra={"allowed": decision.allowed, "reason": decision.reason, "key_id": decision.key_id},
    )
    return decision.response()
