"""Create a template's resources in moto, and read how its functions are wired.

The template is the single source of the local stack: queues, tables, keys and secrets
are created from their ``Resources`` entries (by ``Type``, never by hard-coded names),
each function's environment is the template's with every ``Ref``/``GetAtt``/``Sub``
resolved to what was created, the queue → function mappings are read from the
``AWS::Lambda::EventSourceMapping`` resources and the API routes from the functions'
``Api`` events. Every physical name carries ``prefix``, so many isolated
hubs can live in one moto server; provisioning the same prefix again reuses what exists
(which is how a restarted devstack attaches to a running moto).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import boto3
from botocore.exceptions import ClientError

from devstack import lambdaspec
from devstack.iam import Lookups, Policy, function_policies, sam_transform
from devstack.intrinsics import (
    IntrinsicError,
    Resolver,
    arn_target,
    cfn_string,
    pseudo_parameters,
    ref_target,
)
from devstack.template import merge_globals
from sethub.clients import new_session

# Known as devstack.provision's; defined apart so that a worker process need not import this.
ACCOUNT_ID = lambdaspec.ACCOUNT_ID
FunctionSpec = lambdaspec.FunctionSpec
DEFAULT_REGION = "us-east-1"
DEFAULT_API_KEY = "local-dev-key"
API_KEY_ENV = "SETHUB_LOCAL_API_KEY"

QUEUE = "AWS::SQS::Queue"
TABLE = "AWS::DynamoDB::Table"
SIMPLE_TABLE = "AWS::Serverless::SimpleTable"
KEY = "AWS::KMS::Key"
SECRET = "AWS::SecretsManager::Secret"  # noqa: S105 - a resource type
KEY_ALIAS = "AWS::KMS::Alias"
FUNCTION = "AWS::Serverless::Function"
SIGNING_KEY_RING = "Custom::SigningKeyRing"
SSF_SIGNING_KEY = "Custom::SsfSigningKey"
EVENT_SOURCE_MAPPING = "AWS::Lambda::EventSourceMapping"
SERVERLESS_API = "AWS::Serverless::Api"
IMPLICIT_API = "ServerlessRestApi"

_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)


class ProvisionError(RuntimeError):
    """The template cannot be turned into a local stack."""


@dataclass(frozen=True)
class EventSourceMapping:
    """An SQS queue feeding a function (an ``AWS::Lambda::EventSourceMapping`` resource)."""

    queue: str
    queue_url: str
    queue_arn: str
    function: str
    batch_size: int
    batching_window_seconds: int
    function_response_types: tuple[str, ...]
    maximum_concurrency: int | None
    enabled: bool

    @property
    def reports_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types


@dataclass(frozen=True)
class ApiRoute:
    """A ``Type: Api`` event: which function serves ``method path``, and whether a key is required."""

    path: str
    method: str
    function: str
    api_key_required: bool


@dataclass(frozen=True)
class GatewayResponse:
    """An API Gateway response of the template's ``GatewayResponses`` (``Type`` → this)."""

    status: int
    headers: dict[str, str]
    body_template: str


