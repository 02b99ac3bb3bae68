"""Which hub the CLI talks to, and the AWS clients it talks to it with.

Three ways, first match wins:

1. ``--endpoint URL`` (or ``SETHUB_AWS_ENDPOINT``): the embedded AWS of ``make local``
   (its banner prints the line to export). Resources are named as the local stack names
   them, ``<stack>-<LogicalId>`` with ``--stack`` (default ``sethub``, the stack's prefix).
2. ``--stack NAME`` (or ``SETHUB_STACK``): a deployed stack; names come from its
   CloudFormation outputs (``TableName``, ``DeadLetterQueueUrl``, ...) and its
   ``SigningMode`` parameter.
3. Otherwise the ``SETHUB_*`` variables a function has (``SETHUB_TABLE_NAME``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from sethub.clients import DEFAULT_CONFIG, AwsClients
from sethub.errors import SethubError, UpstreamError

ENDPOINT_ENV = "SETHUB_AWS_ENDPOINT"
STACK_ENV = "SETHUB_STACK"
LOCAL_PREFIX = "sethub"
LOCAL_REGION = "us-east-1"

QUEUES = {
    # Target attribute: (stack output, template logical id, environment variable)
    "events_queue_url": ("EventsQueueUrl", "EventsQueue", "SETHUB_EVENTS_QUEUE_URL"),
    "retry_queue_url": ("RetryQueueUrl", "RetryQueue", "SETHUB_RETRY_QUEUE_URL"),
    "verify_queue_url": ("VerifyQueueUrl", "VerifyQueue", "SETHUB_VERIFY_QUEUE_URL"),
    "dead_letter_queue_url": ("DeadLetterQueueUrl", "RetryDeadLetterQueue", "SETHUB_DEAD_LETTER_QUEUE_URL"),
    "events_dead_letter_queue_url": (
        "EventsDeadLetterQueueUrl",
        "EventsDeadLetterQueue",
        "SETHUB_EVENTS_DEAD_LETTER_QUEUE_URL",
    ),
    "verify_dead_letter_queue_url": (
        "VerifyDeadLetterQueueUrl",
        "VerifyDeadLetterQueue",
        "SETHUB_VERIFY_DEAD_LETTER_QUEUE_URL",
    ),
}


class UsageError(SethubError):
    """The command cannot run as given (exit code 2)."""


@dataclass(frozen=True)
class Target:
    """The resources of one hub."""

    kind: str
    """``stack``, ``local`` or ``environment``: where the names came from."""
    stack_name: str = ""
    table_name: str = ""
    usage_plan_id: str = ""
    data_key_id: str = ""
    signing_mode: str = ""
    queues: dict[str, str] = field(default_factory=dict)

    def queue(self, name: str) -> str:
        url = self.queues.get(name, "")
        if not url:
            output, _, env = QUEUES[name]
            raise UsageError(f"no {name.removesuffix('_url').replace('_', ' ')}: {self.hint(output, env)}")
        return url

    def table(self) -> str:
        if not self.table_name:
            raise UsageError(f"no hub table: {self.hint('TableName', 'SETHUB_TABLE_NAME')}")
        return self.table_name

    def hint(self, output: str, env: str) -> str:
        if self.kind == "stack":
            return f"stack {self.stack_name} has no output {output}"
        return f"pass --stack NAME (a deployed stack), --endpoint URL (make local), or set {env}"


class CliClients(AwsClients):
    """sethub's clients plus the operator's own (CloudFormation, API Gateway), at one endpoint."""

    def __init__(self, endpoint_url: str | None = None, region: str | None = None, **overrides: Any) -> None:
        super().__init__(**overrides)
        self._endpoint_url = endpoint_url
        self._region = region

    def _client(self, service: str) -> Any:
        if service in self._overrides:
            return self._overrides[service]
        credentials: dict[str, str] = {}
        if self._endpoint_url and boto3.Session().get_credentials() is None:
            # The embedded AWS takes any credentials; an operator's shell may have none.
            credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        session = boto3.Session(region_name=self._region, **credentials)  # type: ignore[arg-type]
        return session.client(service, endpoint_url=self._endpoint_url, config=DEFAULT_CONFIG)  # type: ignore[call-overload]

    @cached_property
    def cloudformation(self) -> Any:
        return self._client("cloudformation")

    @cached_property
    def apigateway(self) -> Any:
        return self._client("apigateway")

    @cached_property
    def cloudwatch(self) -> Any:
        return self._client("cloudwatch")


def endpoint_and_region(
    endpoint: str | None, region: str | None, env: Mapping[str, str]
) -> tuple[str | None, str | None]:
    url = endpoint or env.get(ENDPOINT_ENV) or None
    if url and not (region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")):
        region = LOCAL_REGION
    return url, region


def resolve(
    clients: CliClients, *, stack: str | None, endpoint: str | None, table: str | None, env: Mapping[str, str]
) -> Target:
    stack_name = stack or env.get(STACK_ENV, "")
    if endpoint or env.get(ENDPOINT_ENV):
        target = _local(clients, stack_name or LOCAL_PREFIX, env)
    elif stack_name:
        target = _stack(clients, stack_name)
    else:
        target = Target(
            kind="environment",
            table_name=env.get("SETHUB_TABLE_NAME", ""),
            usage_plan_id=env.get("SETHUB_USAGE_PLAN_ID", ""),
            data_key_id=env.get("SETHUB_DATA_KEY_ID", ""),
            signing_mode=env.get("SETHUB_SIGNING_MODE", "") or "wrapped",
            queues={name: env.get(variable, "") for name, (_, _, variable) in QUEUES.items()},
        )
    if table:
        target = Target(**{**target.__dict__, "table_name": table})
    return target


def _stack(clients: CliClients, name: str) -> Target:
    try:
        stack = clients.cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "") or "error"
        raise UpstreamError(f"could not read stack {name}: {message}") from exc
    except BotoCoreError as exc:
        raise UpstreamError(f"could not read stack {name}: {type(exc).__name__}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    return Target(
        kind="stack",
        stack_name=name,
        table_name=outputs.get("TableName", ""),
        usage_plan_id=outputs.get("UsagePlanId", ""),
        data_key_id=f"alias/{name}/data",
        signing_mode=parameters.get("SigningMode", "") or "wrapped",
        queues={attr: outputs.get(output, "") for attr, (output, _, _) in QUEUES.items()},
    )


def _local(clients: CliClients, prefix: str, env: Mapping[str, str]) -> Target:
    queues: dict[str, str] = {}
    for attr, (_, logical_id, _) in QUEUES.items():
        try:
            queues[attr] = clients.sqs.get_queue_url(QueueName=f"{prefix}-{logical_id}")["QueueUrl"]
        except ClientError:
            queues[attr] = ""
        except BotoCoreError as exc:
            raise UpstreamError(f"the local stack's AWS does not answer: {type(exc).__name__}") from exc
    if not any(queues.values()):
        raise UpstreamError(f"no local stack with prefix {prefix} at that endpoint (is make local running?)")
    return Target(
        kind="local",
        stack_name=prefix,
        table_name=f"{prefix}-HubTable",
        # The local gateway admits the keys in the table: no usage plan.
        usage_plan_id="",
        data_key_id=f"alias/{prefix}/data",
        signing_mode=env.get("SETHUB_SIGNING_MODE", "") or "wrapped",
        queues=queues,
    )


__all__ = [
    "ENDPOINT_ENV",
    "STACK_ENV",
    "CliClients",
    "Target",
    "UsageError",
    "endpoint_and_region",
    "resolve",
]
