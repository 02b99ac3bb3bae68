"""IAM as AWS applies it to the functions' calls: roles from the template, per-call rules.

Pure (no I/O). Four parts:

- ``sam_transform``: the template as ``sam deploy`` hands it to CloudFormation (SAM's own
  translator, offline), so the roles checked are the ones SAM generates, policy templates
  and managed policies included.
- The policy model (``Statement``, ``Policy``): identity-based policy evaluation as AWS
  documents it: actions match case-insensitively, resources case-sensitively, ``*`` and
  ``?`` glob across ``:`` and ``/``; an explicit Deny wins over any Allow; nothing allowed
  is denied. A ``Condition`` is evaluated only where devstack knows every key it names for
  the call (``StringEquals`` and ``Null`` on ``kms:EncryptionContext:<key>`` of a KMS
  cryptographic call); any other condition never grants, and a conditional Deny then
  always applies (both fail closed).
- ``function_policies``: each ``AWS::Lambda::Function``'s role, inline and managed policies,
  with the template's intrinsics resolved by the caller's resolver.
- The per-call rules (``checks_for``): which (action, resource ARN) pairs AWS checks for
  one API call, e.g. ``TransactWriteItems`` per item (``dynamodb:PutItem``,
  ``dynamodb:ConditionCheckItem``...; there is no ``dynamodb:TransactWriteItems`` action),
  ``SendMessageBatch`` as ``sqs:SendMessage``, KMS calls on the key's ARN whichever way the
  key is named. An operation without a rule is refused (``NoRuleError``): nothing passes
  unchecked. ``parse_request`` turns an HTTP request of an AWS SDK into the call.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from devstack.intrinsics import arn_target, ref_target

ACCOUNT_ID = "123456789012"
PARTITION = "aws"

Template = dict[str, Any]
Resolve = Callable[[Any], Any]

__all__ = [
    "ACCOUNT_ID",
    "MANAGED_POLICIES",
    "AwsRequest",
    "Check",
    "Decision",
    "IamError",
    "Lookups",
    "NoRuleError",
    "Policy",
    "RequestError",
    "Statement",
    "Verdict",
    "authorize",
    "checks_for",
    "denial_message",
    "function_policies",
    "parse_request",
    "sam_transform",
    "statements_of",
]


class IamError(ValueError):
    """The template's roles cannot be turned into policies devstack can apply faithfully."""


class RequestError(ValueError):
    """An AWS request that devstack cannot read (no SigV4 credential scope, no operation...)."""


class NoRuleError(RequestError):
    """An operation devstack has no IAM rule for: refused rather than let through unchecked."""


# ---------------------------------------------------------------------------- SAM transform


def sam_transform(template: Mapping[str, Any], region: str = "us-east-1") -> Template:
    """``template`` as ``sam deploy`` hands it to CloudFormation: SAM's translator, offline.

    Code folders become the S3 URIs ``sam package`` would upload them to. The session only
    tells SAM the region (for ARNs); nothing is called.
    """
    # Imported here: the translator takes a second to import and only this needs it.
    import boto3  # noqa: PLC0415
    from samtranslator.parser.parser import Parser  # type: ignore[import-untyped]  # noqa: PLC0415
    from samtranslator.translator.translator import (  # type: ignore[import-untyped]  # noqa: PLC0415
        Translator,
    )

    source = copy.deepcopy(dict(template))
    for resource in source["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = f"s3://sethub-artifacts/{key}"
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=region))
    # Policies named by their managed policy name resolve to the ARNs devstack models.
    names = {name: f"arn:{PARTITION}:iam::aws:policy/{path}" for name, (path, _) in _MANAGED.items()}
    transformed: Template = translator.translate(
        source, parameter_values={}, get_managed_policy_map=lambda: names
    )
    return transformed


# ---------------------------------------------------------------------------- the policy model