@dataclass
class Provisioned:
    """What ``provision`` created and how the functions are wired to it."""

    prefix: str
    endpoint_url: str
    region: str
    api_key: str
    queue_urls: dict[str, str] = field(default_factory=dict)
    queue_arns: dict[str, str] = field(default_factory=dict)
    table_names: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)
    secret_arns: dict[str, str] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    event_sources: list[EventSourceMapping] = field(default_factory=list)
    routes: list[ApiRoute] = field(default_factory=list)
    gateway_responses: dict[str, GatewayResponse] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
    key_aliases: dict[str, str] = field(default_factory=dict)
    """``alias/...`` -> key id, for every alias provisioning created or found."""
    # Built on first use: the SAM transform and the roles are only needed where IAM is applied.
    _policy_source: Callable[[], dict[str, Policy]] | None = field(default=None, repr=False, compare=False)
    _policies: dict[str, Policy] | None = field(default=None, repr=False, compare=False)

    @property
    def policies(self) -> dict[str, Policy]:
        """Each function's role (SAM-transformed template), resolved to what was created."""
        if self._policies is None:
            if self._policy_source is None:
                raise ProvisionError("this stack was not provisioned from a template: it has no roles")
            self._policies = self._policy_source()
        return self._policies

    def policy_for(self, function_logical_id: str) -> Policy:
        try:
            return self.policies[function_logical_id]
        except KeyError:
            raise ProvisionError(f"the template has no function {function_logical_id!r}") from None

    def function_name(self, function_logical_id: str) -> str:
        """The function's name as CloudFormation would give it (the stack's name first)."""
        return f"{self.prefix}-{function_logical_id}"

    def clients(self) -> tuple[Any, Any, Any, Any]:
        """SQS, DynamoDB, KMS and Secrets Manager clients at this stack's AWS (shared per endpoint)."""
        return _clients(
            self.endpoint_url,
            self.region,
            os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        )

    def dynamodb(self) -> Any:
        return self.clients()[1]

    def iam_lookups(self) -> Lookups:
        """What AWS's per-call rules need to know of this stack (live views, not copies)."""
        return Lookups(key_aliases=self.key_aliases, secret_arns=self.secret_arns.values())

    def env_for(self, function_logical_id: str) -> dict[str, str]:
        """The function's environment: the template's, resolved, with the local overrides on top."""
        try:
            spec = self.functions[function_logical_id]
        except KeyError:
            raise ProvisionError(f"the template has no function {function_logical_id!r}") from None
        return {**spec.environment, **self.overrides}

    def union_env(self) -> dict[str, str]:
        """Every function's environment in one (they agree wherever they overlap)."""
        env: dict[str, str] = {}
        for logical_id in self.functions:
            env.update(self.env_for(logical_id))
        return env


def provision(
    template: Mapping[str, Any],
    *,
    endpoint_url: str,
    parameters: Mapping[str, str] | None = None,
    prefix: str,
    overrides: Mapping[str, str] | None = None,
    api_key: str | None = None,
    region: str | None = None,
) -> Provisioned:
    """Create ``template``'s queues, tables, keys and secrets in the moto at ``endpoint_url``.

    ``overrides`` are environment variables given to every function on top of the
    template's (the local settings); ``api_key`` is the value of every generated secret
    (default ``$SETHUB_LOCAL_API_KEY``, else ``local-dev-key``).
    """
    key = api_key or os.environ.get(API_KEY_ENV) or DEFAULT_API_KEY
    provisioner = _Provisioner(
        template,
        endpoint_url=endpoint_url,
        parameters={**_conditioned_settings(template, overrides or {}), **(parameters or {})},
        prefix=prefix,
        api_key=key,
        region=region or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
    )
    provisioner.result.overrides = dict(overrides or {})
    provisioner.create_all()
    provisioner.read_functions()
    result = provisioner.result
    result._policy_source = lambda: function_policies(
        _sam_transformed(json.dumps(template, sort_keys=True), result.region),
        provisioner.resolver.resolve,
        stack_name=prefix,
    )
    return result