@lru_cache(maxsize=1024)
def _glob(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    """IAM's wildcards: ``*`` any run of characters (``:`` and ``/`` included), ``?`` one."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


@lru_cache(maxsize=1024)
def _any_glob(patterns: tuple[str, ...], ignore_case: bool) -> re.Pattern[str] | None:
    """One pattern for a statement's whole element, compiled once (``None``: it names nothing)."""
    if not patterns:
        return None
    alternatives = "|".join(_glob(p, ignore_case=ignore_case).pattern for p in patterns)
    return re.compile(f"(?:{alternatives})", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _matches(patterns: tuple[str, ...], value: str, *, ignore_case: bool) -> bool:
    pattern = _any_glob(patterns, ignore_case)
    return pattern is not None and pattern.fullmatch(value) is not None


class Decision(Enum):
    ALLOW = "allow"
    IMPLICIT_DENY = "implicit deny"
    EXPLICIT_DENY = "explicit deny"


@dataclass(frozen=True)
class Statement:
    """One statement of an identity-based policy, resolved (no intrinsics left)."""

    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    not_action: bool = False
    not_resource: bool = False
    conditional: bool = False
    sid: str = ""
    condition: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    def applies_to(self, action: str, resource: str) -> bool:
        """Whether the statement's action and resource elements cover the request."""
        action_hit = _matches(self.actions, action, ignore_case=True) != self.not_action
        resource_hit = _matches(self.resources, resource, ignore_case=False) != self.not_resource
        return action_hit and resource_hit

    def condition_holds(self, context: Mapping[str, str], known: tuple[str, ...]) -> bool | None:
        """Whether the ``Condition`` holds for a call, ``None`` when devstack cannot tell."""
        if not self.conditional:
            return True
        if not self.condition:
            return None
        for operator, tests in self.condition.items():
            if operator not in _CONDITION_OPERATORS or not isinstance(tests, Mapping):
                return None
            for raw_key, raw_values in tests.items():
                # Condition key names are case-insensitive (the request's are lowered too).
                key = str(raw_key).lower()
                if not key.startswith(known) or not known:
                    return None
                values = [
                    str(value) for value in (raw_values if isinstance(raw_values, list) else [raw_values])
                ]
                if not _CONDITION_OPERATORS[operator](context.get(key), values):
                    return False
        return True


def _string_equals(actual: str | None, values: list[str]) -> bool:
    return actual is not None and actual in values


def _null(actual: str | None, values: list[str]) -> bool:
    # "Null": "true" means the key is absent from the request, "false" that it is present.
    return all((actual is None) == (value.lower() == "true") for value in values)


_CONDITION_OPERATORS: dict[str, Callable[[str | None, list[str]], bool]] = {
    "StringEquals": _string_equals,
    "Null": _null,
}


_DECISIONS_KEPT = 4096


@dataclass(frozen=True)
class Policy:
    """Everything a role's identity-based policies say, as one list of statements."""

    role_name: str
    statements: tuple[Statement, ...]
    # Decisions already taken: a decision depends on nothing but its arguments (the
    # statements are frozen), and a function repeats the same few calls.
    _decisions: dict[tuple[Any, ...], Decision] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def decide(
        self,
        action: str,
        resource: str,
        context: Mapping[str, str] | None = None,
        known: tuple[str, ...] = (),
    ) -> Decision:
        """``context``: the call's condition keys (lower case); ``known``: the key prefixes
        the call sets in full, so a key of them missing from ``context`` is truly absent."""
        key = (action, resource, tuple(sorted((context or {}).items())), known)
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._decide(action, resource, context or {}, known)
            if len(self._decisions) >= _DECISIONS_KEPT:
                self._decisions.clear()  # bounded: encryption contexts may differ call by call
            self._decisions[key] = decision
        return decision

    def _decide(
        self, action: str, resource: str, context: Mapping[str, str], known: tuple[str, ...]
    ) -> Decision:
        allowed = False
        for statement in self.statements:
            if not statement.applies_to(action, resource):
                continue
            holds = statement.condition_holds(context, known)
            if statement.effect == "Deny":
                if holds is False:
                    continue
                # A Deny whose condition cannot be evaluated applies: fail closed.
                return Decision.EXPLICIT_DENY
            if holds is True:
                allowed = True
        return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def _flat_strings(value: Any, what: str) -> tuple[str, ...]:
    """A policy element (a string or a list, maybe nested by ``Fn::Split``) as strings."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(item for part in value for item in _flat_strings(part, what))
    raise IamError(f"{what} must be strings once resolved, not {value!r}")


def statements_of(document: Mapping[str, Any], where: str = "policy") -> list[Statement]:
    """The statements of a resolved policy document."""
    raw = document.get("Statement", [])
    items = raw if isinstance(raw, list) else [raw]
    statements = []
    for index, item in enumerate(items):
        label = f"{where} statement {item.get('Sid') or index}" if isinstance(item, Mapping) else where
        if not isinstance(item, Mapping):
            raise IamError(f"{label}: not a statement: {item!r}")
        effect = item.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise IamError(f"{label}: Effect must be Allow or Deny, not {effect!r}")
        if ("Action" in item) == ("NotAction" in item) or ("Resource" in item) == ("NotResource" in item):
            raise IamError(f"{label}: needs exactly one of Action/NotAction and of Resource/NotResource")
        not_action, not_resource = "NotAction" in item, "NotResource" in item
        statements.append(
            Statement(
                effect=str(effect),
                actions=_flat_strings(item["NotAction" if not_action else "Action"], f"{label} actions"),
                resources=_flat_strings(
                    item["NotResource" if not_resource else "Resource"], f"{label} resources"
                ),
                not_action=not_action,
                not_resource=not_resource,
                conditional=bool(item.get("Condition")),
                sid=str(item.get("Sid", "")),
                condition=item.get("Condition") if isinstance(item.get("Condition"), Mapping) else None,
            )
        )
    return statements


# The AWS managed policies SAM attaches, with their documented statements (name -> path, statements).
_LOGS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
_MANAGED: dict[str, tuple[str, tuple[Statement, ...]]] = {
    "AWSLambdaBasicExecutionRole": (
        "service-role/AWSLambdaBasicExecutionRole",
        (Statement("Allow", _LOGS, ("*",)),),
    ),
    # Tracing: Active.
    "AWSXrayWriteOnlyAccess": (
        "AWSXrayWriteOnlyAccess",
        (
            Statement(
                "Allow",
                (
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                    "xray:GetSamplingStatisticSummaries",
                ),
                ("*",),
            ),
        ),
    ),
    # A SAM ``Type: SQS`` event.
    "AWSLambdaSQSQueueExecutionRole": (
        "service-role/AWSLambdaSQSQueueExecutionRole",
        (
            Statement(
                "Allow", ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", *_LOGS), ("*",)
            ),
        ),
    ),
    # A SAM ``Type: DynamoDB`` (stream) event.
    "AWSLambdaDynamoDBExecutionRole": (
        "service-role/AWSLambdaDynamoDBExecutionRole",
        (
            Statement(
                "Allow",
                (
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                    "dynamodb:ListStreams",
                    *_LOGS,
                ),
                ("*",),
            ),
        ),
    ),
}
MANAGED_POLICIES: Mapping[str, tuple[Statement, ...]] = {
    f"arn:{PARTITION}:iam::aws:policy/{path}": statements for path, statements in _MANAGED.values()
}
"""The AWS managed policies devstack knows, by ARN: any other is an error, never an allow."""


def _managed(arn: Any, where: str) -> tuple[Statement, ...]:
    if not isinstance(arn, str) or arn not in MANAGED_POLICIES:
        raise IamError(
            f"{where}: managed policy {arn!r} is not one devstack models; add its documented "
            "statements to devstack/iam.py (MANAGED_POLICIES) rather than guess"
        )
    return MANAGED_POLICIES[arn]


def _included(resource: Mapping[str, Any], resolve: Resolve) -> bool:
    condition = resource.get("Condition")
    return condition is None or bool(resolve({"Condition": condition}))


def _role_statements(transformed: Mapping[str, Any], role_id: str, resolve: Resolve) -> Iterator[Statement]:
    resources = transformed["Resources"]
    props = resources[role_id].get("Properties") or {}
    if "PermissionsBoundary" in props:
        raise IamError(f"{role_id}: a permissions boundary is not modelled by devstack")
    for policy in resolve(props.get("Policies") or []):
        name = policy.get("PolicyName", "?")
        yield from statements_of(policy.get("PolicyDocument") or {}, f"{role_id} policy {name}")
    for entry in props.get("ManagedPolicyArns") or []:
        target = ref_target(entry)
        if target and resources.get(target, {}).get("Type") == "AWS::IAM::ManagedPolicy":
            document = resolve((resources[target].get("Properties") or {}).get("PolicyDocument") or {})
            yield from statements_of(document, target)
            continue
        resolved = resolve(entry)
        yield from _managed(resolved, role_id)
    # Policies of the template that attach themselves to the role.
    for logical_id, resource in resources.items():
        if resource.get("Type") not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        props = resource.get("Properties") or {}
        if role_id in {ref_target(role) for role in props.get("Roles") or []} and _included(
            resource, resolve
        ):
            yield from statements_of(resolve(props.get("PolicyDocument") or {}), logical_id)


def function_policies(
    transformed: Mapping[str, Any], resolve: Resolve, *, stack_name: str = ""
) -> dict[str, Policy]:
    """Each ``AWS::Lambda::Function`` of the (SAM-transformed) template -> its role's policy.

    ``resolve`` replaces intrinsics (``Ref``, ``Fn::GetAtt``, ``Fn::Sub`` with SAM's
    policy-template variables, ``Fn::If``, ``{"Condition": name}``...) with their values.
    Role names are CloudFormation's (``<stack>-<logical id>``) unless the role names itself.
    """
    resources = transformed.get("Resources") or {}
    policies: dict[str, Policy] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::Function" or not _included(resource, resolve):
            continue
        role_value = (resource.get("Properties") or {}).get("Role")
        role_id = arn_target(role_value)
        if role_id is None or resources.get(role_id, {}).get("Type") != "AWS::IAM::Role":
            raise IamError(
                f"{logical_id}: its Role {role_value!r} is not a role of the template, so devstack "
                "cannot know what it allows"
            )
        role_props = resources[role_id].get("Properties") or {}
        default_name = f"{stack_name}-{role_id}" if stack_name else role_id
        policies[logical_id] = Policy(
            role_name=str(resolve(role_props.get("RoleName", default_name))),
            statements=tuple(_role_statements(transformed, role_id, resolve)),
        )
    return policies


# ---------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class AwsRequest:
    """One API call: the service's signing name, the operation and its parameters."""

    service: str
    operation: str
    parameters: Mapping[str, Any]
    region: str
    path: str = "/"


@dataclass(frozen=True)
class Check:
    """One (action, resource) pair AWS authorises for a call."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    """The call's condition keys (lower case) that devstack knows."""
    known: tuple[str, ...] = field(default=(), compare=False, hash=False)
    """Prefixes of the condition keys set in full by the call (absent means absent)."""


@dataclass(frozen=True)
class Lookups:
    """What the per-call rules need to know about the account: KMS aliases and secret ARNs."""

    key_aliases: Mapping[str, str] = field(default_factory=dict)
    """``alias/name`` -> the key id it points to."""
    secret_arns: Iterable[str] = ()
    account: str = ACCOUNT_ID


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")


def parse_request(method: str, target: str, headers: Mapping[str, str], body: bytes) -> AwsRequest:
    """An SDK's HTTP request as an ``AwsRequest``.

    The service and region come from the SigV4 credential scope; the operation from
    ``X-Amz-Target`` (JSON protocols: DynamoDB, KMS, Secrets Manager, SQS's JSON protocol)
    or the ``Action`` form field (query protocol: SQS's older one, STS).
    """
    lower = {name.lower(): value for name, value in headers.items()}
    url = urlsplit(target)
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    scope = _CREDENTIAL.search(lower.get("authorization", "")) or _CREDENTIAL.search(
        "Credential=" + query.get("X-Amz-Credential", "")
    )
    if scope is None:
        raise RequestError(f"{method} {url.path}: no SigV4 credential scope, so no service to authorise")
    region, service = scope.group(3), scope.group(4)
    amz_target = lower.get("x-amz-target")
    if amz_target:
        operation = amz_target.rsplit(".", 1)[-1]
        try:
            parameters = json.loads(body or b"{}")
        except ValueError as exc:
            raise RequestError(f"{service}:{operation}: the body is not JSON") from exc
        if not isinstance(parameters, dict):
            raise RequestError(f"{service}:{operation}: the body is not a JSON object")
    else:
        form = dict(query)
        if "x-www-form-urlencoded" in lower.get("content-type", ""):
            form.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        operation = form.pop("Action", "")
        parameters = form
        if not operation:
            raise RequestError(f"{service}: {method} {url.path} names no operation")
    return AwsRequest(
        service=service, operation=operation, parameters=parameters, region=region, path=url.path
    )


def _need(request: AwsRequest, name: str) -> Any:
    value = request.parameters.get(name)
    if value in (None, ""):
        raise RequestError(f"{request.service}:{request.operation} without {name}")
    return value


def _table_arn(request: AwsRequest, lookups: Lookups, table: str, index: str | None = None) -> str:
    arn = (
        table
        if table.startswith("arn:")
        else (f"arn:{PARTITION}:dynamodb:{request.region}:{lookups.account}:table/{table}")
    )
    return f"{arn}/index/{index}" if index else arn


_TRANSACT_WRITE_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


def _dynamodb(request: AwsRequest, lookups: Lookups) -> list[Check]:
    op = request.operation
    if op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "DescribeTable"):
        return [Check(f"dynamodb:{op}", _table_arn(request, lookups, str(_need(request, "TableName"))))]
    if op in ("Query", "Scan"):
        table = str(_need(request, "TableName"))
        index = request.parameters.get("IndexName")
        return [Check(f"dynamodb:{op}", _table_arn(request, lookups, table, index))]
    if op in ("BatchGetItem", "BatchWriteItem"):
        # One check per table, with the batch action itself (not the per-item actions).
        tables = _need(request, "RequestItems")
        return [Check(f"dynamodb:{op}", _table_arn(request, lookups, str(table))) for table in tables]
    if op == "TransactWriteItems":
        checks = []
        for item in _need(request, "TransactItems"):
            ((kind, action),) = item.items()
            if kind not in _TRANSACT_WRITE_ACTIONS:
                raise RequestError(f"dynamodb:TransactWriteItems: unknown item kind {kind!r}")
            table = str(action.get("TableName", ""))
            checks.append(Check(_TRANSACT_WRITE_ACTIONS[kind], _table_arn(request, lookups, table)))
        return checks
    if op == "TransactGetItems":
        return [
            Check("dynamodb:GetItem", _table_arn(request, lookups, str(item["Get"]["TableName"])))
            for item in _need(request, "TransactItems")
        ]
    raise NoRuleError(_no_rule(request))


_SQS_ACTIONS = {
    "SendMessage": "sqs:SendMessage",
    "SendMessageBatch": "sqs:SendMessage",
    "ReceiveMessage": "sqs:ReceiveMessage",
    "DeleteMessage": "sqs:DeleteMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "ChangeMessageVisibility": "sqs:ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "GetQueueAttributes": "sqs:GetQueueAttributes",
    "GetQueueUrl": "sqs:GetQueueUrl",
}


def _sqs(request: AwsRequest, lookups: Lookups) -> list[Check]:
    action = _SQS_ACTIONS.get(request.operation)
    if action is None:
        raise NoRuleError(_no_rule(request))
    if request.operation == "GetQueueUrl":
        account = str(request.parameters.get("QueueOwnerAWSAccountId") or lookups.account)
        name = str(_need(request, "QueueName"))
    else:
        # The query protocol may also address the queue by the request path.
        queue_url = request.parameters.get("QueueUrl") or request.path
        parts = [part for part in urlsplit(str(queue_url)).path.split("/") if part]
        if len(parts) != 2:
            raise RequestError(f"sqs:{request.operation}: {queue_url!r} is not a queue URL")
        account, name = parts
    return [Check(action, f"arn:{PARTITION}:sqs:{request.region}:{account}:{name}")]


_KMS_OPERATIONS = frozenset(
    {
        "Sign",
        "Verify",
        "GetPublicKey",
        "Encrypt",
        "Decrypt",
        "DescribeKey",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
    }
)
_KMS_CONTEXT_OPERATIONS = frozenset(
    {
        "Encrypt",
        "Decrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
    }
)
_KMS_CONTEXT_PREFIX = "kms:EncryptionContext:"
# moto's ciphertext blob starts with the key id (36 characters of a UUID).
_MOTO_KEY_ID_LENGTH = 36


def _key_arn(request: AwsRequest, lookups: Lookups, key: str) -> str:
    """The key's ARN, whether ``key`` is an id, a key ARN, an alias name or an alias ARN."""
    prefix = f"arn:{PARTITION}:kms:{request.region}:{lookups.account}:"
    if key.startswith("arn:"):
        resource = key.split(":", 5)[-1]
        if not resource.startswith("alias/"):
            return key
        key = resource
    if key.startswith("alias/"):
        target = lookups.key_aliases.get(key)
        if target is None:
            raise RequestError(f"kms:{request.operation}: alias {key} is unknown to devstack")
        return target if target.startswith("arn:") else f"{prefix}key/{target}"
    return f"{prefix}key/{key}"


def _kms(request: AwsRequest, lookups: Lookups) -> list[Check]:
    if request.operation not in _KMS_OPERATIONS:
        raise NoRuleError(_no_rule(request))
    key = request.parameters.get("KeyId")
    if not key and request.operation == "Decrypt":
        # Without KeyId the key is the one the ciphertext names.
        try:
            blob = base64.b64decode(str(_need(request, "CiphertextBlob")), validate=True)
            key = blob[:_MOTO_KEY_ID_LENGTH].decode("ascii")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise RequestError("kms:Decrypt: the ciphertext blob names no key") from exc
    if not key:
        raise RequestError(f"kms:{request.operation} without KeyId")
    check = Check(f"kms:{request.operation}", _key_arn(request, lookups, str(key)))
    if request.operation in _KMS_CONTEXT_OPERATIONS:
        # The encryption context is the whole of kms:EncryptionContext:<key> for this call.
        context = request.parameters.get("EncryptionContext") or {}
        if not isinstance(context, Mapping):
            raise RequestError(f"kms:{request.operation}: EncryptionContext is not a map")
        check = Check(
            check.action,
            check.resource,
            context={f"{_KMS_CONTEXT_PREFIX}{name}".lower(): str(value) for name, value in context.items()},
            known=(_KMS_CONTEXT_PREFIX.lower(),),
        )
    return [check]


def _secret_arn(request: AwsRequest, lookups: Lookups, secret: str) -> str:
    if secret.startswith("arn:"):
        return secret
    for arn in lookups.secret_arns:
        # A secret's ARN is ...:secret:<name>-<6 random characters>.
        if arn.split(":secret:", 1)[-1][:-7] == secret:
            return arn
    return f"arn:{PARTITION}:secretsmanager:{request.region}:{lookups.account}:secret:{secret}"


def _secretsmanager(request: AwsRequest, lookups: Lookups) -> list[Check]:
    if request.operation not in ("GetSecretValue", "DescribeSecret"):
        raise NoRuleError(_no_rule(request))
    arn = _secret_arn(request, lookups, str(_need(request, "SecretId")))
    return [Check(f"secretsmanager:{request.operation}", arn)]


def _sts(request: AwsRequest, lookups: Lookups) -> list[Check]:
    if request.operation == "GetCallerIdentity":
        return []  # AWS answers it whatever the policies say.
    raise NoRuleError(_no_rule(request))


def _no_rule(request: AwsRequest) -> str:
    return (
        f"devstack has no IAM rule for {request.service}:{request.operation}, so it refuses the call; "
        "add the rule AWS documents for it to devstack/iam.py"
    )


_RULES: dict[str, Callable[[AwsRequest, Lookups], list[Check]]] = {
    "dynamodb": _dynamodb,
    "sqs": _sqs,
    "kms": _kms,
    "secretsmanager": _secretsmanager,
    "sts": _sts,
}


def checks_for(request: AwsRequest, lookups: Lookups | None = None) -> list[Check]:
    """The (action, resource ARN) pairs AWS authorises for ``request``, in request order."""
    rule = _RULES.get(request.service)
    if rule is None:
        raise NoRuleError(_no_rule(request))
    try:
        return rule(request, lookups or Lookups())
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        if isinstance(exc, RequestError):
            raise
        raise RequestError(f"{request.service}:{request.operation}: malformed parameters ({exc!r})") from exc


# ---------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Verdict:
    """Whether a call is allowed; when not, the first check refused and AWS's message."""

    allowed: bool
    checks: tuple[Check, ...] = ()
    refused: Check | None = None
    message: str = ""
    """AWS's message for the caller."""
    reason: str = ""
    """Why, in a few words (for a log line)."""


def denial_message(principal: str, check: Check, decision: Decision) -> str:
    """AWS's wording for a refused identity-based check."""
    reason = (
        "with an explicit deny in an identity-based policy"
        if decision is Decision.EXPLICIT_DENY
        else f"because no identity-based policy allows the {check.action} action"
    )
    action, resource = check.action, check.resource
    return f"User: {principal} is not authorized to perform: {action} on resource: {resource} {reason}"


def authorize(policy: Policy, request: AwsRequest, principal: str, lookups: Lookups | None = None) -> Verdict:
    """Every check of ``request`` against ``policy``; any refusal refuses the whole call."""
    try:
        checks = tuple(checks_for(request, lookups))
    except RequestError as exc:
        return Verdict(allowed=False, message=str(exc), reason=str(exc))
    for check in checks:
        decision = policy.decide(check.action, check.resource, check.context, check.known)
        if decision is not Decision.ALLOW:
            return Verdict(
                allowed=False,
                checks=checks,
                refused=check,
                message=denial_message(principal, check, decision),
                reason=(
                    "explicit deny in an identity-based policy"
                    if decision is Decision.EXPLICIT_DENY
                    else "no identity-based policy allows it"
                ),
            )
    return Verdict(allowed=True, checks=checks)