def _conditioned_settings(template: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    """The parameters behind overridden settings that a condition reads (``PublicHub`` for
    ``SETHUB_PUBLIC_HUB``): a local setting then chooses the routes and resources a deployment
    with it gets (a public hub's /hub needs no key at the gateway), not only the variable."""
    conditions = json.dumps(template.get("Conditions") or {})
    variables = (((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}).get(
        "Variables"
    ) or {}
    chosen: dict[str, str] = {}
    for name, value in variables.items():
        parameter = value.get("Ref") if isinstance(value, dict) else None
        if name in overrides and parameter and json.dumps({"Ref": parameter}) in conditions:
            chosen[str(parameter)] = overrides[name]
    return chosen


@lru_cache(maxsize=8)
def _sam_transformed(template_json: str, region: str) -> dict[str, Any]:
    """``sam_transform``, once per distinct template (every test hub provisions the same one)."""
    return sam_transform(json.loads(template_json), region)


def _boolean(value: Any) -> bool:
    """A CloudFormation boolean: true/false, or their strings (from a parameter)."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


@lru_cache(maxsize=8)
def _clients(endpoint_url: str, region: str, access_key: str, secret_key: str) -> tuple[Any, Any, Any, Any]:
    """The provisioner's clients, kept per endpoint: the tests provision hundreds of hubs into
    one moto, and building four clients costs more CPU than most provisioning calls."""
    session = boto3.Session(
        botocore_session=new_session(),
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
    )
    return tuple(
        session.client(name, endpoint_url=endpoint_url)
        for name in ("sqs", "dynamodb", "kms", "secretsmanager")
    )  # type: ignore[return-value, call-overload]


class _Provisioner:
    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        endpoint_url: str,
        parameters: Mapping[str, str],
        prefix: str,
        api_key: str,
        region: str,
    ) -> None:
        self.template = template
        self.resources: dict[str, Any] = dict(template.get("Resources") or {})
        self.globals: dict[str, Any] = dict(template.get("Globals") or {})
        self.prefix = prefix
        self.region = region
        self.result = Provisioned(prefix=prefix, endpoint_url=endpoint_url, region=region, api_key=api_key)
        self.parameters = self._parameters(parameters)
        self.sqs, self.dynamodb, self.kms, self.secrets = self.result.clients()
        self._creators: dict[str, Callable[[str, dict[str, Any]], tuple[str, dict[str, str]]]] = {
            QUEUE: self._queue,
            TABLE: self._table,
            SIMPLE_TABLE: self._simple_table,
            KEY: self._key,
            KEY_ALIAS: self._key_alias,
            SECRET: self._secret,
            SIGNING_KEY_RING: self._signing_key_ring,
            SSF_SIGNING_KEY: self._ssf_signing_key,
        }
        # logical id -> (what Ref gives, GetAtt attributes)
        self.created: dict[str, tuple[str, dict[str, str]]] = {}
        self._creating: set[str] = set()
        self.resolver = Resolver(
            ref=self._ref,
            get_att=self._get_att,
            conditions=template.get("Conditions") or {},
            mappings=template.get("Mappings") or {},
            region=region,
        )

    # -- parameters and references -------------------------------------------------

    def _parameters(self, given: Mapping[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, spec in (self.template.get("Parameters") or {}).items():
            if name in given:
                value: Any = given[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise ProvisionError(f"template parameter {name} has no default: pass it in parameters")
            if str(spec.get("Type", "")).startswith(("CommaDelimitedList", "List<")):
                value = [part.strip() for part in str(value).split(",")]
            values[name] = value
        return values

    def _ref(self, name: str) -> Any:
        pseudo = pseudo_parameters(
            region=self.region, account_id=ACCOUNT_ID, stack_name=self.prefix, stack_id="local"
        )
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return self._ensure(name)[0]
        raise IntrinsicError(f"Ref to unknown name {name!r}")

    def _get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self.resources:
            raise IntrinsicError(f"GetAtt on unknown resource {logical_id!r}")
        _, attributes = self._ensure(logical_id)
        if attribute not in attributes:
            raise IntrinsicError(f"GetAtt {logical_id}.{attribute} is not available locally")
        return attributes[attribute]

    def _ensure(self, logical_id: str) -> tuple[str, dict[str, str]]:
        """The resource, created on first reference (so a DLQ exists before its source queue)."""
        if logical_id in self.created:
            return self.created[logical_id]
        resource = self.resources[logical_id]
        kind = resource.get("Type", "")
        creator = self._creators.get(kind)
        if creator is None:
            # Resources moto does not host for us (functions, the API, alarms...) still get
            # a name and an ARN, so environment values that mention them resolve.
            name = f"{self.prefix}-{logical_id}"
            arn = f"arn:aws:local:{self.region}:{ACCOUNT_ID}:{name}"
            self.created[logical_id] = (name, {"Arn": arn, "Name": name})
            return self.created[logical_id]
        if logical_id in self._creating:
            raise ProvisionError(f"{logical_id} refers to itself through its properties")
        self._creating.add(logical_id)
        properties = self.resolver.resolve(resource.get("Properties") or {})
        self.created[logical_id] = creator(logical_id, properties)
        self._creating.discard(logical_id)
        return self.created[logical_id]

    def _included(self, resource: Mapping[str, Any]) -> bool:
        condition = resource.get("Condition")
        return condition is None or self.resolver.condition(str(condition))

    def create_all(self) -> None:
        for logical_id, resource in self.resources.items():
            if resource.get("Type") in self._creators and self._included(resource):
                self._ensure(logical_id)

    def _name(self, wanted: Any, logical_id: str) -> str:
        """A physical name that carries the prefix, so isolated hubs never collide."""
        name = str(wanted) if wanted else f"{self.prefix}-{logical_id}"
        return name if name.startswith(self.prefix) else f"{self.prefix}-{name}"

    # -- resource creators -----------------------------------------------------------

    def _queue(self, logical_id: str, properties: dict[str, Any]) -> tuple[str, dict[str, str]]:
        fifo = bool(properties.get("FifoQueue"))
        name = self._name(properties.get("QueueName"), logical_id)
        if fifo and not name.endswith(".fifo"):
            name += ".fifo"
        attributes = {key: cfn_string(properties[key]) for key in _QUEUE_ATTRIBUTES if key in properties}
        if "RedrivePolicy" in properties:
            attributes["RedrivePolicy"] = cfn_string(properties["RedrivePolicy"])
        url = self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
        arn = f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{name}"
        self.result.queue_urls[logical_id] = url
        self.result.queue_arns[logical_id] = arn
        return url, {"Arn": arn, "QueueName": name, "QueueUrl": url}

    def _table(self, logical_id: str, properties: dict[str, Any]) -> tuple[str, dict[str, str]]:
        name = self._name(properties.get("TableName"), logical_id)
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "KeySchema": properties["KeySchema"],
            "BillingMode": properties.get("BillingMode", "PROVISIONED"),
        }
        if request["BillingMode"] == "PROVISIONED":
            request["ProvisionedThroughput"] = properties.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification"):
            if key in properties:
                request[key] = properties[key]
        try:
            description = self.dynamodb.create_table(**request)["TableDescription"]
            ttl = properties.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                # moto never expires items; the table still says which attribute is the TTL.
                self.dynamodb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
            description = self.dynamodb.describe_table(TableName=name)["Table"]
        self.result.table_names[logical_id] = name
        attributes = {"Arn": description["TableArn"]}
        if "LatestStreamArn" in description:
            attributes["StreamArn"] = description["LatestStreamArn"]
        return name, attributes

    def _simple_table(self, logical_id: str, properties: dict[str, Any]) -> tuple[str, dict[str, str]]:
        key = properties.get("PrimaryKey") or {"Name": "id", "Type": "String"}
        kind = {"String": "S", "Number": "N", "Binary": "B"}[key.get("Type", "String")]
        table = {
            "TableName": properties.get("TableName"),
            "AttributeDefinitions": [{"AttributeName": key["Name"], "AttributeType": kind}],
            "KeySchema": [{"AttributeName": key["Name"], "KeyType": "HASH"}],
            "BillingMode": "PROVISIONED" if "ProvisionedThroughput" in properties else "PAY_PER_REQUEST",
        }
        if "ProvisionedThroughput" in properties:
            table["ProvisionedThroughput"] = properties["ProvisionedThroughput"]
        return self._table(logical_id, table)

    def _key(self, logical_id: str, properties: dict[str, Any]) -> tuple[str, dict[str, str]]:
        # An alias per (prefix, key) makes provisioning repeatable: KMS keys have no name.
        alias = f"alias/{self.prefix}/{logical_id}"
        try:
            metadata = self.kms.describe_key(KeyId=alias)["KeyMetadata"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NotFoundException":
                raise
            metadata = self.kms.create_key(
                KeySpec=properties.get("KeySpec", "SYMMETRIC_DEFAULT"),
                KeyUsage=properties.get("KeyUsage", "ENCRYPT_DECRYPT"),
                Description=str(properties.get("Description", logical_id)),
            )["KeyMetadata"]
            self.kms.create_alias(AliasName=alias, TargetKeyId=metadata["KeyId"])
        self.result.key_ids[logical_id] = metadata["KeyId"]
        self.result.key_aliases[alias] = metadata["KeyId"]
        return metadata["KeyId"], {"Arn": metadata["Arn"], "KeyId": metadata["KeyId"]}

    def _key_alias(self, logical_id: str, properties: dict[str, Any]) -> tuple[str, dict[str, str]]:
        """A template alias (its name carries the stack name, so the prefix keeps it apart)."""
        name = str(properties["AliasName"])
        target = str(properties["TargetKeyId"])
        try:
            self.kms.create_alias(AliasName=name, TargetKeyId=target)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "AlreadyExistsException":
                raise
            self.kms.update_alias(AliasName=name, TargetKeyId=target)
        self.result.key_aliases[name] = target.rsplit("/", 1)[-1]
        return name, {}

    def _secret(self, logical_id: str, properties: dict[str, Any]) -> tuple[str, dict[str, str]]:
        name = self._name(properties.get("Name"), logical_id)
        generate = properties.get("GenerateSecretString")
        if "SecretString" in properties:
            value = cfn_string(properties["SecretString"])
        elif generate and generate.get("GenerateStringKey"):
            document = json.loads(generate.get("SecretStringTemplate") or "{}")
            document[generate["GenerateStringKey"]] = self.result.api_key
            value = json.dumps(document)
        else:
            # The one generated secret of sethub is the API key: locally it is a known value.
            value = self.result.api_key
        try:
            arn = self.secrets.create_secret(Name=name, SecretString=value)["ARN"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceExistsException":
                raise
            arn = self.secrets.describe_secret(SecretId=name)["ARN"]
        self.result.secret_arns[logical_id] = arn
        return arn, {"Id": arn, "Arn": arn}

    def _signing_key_ring(self, logical_id: str, properties: dict[str, Any]) -> tuple[str, dict[str, str]]:
        """What the template's custom resource function does on deploy, run here with the same
        code: the wrapped signing key ring (its first key), left alone when it exists."""
        from sethub.keyring import DEFAULT_KEY_SPEC, ensure_ring  # noqa: PLC0415 - wrapped mode only

        table_name = str(properties["TableName"])
        ring = ensure_ring(
            self.kms,
            self.dynamodb,
            table_name=table_name,
            data_key_id=str(properties["DataKeyId"]),
            spec=str(properties.get("KeySpec") or DEFAULT_KEY_SPEC),
        )
        return f"{table_name}/signing-key-ring", {"Kid": ring.keys[0].kid}

    def _ssf_signing_key(self, logical_id: str, properties: dict[str, Any]) -> tuple[str, dict[str, str]]:
        """kms mode: the SSF KMS key recorded in the SSF ring, as the template's custom resource does."""
        from sethub.ssf.keys import record_kms_key  # noqa: PLC0415 - kms mode only

        table_name = str(properties["TableName"])
        ring = record_kms_key(self.kms, self.dynamodb, table_name=table_name, key_id=str(properties["KeyId"]))
        return f"{table_name}/ssf-kms-signing-key", {"Kid": ring.keys[0].kid}

    # -- functions, event sources, routes --------------------------------------------

    def read_functions(self) -> None:
        function_globals = self.globals.get("Function") or {}
        api_globals = self.globals.get("Api") or {}
        for resource in self.resources.values():
            if resource.get("Type") == SERVERLESS_API and self._included(resource):
                api = merge_globals(api_globals, resource.get("Properties") or {})
                self._gateway_responses(api)
        for logical_id, resource in self.resources.items():
            if resource.get("Type") != FUNCTION or not self._included(resource):
                continue
            properties = merge_globals(function_globals, resource.get("Properties") or {})
            variables = self.resolver.resolve((properties.get("Environment") or {}).get("Variables") or {})
            self.result.functions[logical_id] = FunctionSpec(
                logical_id=logical_id,
                code_uri=str(properties.get("CodeUri", ".")),
                handler=str(properties.get("Handler", "")),
                timeout=int(properties.get("Timeout", 3)),
                memory_size=int(properties.get("MemorySize", 128)),
                environment={name: cfn_string(value) for name, value in variables.items()},
            )
            for event in (properties.get("Events") or {}).values():
                self._event(logical_id, event, api_globals)
        for logical_id, resource in self.resources.items():
            if resource.get("Type") == EVENT_SOURCE_MAPPING and self._included(resource):
                self._event_source_mapping(logical_id, resource.get("Properties") or {})

    def _event_source_mapping(self, logical_id: str, props: Mapping[str, Any]) -> None:
        """An ``AWS::Lambda::EventSourceMapping`` from a queue of the template to one of its functions."""
        function = ref_target(props.get("FunctionName")) or arn_target(props.get("FunctionName"))
        if function not in self.result.functions:
            raise ProvisionError(
                f"{logical_id}: FunctionName must be !Ref or !GetAtt .Arn of a function of the template"
            )
        arn = str(self.resolver.resolve(props.get("EventSourceArn")))
        queues_by_arn = {queue_arn: queue for queue, queue_arn in self.result.queue_arns.items()}
        if arn not in queues_by_arn:
            raise ProvisionError(f"{logical_id}: {arn} is not a queue of the template")
        queue = queues_by_arn[arn]
        scaling = self.resolver.resolve(props.get("ScalingConfig") or {})
        self.result.event_sources.append(
            EventSourceMapping(
                queue=queue,
                queue_url=self.result.queue_urls[queue],
                queue_arn=arn,
                function=function,
                # Lambda's defaults for an SQS source.
                batch_size=int(self.resolver.resolve(props.get("BatchSize", 10))),
                batching_window_seconds=int(
                    self.resolver.resolve(props.get("MaximumBatchingWindowInSeconds", 0))
                ),
                function_response_types=tuple(self.resolver.resolve(props.get("FunctionResponseTypes", []))),
                maximum_concurrency=(
                    int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None
                ),
                enabled=_boolean(self.resolver.resolve(props.get("Enabled", True))),
            )
        )

    def _event(self, function: str, event: Mapping[str, Any], api_globals: Mapping[str, Any]) -> None:
        kind = event.get("Type")
        props = event.get("Properties") or {}
        if kind == "SQS":
            # SAM would grant the function AWSLambdaSQSQueueExecutionRole (every queue of the
            # account); the template declares its consumers as EventSourceMapping resources.
            raise ProvisionError(
                f"{function}: a SAM SQS event; declare it as an AWS::Lambda::EventSourceMapping resource"
            )
        if kind == "Api":
            api_id = props.get("RestApiId")
            api_name = api_id.get("Ref") if isinstance(api_id, dict) else None
            api = self.resources.get(api_name or IMPLICIT_API) or {}
            api_auth = merge_globals(
                api_globals.get("Auth") or {}, (api.get("Properties") or {}).get("Auth") or {}
            )
            auth = self.resolver.resolve(props.get("Auth") or {})
            required = auth.get(
                "ApiKeyRequired",
                self._definition_requires_key(api, str(props["Path"]), str(props["Method"]))
                or self.resolver.resolve(api_auth.get("ApiKeyRequired", False)),
            )
            self.result.routes.append(
                ApiRoute(
                    path=str(props["Path"]),
                    method=str(props["Method"]).upper(),
                    function=function,
                    api_key_required=bool(required),
                )
            )

    def _definition_requires_key(self, api: Mapping[str, Any], path: str, method: str) -> bool:
        """An API key requirement the API's own OpenAPI (merged with SAM's, ``MergeDefinitions``)
        sets on this method: a ``security`` entry naming ``api_key``, conditions resolved."""
        body = (api.get("Properties") or {}).get("DefinitionBody") or {}
        definition = ((body.get("paths") or {}).get(path) or {}).get(method.lower())
        if not isinstance(definition, dict):
            return False
        # Only the security entry is resolved: the rest may name resources (integrations).
        security = self.resolver.resolve(definition.get("security", []))
        if not isinstance(security, list):  # AWS::NoValue: no requirement
            return False
        return any("api_key" in entry for entry in security if isinstance(entry, dict))

    def _gateway_responses(self, api: Mapping[str, Any]) -> None:
        for kind, spec in (self.resolver.resolve(api.get("GatewayResponses") or {})).items():
            templates = spec.get("ResponseTemplates") or {}
            body = templates.get("application/json") or next(iter(templates.values()), "")
            headers = (spec.get("ResponseParameters") or {}).get("Headers") or {}
            self.result.gateway_responses[kind] = GatewayResponse(
                status=int(spec.get("StatusCode", 0) or 0),
                # SAM writes header values as quoted literals ("'text/plain'").
                headers={name: str(value).strip("'") for name, value in headers.items()},
                body_template=str(body),
            )
