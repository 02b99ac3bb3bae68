"""template.yaml holds the invariants that `sam validate --lint` and cfn-lint do not check.

Each check is a function returning the problems it finds, run against the real template
(no problems) and against a deliberately broken copy (the problem is reported), so no
check can pass vacuously.

Conditions (the signing key's slot, the retired keys) are chosen per deployment, so
the IAM and wiring checks run on ``configured(template, parameters)``: the template as
CloudFormation sees it for one set of parameters.

Besides the policies checked here, SAM adds two AWS managed policies to every function
role: AWSLambdaBasicExecutionRole (logs) and AWSXrayWriteOnlyAccess (Tracing: Active). A SAM
pull event (``Type: SQS`` and the like) would add a third with Resource "*"
(AWSLambdaSQSQueueExecutionRole: receive and delete on every queue of the account), so the
queue consumers are ``AWS::Lambda::EventSourceMapping`` resources and their own policies
grant the poller's actions on their queues. The last checks run SAM's own translator
(offline, as ``sam deploy`` does) and read the IAM roles it generates.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from templates import parameter_resolver

from devstack.iam import sam_transform as sam_transformed
from devstack.intrinsics import IntrinsicError
from sethub.settings import (
    DEFAULT_LEASE_SECONDS_MAX,
    DEFAULT_LEASE_SECONDS_MIN,
    DEFAULT_RETRY_SCHEDULE,
    Settings,
)
from sethub.verification import MAX_CONCURRENT

ROOT = Path(__file__).resolve().parents[2]

Template = dict[str, Any]

# DESIGN.md "Settings": on every function, identical everywhere.
CONTRACT_SETTINGS = (
    "SETHUB_ISSUER",
    "SETHUB_PUBLIC_HUB",
    "SETHUB_OPEN_TOPICS",
    "SETHUB_ALLOW_PRIVATE_CALLBACKS",
    "SETHUB_ALLOW_HTTP_CALLBACKS",
    "SETHUB_RETRY_SCHEDULE",
    "SETHUB_LEASE_SECONDS_MIN",
    "SETHUB_LEASE_SECONDS_MAX",
    "SETHUB_DELIVERY_TIMEOUT_SECONDS",
    "SETHUB_SIGNING_MODE",
    "SETHUB_DISABLE_AFTER_SECONDS",
)

# docs/architecture.md: which queue feeds which function.
EXPECTED_CONSUMERS = {
    ("EventsQueue", "DispatchFunction"),
    ("RetryQueue", "DispatchFunction"),
    ("VerifyQueue", "VerifierFunction"),
}

# The wiring variables each function gets (beyond Globals), and the resource each names.
EXPECTED_WIRING: dict[str, dict[str, str]] = {
    "IngestFunction": {
        "SETHUB_EVENTS_QUEUE_URL": "EventsQueue",
    },
    "WebSubFunction": {
        "SETHUB_EVENTS_QUEUE_URL": "EventsQueue",
        "SETHUB_VERIFY_QUEUE_URL": "VerifyQueue",
        "SETHUB_SIGNING_KEY_IDS": "SigningKey",
        "SETHUB_DATA_KEY_ID": "DataKey",
    },
    "VerifierFunction": {"SETHUB_VERIFY_QUEUE_URL": "VerifyQueue"},
    # SSF tasks (verification, stream-updated, flush) go to dispatch; its key is wrapped under DataKey.
    "SsfFunction": {"SETHUB_EVENTS_QUEUE_URL": "EventsQueue", "SETHUB_DATA_KEY_ID": "DataKey"},
    # The custom resource names the table and key it uses (Custom::SigningKeyRing).
    "KeyRingFunction": {},
    # Ingress=http: the HTTP API's authorizer reads key records only.
    "AuthorizerFunction": {},
    "DispatchFunction": {
        "SETHUB_EVENTS_QUEUE_URL": "EventsQueue",
        "SETHUB_RETRY_QUEUE_URL": "RetryQueue",
        "SETHUB_DEAD_LETTER_QUEUE_URL": "RetryDeadLetterQueue",
        "SETHUB_VERIFY_QUEUE_URL": "VerifyQueue",
        "SETHUB_SIGNING_KEY_IDS": "SigningKey",
        "SETHUB_DATA_KEY_ID": "DataKey",
    },
}

# Issue 6 item 6: exactly the actions each function uses, each on the one resource it uses.
_TABLE_READ_WRITE = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"}
# What Lambda's poller needs on a queue it feeds to a function (what the managed policy
# AWSLambdaSQSQueueExecutionRole grants on every queue).
POLLER_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
EXPECTED_GRANTS: dict[str, set[tuple[str, str]]] = {
    # API keys are hashed records in HubTable (GetItem): no Secrets Manager rights.
    "IngestFunction": {
        *((action, "HubTable") for action in _TABLE_READ_WRITE),
        ("sqs:SendMessage*", "EventsQueue"),
    },
    "WebSubFunction": {
        *(
            (action, "HubTable")
            for action in (*_TABLE_READ_WRITE, "dynamodb:Query", "dynamodb:BatchWriteItem")
        ),
        ("sqs:SendMessage*", "EventsQueue"),
        ("sqs:SendMessage*", "VerifyQueue"),
        # The JWKS: kms mode only (wrapped reads the key ring from HubTable).
        ("kms:GetPublicKey", "SigningKey"),
        ("kms:Encrypt", "DataKey"),
    },
    # SSF: receivers, hashed tokens, streams and their type index (transactions: Put and
    # Delete per item), poll queues; the SSF key is made here (Encrypt only) and signed with
    # by dispatch (its Decrypt on DataKey, conditioned on the purpose).
    "SsfFunction": {
        *(
            (action, "HubTable")
            for action in (*_TABLE_READ_WRITE, "dynamodb:Query", "dynamodb:BatchWriteItem")
        ),
        ("kms:Encrypt", "DataKey"),
        ("sqs:SendMessage*", "EventsQueue"),
    },
    # Wrapped signing keys: generated at deploy time, wrapped (Encrypt, conditioned on the
    # key's purpose) and stored in the ring's one item.
    # Ingress=http: the HTTP API's authorizer looks up key records by hash, nothing else.
    "AuthorizerFunction": {("dynamodb:GetItem", "HubTable")},
    "KeyRingFunction": {
        ("dynamodb:GetItem", "HubTable"),
        ("dynamodb:PutItem", "HubTable"),
        ("kms:Encrypt", "DataKey"),
    },
    "VerifierFunction": {
        *((action, "HubTable") for action in _TABLE_READ_WRITE),
        # The verified-subscription transaction checks the topic: AWS authorises it per item.
        ("dynamodb:ConditionCheckItem", "HubTable"),
        # Per-host denial counters (sethub.hostlimits).
        ("dynamodb:UpdateItem", "HubTable"),
        *((action, "VerifyQueue") for action in POLLER_ACTIONS),
        # A verification whose callback host is busy goes back on its queue, delayed.
        ("sqs:SendMessage*", "VerifyQueue"),
    },
    "DispatchFunction": {
        *(
            (action, "HubTable")
            for action in (
                "dynamodb:Query",
                "dynamodb:GetItem",
                "dynamodb:DeleteItem",
                "dynamodb:BatchWriteItem",
                "dynamodb:UpdateItem",
            )
        ),
        # kms mode only: wrapped mode decrypts its key once per container (Decrypt below).
        ("kms:Sign", "SigningKey"),
        ("kms:GetPublicKey", "SigningKey"),
        # hub.secret values, and (wrapped) the signing key: each conditioned on its context.
        ("kms:Decrypt", "DataKey"),
        ("sqs:SendMessage*", "EventsQueue"),
        ("sqs:SendMessage*", "RetryQueue"),
        ("sqs:SendMessage*", "RetryDeadLetterQueue"),
        ("sqs:SendMessage*", "VerifyQueue"),
        *((action, queue) for action in POLLER_ACTIONS for queue in ("EventsQueue", "RetryQueue")),
    },
}

# Parameters of the deployments the IAM and wiring checks are run for: the defaults (wrapped
# signing), wrapped with KMS keys retired from a kms-mode past, and kms signing with its key
# in slot a, rotated into slot b (and back to a) with retired keys still published.
RETIRED_KEYS = (
    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab,"
    "arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
)
DEPLOYMENTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "http ingress, untraced, quiet logs": {
        "Ingress": "http",
        "Tracing": "PassThrough",
        "SystemLogLevel": "WARN",
    },
    "wrapped, kms keys retired": {"PreviousSigningKeyArns": RETIRED_KEYS},
    "kms": {"SigningMode": "kms"},
    "rotated to slot b": {
        "SigningMode": "kms",
        "SigningKeySlot": "b",
        "PreviousSigningKeyArns": RETIRED_KEYS,
    },
    "rotated back to slot a": {
        "SigningMode": "kms",
        "SigningKeySlot": "a",
        "PreviousSigningKeyArns": RETIRED_KEYS,
    },
}


# Functions that only some deployments have: the parameters that create them.
ONLY_WITH: dict[str, dict[str, str]] = {"AuthorizerFunction": {"Ingress": "http"}}


def has_function(function: str, parameters: Mapping[str, str]) -> bool:
    return all(parameters.get(name) == value for name, value in ONLY_WITH.get(function, {}).items())


def function_deployments(expected: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(function, deployment) for every deployment that has the function."""
    return [
        (function, deployment)
        for function in sorted(expected)
        for deployment in sorted(DEPLOYMENTS)
        if has_function(function, DEPLOYMENTS[deployment])
    ]


def kms_signing(parameters: Mapping[str, str]) -> bool:
    return parameters.get("SigningMode") == "kms"


def expected_grants(function: str, parameters: Mapping[str, str]) -> set[tuple[str, str]]:
    """EXPECTED_GRANTS for a deployment: kms mode's active slot key (none in wrapped mode),
    and the JWKS of retired keys."""
    active = "SigningKeyB" if parameters.get("SigningKeySlot") == "b" else "SigningKey"
    expected = {
        (action, active if target == "SigningKey" else target)
        for action, target in EXPECTED_GRANTS[function]
        if target != "SigningKey" or kms_signing(parameters)
    }
    if function == "WebSubFunction" and parameters.get("PreviousSigningKeyArns"):
        # Only the JWKS reads the retired keys; dispatch signs with the active key alone.
        expected.add(("kms:GetPublicKey", "PreviousSigningKeyArns"))
    if kms_signing(parameters):
        # The SSF streams' KMS key (RSA, same slot): dispatch signs, the deploy's custom
        # resource reads its public half into the SSF ring; no wrapped SSF key is made.
        ssf_key = "SsfSigningKeyB" if parameters.get("SigningKeySlot") == "b" else "SsfSigningKey"
        expected |= {
            "DispatchFunction": {("kms:Sign", ssf_key)},
            "KeyRingFunction": {("kms:GetPublicKey", ssf_key)},
        }.get(function, set())
        if function == "SsfFunction":
            expected.discard(("kms:Encrypt", "DataKey"))
    if function == "IngestFunction" and parameters.get("Ingress") == "http":
        # The per-key request counters (sethub.credentials.ratelimit): the HTTP API has no usage plans.
        expected.add(("dynamodb:UpdateItem", "HubTable"))
    return expected


def expected_wiring(function: str, parameters: Mapping[str, str]) -> dict[str, str]:
    """EXPECTED_WIRING for a deployment: the active key first, then the retired keys."""
    wiring = dict(EXPECTED_WIRING[function])
    if "SETHUB_SIGNING_KEY_IDS" in wiring:
        if kms_signing(parameters):
            keys = ["SigningKeyB" if parameters.get("SigningKeySlot") == "b" else "SigningKey"]
            if parameters.get("PreviousSigningKeyArns"):
                keys.append("PreviousSigningKeyArns")
        else:
            # wrapped: the retired KMS keys only (published, never signing), maybe none.
            keys = ["PreviousSigningKeyArns"]
        wiring["SETHUB_SIGNING_KEY_IDS"] = ",".join(keys)
    return wiring


# The AWS managed policies SAM attaches to every role it generates (ARN suffixes): logs, and
# X-Ray for Tracing: Active. Any other is a grant this test cannot see (e.g.
# AWSLambdaSQSQueueExecutionRole: receive and delete on every queue, from a SAM SQS event).
SAM_BASE_MANAGED_POLICIES = frozenset({"service-role/AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess"})

# Actions that AWS only authorises on Resource "*" (they have no resource type).
RESOURCE_STAR_ACTIONS = frozenset(
    {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "cloudwatch:PutMetricData",
    }
)

# The SAM policy templates the template may use: actions, parameter, how the parameter
# must name the resource (Ref, or GetAtt of an attribute) and the resource's type.
POLICY_TEMPLATES: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "SQSSendMessagePolicy": (("sqs:SendMessage*",), "QueueName", "QueueName", "AWS::SQS::Queue"),
    "KMSDecryptPolicy": (("kms:Decrypt",), "KeyId", "Ref", "AWS::KMS::Key"),
    "KMSEncryptPolicy": (("kms:Encrypt",), "KeyId", "Ref", "AWS::KMS::Key"),
    "AWSSecretsManagerGetSecretValuePolicy": (
        ("secretsmanager:GetSecretValue",),
        "SecretArn",
        "Ref",
        "AWS::SecretsManager::Secret",
    ),
}

# What a parameter listing KMS key ARNs must allow: blank, or key ARNs (never aliases or
# wildcards, as they become IAM resources).
_KEY_ARN = "arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+"
KEY_ARNS_PATTERN = f"^$|^{_KEY_ARN}(,{_KEY_ARN})*$"

# Resource types whose Ref is their ARN (for the others Ref is a name, URL or id).
REF_IS_ARN = frozenset({"AWS::SecretsManager::Secret", "AWS::SNS::Topic"})


# ---------------------------------------------------------------- reading the template

_REMOVED = object()


def configured(template: Template, parameters: Mapping[str, str] | None = None) -> Template:
    """The template as deployed with ``parameters``: every ``Fn::If`` replaced by its chosen
    branch, ``AWS::NoValue`` dropped, and resources whose ``Condition`` is false removed."""

    # The template's conditions read its parameters only: anything else they name is an error here.
    def not_a_parameter(name: str) -> Any:
        raise IntrinsicError(f"a condition refers to {name}, which is not a parameter")

    def get_att(logical_id: str, attribute: str) -> Any:
        raise IntrinsicError(f"a condition refers to {logical_id}.{attribute}")

    resolver = parameter_resolver(template, parameters, other_ref=not_a_parameter, get_att=get_att)

    def choose(value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in map(choose, value) if item is not _REMOVED]
        if not isinstance(value, dict):
            return value
        if value == {"Ref": "AWS::NoValue"}:
            return _REMOVED
        if set(value) == {"Fn::If"}:
            condition, if_true, if_false = value["Fn::If"]
            return choose(if_true if resolver.condition(condition) else if_false)
        chosen = {key: choose(item) for key, item in value.items()}
        return {key: item for key, item in chosen.items() if item is not _REMOVED}

    result: Template = choose(template)
    for section in ("Resources", "Outputs"):
        result[section] = {
            name: res
            for name, res in result.get(section, {}).items()
            if "Condition" not in res or resolver.condition(res["Condition"])
        }
    return result


def resources(template: Template, type_: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res.get("Type") == type_}


def functions(template: Template) -> dict[str, dict[str, Any]]:
    """Every function's properties with Globals merged in, as SAM merges them."""
    defaults = template.get("Globals", {}).get("Function", {})
    merged: dict[str, dict[str, Any]] = {}
    for name, res in resources(template, "AWS::Serverless::Function").items():
        own = res.get("Properties", {})
        props = {**copy.deepcopy(defaults), **copy.deepcopy(own)}
        variables = {
            **defaults.get("Environment", {}).get("Variables", {}),
            **own.get("Environment", {}).get("Variables", {}),
        }
        props["Environment"] = {"Variables": variables}
        merged[name] = props
    return merged


def ref_target(value: Any) -> str | None:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return str(value["Ref"])
    return None


def get_att_target(value: Any, attribute: str) -> str | None:
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        resource, attr = value["Fn::GetAtt"]
        return str(resource) if attr == attribute else None
    return None


def sqs_event_sources(template: Template) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(function, queue logical id, mapping properties) for every EventSourceMapping."""
    # AWS::Lambda::Function once SAM has transformed the template.
    fns = {**resources(template, "AWS::Serverless::Function"), **resources(template, "AWS::Lambda::Function")}
    queues = resources(template, "AWS::SQS::Queue")
    for name, res in resources(template, "AWS::Lambda::EventSourceMapping").items():
        props = res["Properties"]
        value = props["FunctionName"]
        function = ref_target(value) or get_att_target(value, "Arn")
        assert function in fns, (
            f"{name}: FunctionName must be !Ref (or !GetAtt .Arn) of a function of the template"
        )
        queue = get_att_target(props["EventSourceArn"], "Arn")
        assert queue in queues, f"{name}: EventSourceArn must be !GetAtt <Queue>.Arn of the template"
        yield function, queue, props


def key_arns_parameter(template: Template, value: Any) -> str | None:
    """The parameter that ``value`` splits into KMS key ARNs (``!Split [",", !Ref P]``)."""
    if not (isinstance(value, dict) and set(value) == {"Fn::Split"}):
        return None
    separator, source = value["Fn::Split"]
    name = ref_target(source)
    assert separator == ",", f"{value!r} must split on ,"
    assert name in template["Parameters"], f"{value!r} must split a parameter"
    pattern = template["Parameters"][name].get("AllowedPattern", "")
    assert pattern == KEY_ARNS_PATTERN, f"{name} must only admit KMS key ARNs"
    return name


def arn_of(template: Template, value: Any) -> str:
    """The logical id whose ARN ``value`` is (or the parameter holding key ARNs); fails for
    anything broader or not an ARN."""
    assert not (isinstance(value, dict) and "Fn::If" in value), (
        "choose the template's conditions first: configured()"
    )
    parameter = key_arns_parameter(template, value)
    if parameter is not None:
        return parameter
    target = get_att_target(value, "Arn")
    ref = ref_target(value)
    if target is None and ref is not None and template["Resources"].get(ref, {}).get("Type") in REF_IS_ARN:
        target = ref
    assert target is not None, f"{value!r} is not the ARN of one resource"
    assert target in template["Resources"], f"{target} is not a resource of the template"
    return target


def _strings(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_statements(template: Template, policy: Any) -> Iterator[tuple[list[str], list[Any]]]:
    """(actions, resources) of each statement of one entry of a function's ``Policies``."""
    assert not isinstance(policy, str), f"managed policy {policy!r}: grant the actions explicitly"
    if "Statement" in policy:
        for statement in _strings(policy["Statement"]):
            assert "Fn::If" not in statement, "choose the template's conditions first: configured()"
            assert "NotAction" not in statement, "NotAction grants everything else"
            assert "NotResource" not in statement, "NotResource grants everything else"
            if statement.get("Effect") == "Allow":
                yield _strings(statement["Action"]), _strings(statement["Resource"])
        return
    ((name, parameters),) = policy.items()
    assert name in POLICY_TEMPLATES, f"SAM policy template {name} is not vetted by this test"
    actions, parameter, how, type_ = POLICY_TEMPLATES[name]
    value = parameters[parameter]
    target = ref_target(value) if how == "Ref" else get_att_target(value, how)
    assert target is not None, f"{name}.{parameter} must be a {how} of a resource, not {value!r}"
    assert template["Resources"][target]["Type"] == type_, f"{name}.{parameter} names {target}"
    yield list(actions), [{"Fn::GetAtt": [target, "Arn"]}]


def grants(template: Template, function: str) -> set[tuple[str, str]]:
    """The (action, logical id) pairs a function's Policies allow."""
    granted: set[tuple[str, str]] = set()
    policies = resources(template, "AWS::Serverless::Function")[function]["Properties"].get("Policies", [])
    for policy in _strings(policies):
        for actions, targets in policy_statements(template, policy):
            for target in targets:
                granted |= {(action, arn_of(template, target)) for action in actions}
    return granted


def _wildcards(targets: list[Any]) -> list[str]:
    """The resources of a statement that match more than one named resource."""
    wild = []
    for target in targets:
        text = target.get("Fn::Sub") if isinstance(target, dict) else target
        text = text[0] if isinstance(text, list) else text
        if isinstance(text, str) and "*" in text:
            wild.append(text)
    return wild


# ---------------------------------------------------------------- the checks


def visibility_problems(template: Template) -> list[str]:
    problems = []
    fns = functions(template)
    for function, queue, _ in sqs_event_sources(template):
        visibility = template["Resources"][queue]["Properties"].get("VisibilityTimeout", 30)
        timeout = fns[function]["Timeout"]
        if visibility < 6 * timeout:
            problems.append(f"{queue} VisibilityTimeout {visibility} < 6 x {function} Timeout {timeout}")
    return problems


def dead_letter_problems(template: Template) -> list[str]:
    problems = []
    queues = resources(template, "AWS::SQS::Queue")
    for name, queue in queues.items():
        props = queue.get("Properties", {})
        if name.endswith("DeadLetterQueue"):
            if "RedrivePolicy" in props:
                problems.append(f"dead-letter queue {name} has a RedrivePolicy of its own")
            continue
        redrive = props.get("RedrivePolicy")
        expected = f"{name.removesuffix('Queue')}DeadLetterQueue"
        if redrive is None:
            problems.append(f"{name} has no RedrivePolicy")
        elif get_att_target(redrive.get("deadLetterTargetArn"), "Arn") != expected or expected not in queues:
            problems.append(f"{name} does not redrive to its own {expected}")
        elif not 1 <= int(redrive.get("maxReceiveCount", 0)) <= 10:
            problems.append(f"{name} maxReceiveCount must be 1..10")
        else:
            dlq_retention = queues[expected].get("Properties", {}).get("MessageRetentionPeriod", 345600)
            if dlq_retention < props.get("MessageRetentionPeriod", 345600):
                problems.append(f"{expected} keeps messages for less time than {name}")
    return problems


def log_group_problems(template: Template) -> list[str]:
    problems = []
    groups = resources(template, "AWS::Logs::LogGroup")
    seen: dict[str, str] = {}
    for name, props in functions(template).items():
        group = ref_target(props.get("LoggingConfig", {}).get("LogGroup"))
        if group not in groups:
            problems.append(f"{name} has no LoggingConfig.LogGroup of its own")
        elif "RetentionInDays" not in groups[group].get("Properties", {}):
            problems.append(f"{group} ({name}) has no RetentionInDays")
        elif group in seen:
            problems.append(f"{name} shares {group} with {seen[group]}")
        else:
            seen[group] = name
    return problems


def event_source_problems(template: Template) -> list[str]:
    problems = []
    for name, res in resources(template, "AWS::Serverless::Function").items():
        for event_name, event in res.get("Properties", {}).get("Events", {}).items():
            # Pull events (SQS, Kinesis, DynamoDB...) make SAM attach a managed policy on "*".
            if event.get("Type") != "Api":
                problems.append(
                    f"{name} event {event_name}: SAM {event.get('Type')} events attach managed policies; "
                    "declare an AWS::Lambda::EventSourceMapping"
                )
    for function, queue, props in sqs_event_sources(template):
        where = f"{function} <- {queue}"
        if props.get("Enabled", True) is not True:
            problems.append(f"{where}: not Enabled")
        if "ReportBatchItemFailures" not in props.get("FunctionResponseTypes", []):
            problems.append(f"{where}: no ReportBatchItemFailures")
        concurrency = props.get("ScalingConfig", {}).get("MaximumConcurrency")
        if not isinstance(concurrency, int) or not 2 <= concurrency <= 1000:
            problems.append(f"{where}: ScalingConfig.MaximumConcurrency must be 2..1000, not {concurrency}")
        if not 1 <= props.get("BatchSize", 10) <= 10:
            problems.append(f"{where}: BatchSize must be 1..10")
    return problems


def resource_star_problems(template: Template) -> list[str]:
    """Resource "*" (or a wildcard ARN) in a function policy, unless AWS requires it."""
    problems = []
    for name, res in resources(template, "AWS::Serverless::Function").items():
        for policy in _strings(res.get("Properties", {}).get("Policies", [])):
            if isinstance(policy, str) or "Statement" not in policy:
                continue  # managed policies and SAM templates are vetted by policy_statements
            for actions, targets in policy_statements(template, policy):
                wild = [t for t in targets if isinstance(t, str) and (t == "*" or t.endswith(":*"))]
                if wild and not set(actions) <= RESOURCE_STAR_ACTIONS:
                    problems.append(f"{name}: {sorted(set(actions) - RESOURCE_STAR_ACTIONS)} on {wild}")
    for type_ in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        if resources(template, type_):
            problems.append(f"{type_} resources are not vetted by this test")
    return problems


def role_problems(transformed: Template) -> list[str]:
    """What SAM's generated roles grant beyond SAM's two base policies and named resources."""
    problems = []
    for name, role in resources(transformed, "AWS::IAM::Role").items():
        props = role["Properties"]
        for arn in props.get("ManagedPolicyArns", []):
            if not (isinstance(arn, str) and arn.split(":policy/", 1)[-1] in SAM_BASE_MANAGED_POLICIES):
                problems.append(f"{name}: managed policy {arn}")
        for policy in props.get("Policies", []):
            for statement in _strings(policy["PolicyDocument"]["Statement"]):
                assert "Fn::If" not in statement, "choose the template's conditions first: configured()"
                if {"NotAction", "NotResource"} & set(statement):
                    problems.append(f"{name}: NotAction/NotResource grants everything else")
                    continue
                actions = set(_strings(statement["Action"]))
                wild = _wildcards(_strings(statement["Resource"]))
                if statement["Effect"] == "Allow" and wild and not actions <= RESOURCE_STAR_ACTIONS:
                    problems.append(f"{name}: {sorted(actions - RESOURCE_STAR_ACTIONS)} on {wild}")
    return problems


def polled_queues(transformed: Template) -> dict[str, set[str]]:
    """Function -> the queues its generated role may receive from."""
    polled: dict[str, set[str]] = {}
    for name, function in resources(transformed, "AWS::Lambda::Function").items():
        role = get_att_target(function["Properties"]["Role"], "Arn")
        assert role is not None, f"{name}: Role must be a role of the template"
        queues = polled.setdefault(name, set())
        for policy in transformed["Resources"][role]["Properties"].get("Policies", []):
            for statement in _strings(policy["PolicyDocument"]["Statement"]):
                if "sqs:ReceiveMessage" in _strings(statement.get("Action", [])):
                    queues |= {arn_of(transformed, target) for target in _strings(statement["Resource"])}
    return polled


def alarm_problems(template: Template) -> list[str]:
    alarmed = set()
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if (
            props.get("Namespace") == "AWS/SQS"
            and props.get("MetricName") == "ApproximateNumberOfMessagesVisible"
            and props.get("ComparisonOperator") == "GreaterThanThreshold"
            and props.get("Threshold") == 0
        ):
            for dimension in props.get("Dimensions", []):
                if dimension["Name"] == "QueueName":
                    alarmed.add(get_att_target(dimension["Value"], "QueueName"))
    queues = resources(template, "AWS::SQS::Queue")
    return [
        f"{name} has no alarm on ApproximateNumberOfMessagesVisible > 0"
        for name in queues
        if name.endswith("DeadLetterQueue") and name not in alarmed
    ]


def settings_problems(template: Template) -> list[str]:
    return [
        f"{name} lacks {setting}"
        for name, props in functions(template).items()
        for setting in CONTRACT_SETTINGS
        if setting not in props["Environment"]["Variables"]
    ]


# ---------------------------------------------------------------- tests


@pytest.fixture
def broken(template: Template) -> Template:
    """A copy of the template a test may damage."""
    return copy.deepcopy(template)


def test_every_consumer_queue_hides_messages_for_six_function_timeouts(
    template: Template, broken: Template
) -> None:
    assert {(queue, fn) for fn, queue, _ in sqs_event_sources(template)} == EXPECTED_CONSUMERS
    assert visibility_problems(template) == []

    broken["Resources"]["VerifyQueue"]["Properties"]["VisibilityTimeout"] = 359
    assert visibility_problems(broken) == [
        "VerifyQueue VisibilityTimeout 359 < 6 x VerifierFunction Timeout 60"
    ]


def test_every_queue_redrives_to_its_own_dead_letter_queue(template: Template, broken: Template) -> None:
    assert dead_letter_problems(template) == []
    assert {name for name in resources(template, "AWS::SQS::Queue") if name.endswith("DeadLetterQueue")} == {
        "EventsDeadLetterQueue",
        "RetryDeadLetterQueue",
        "VerifyDeadLetterQueue",
    }

    del broken["Resources"]["RetryQueue"]["Properties"]["RedrivePolicy"]
    assert dead_letter_problems(broken) == ["RetryQueue has no RedrivePolicy"]


def test_every_function_logs_to_its_own_group_with_retention(template: Template, broken: Template) -> None:
    assert log_group_problems(template) == []

    del broken["Resources"]["DispatchLogGroup"]["Properties"]["RetentionInDays"]
    assert log_group_problems(broken) == ["DispatchLogGroup (DispatchFunction) has no RetentionInDays"]


def test_event_sources_report_partial_failures_with_bounded_concurrency(
    template: Template, broken: Template
) -> None:
    assert event_source_problems(template) == []

    broken["Resources"]["DispatchFunctionRetryQueue"]["Properties"]["ScalingConfig"]["MaximumConcurrency"] = 1
    assert event_source_problems(broken) == [
        "DispatchFunction <- RetryQueue: ScalingConfig.MaximumConcurrency must be 2..1000, not 1"
    ]


def test_a_sam_sqs_event_is_refused(broken: Template) -> None:
    # GIVEN a consumer declared the SAM way, which grants receive/delete on every queue
    mapping = broken["Resources"].pop("VerifierFunctionVerifyQueue")["Properties"]
    event = {"Queue": mapping.pop("EventSourceArn"), **mapping}
    del event["FunctionName"]
    broken["Resources"]["VerifierFunction"]["Properties"]["Events"] = {
        "VerifyQueue": {"Type": "SQS", "Properties": event}
    }
    # THEN the event-source check says so
    assert event_source_problems(broken) == [
        "VerifierFunction event VerifyQueue: SAM SQS events attach managed policies; "
        "declare an AWS::Lambda::EventSourceMapping"
    ]


def test_a_mapping_must_name_a_function_and_a_queue_of_the_template(broken: Template) -> None:
    broken["Resources"]["VerifierFunctionVerifyQueue"]["Properties"]["EventSourceArn"] = {
        "Fn::Sub": "arn:aws:sqs:us-east-1:111122223333:verify"
    }
    with pytest.raises(AssertionError, match="EventSourceArn must be"):
        event_source_problems(broken)


def test_every_dead_letter_queue_has_an_alarm(template: Template, broken: Template) -> None:
    assert alarm_problems(template) == []

    del broken["Resources"]["VerifyDeadLetterQueueAlarm"]
    assert alarm_problems(broken) == [
        "VerifyDeadLetterQueue has no alarm on ApproximateNumberOfMessagesVisible > 0"
    ]


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_no_function_policy_grants_resource_star(
    template: Template, broken: Template, deployment: str
) -> None:
    assert resource_star_problems(configured(template, DEPLOYMENTS[deployment])) == []

    # A wildcard only some deployments get (behind a condition) is caught in those.
    statement = {"Effect": "Allow", "Action": ["dynamodb:Scan", "xray:PutTraceSegments"], "Resource": "*"}
    hidden = {"Fn::If": ["HasPreviousSigningKeys", statement, {"Ref": "AWS::NoValue"}]}
    broken["Resources"]["IngestFunction"]["Properties"]["Policies"].append({"Statement": [hidden]})
    retired = DEPLOYMENTS[deployment].get("PreviousSigningKeyArns")
    expected = ["IngestFunction: ['dynamodb:Scan'] on ['*']"] if retired else []
    assert resource_star_problems(configured(broken, DEPLOYMENTS[deployment])) == expected


def test_tracing_policy_may_use_resource_star(broken: Template) -> None:
    statement = {"Effect": "Allow", "Action": ["xray:PutTraceSegments"], "Resource": "*"}
    broken["Resources"]["IngestFunction"]["Properties"]["Policies"].append({"Statement": [statement]})
    assert resource_star_problems(configured(broken)) == []


@pytest.mark.parametrize(("function", "deployment"), function_deployments(EXPECTED_GRANTS))
def test_each_function_is_granted_exactly_what_it_uses(
    template: Template, function: str, deployment: str
) -> None:
    parameters = DEPLOYMENTS[deployment]
    assert grants(configured(template, parameters), function) == expected_grants(function, parameters)


def test_a_conditional_statement_is_only_vetted_once_its_condition_is_chosen(template: Template) -> None:
    with pytest.raises(AssertionError, match="choose the template's conditions first"):
        grants(template, "WebSubFunction")


def test_a_retired_key_list_that_admits_more_than_key_arns_is_caught(template: Template) -> None:
    loose = copy.deepcopy(template)
    loose["Parameters"]["PreviousSigningKeyArns"]["AllowedPattern"] = ".*"
    with pytest.raises(AssertionError, match="must only admit KMS key ARNs"):
        grants(configured(loose, DEPLOYMENTS["rotated to slot b"]), "WebSubFunction")


def test_a_grant_on_the_wrong_resource_is_caught(broken: Template) -> None:
    policies = broken["Resources"]["VerifierFunction"]["Properties"]["Policies"]
    policies.append({"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["EventsQueue", "QueueName"]}}})
    assert grants(broken, "VerifierFunction") - EXPECTED_GRANTS["VerifierFunction"] == {
        ("sqs:SendMessage*", "EventsQueue")
    }


def test_a_queue_url_is_not_accepted_as_a_policy_resource(broken: Template) -> None:
    statement = {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": {"Ref": "EventsQueue"}}
    broken["Resources"]["IngestFunction"]["Properties"]["Policies"].append({"Statement": [statement]})
    with pytest.raises(AssertionError, match="is not the ARN of one resource"):
        grants(configured(broken, DEPLOYMENTS["defaults"]), "IngestFunction")


def test_key_policies_open_to_other_principals_only_through_dynamodb_in_this_account(
    template: Template,
) -> None:
    for name, key in resources(template, "AWS::KMS::Key").items():
        for statement in key["Properties"]["KeyPolicy"]["Statement"]:
            if statement["Principal"].get("AWS") == "*":
                condition = statement["Condition"]["StringEquals"]
                assert condition["kms:CallerAccount"] == {"Ref": "AWS::AccountId"}, name
                assert condition["kms:ViaService"] == {"Fn::Sub": "dynamodb.${AWS::Region}.${AWS::URLSuffix}"}
            else:
                assert statement["Principal"] == {
                    "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
                }, name


def test_every_design_setting_is_on_every_function(template: Template, broken: Template) -> None:
    assert settings_problems(template) == []

    del broken["Globals"]["Function"]["Environment"]["Variables"]["SETHUB_OPEN_TOPICS"]
    assert len(settings_problems(broken)) == len(EXPECTED_WIRING)


class _RecordingEnv(dict[str, str]):
    """An environment that remembers which names were asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)


def test_every_sethub_variable_in_the_template_is_one_settings_reads(template: Template) -> None:
    recorder = _RecordingEnv()
    Settings.from_env(recorder)
    assert set(CONTRACT_SETTINGS) <= recorder.asked
    for name, props in functions(template).items():
        unknown = {
            var for var in props["Environment"]["Variables"] if var.startswith("SETHUB_")
        } - recorder.asked
        assert unknown == set(), f"{name} sets variables sethub never reads"


def wiring_target(value: Any) -> str | None:
    """The logical id (or parameter) a variable names, or several joined with ','."""
    if isinstance(value, dict) and set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        targets = [ref_target(part) for part in parts]
        return ",".join(str(target) for target in targets) if separator == "," else None
    return ref_target(value)


@pytest.mark.parametrize(("function", "deployment"), function_deployments(EXPECTED_WIRING))
def test_each_function_is_wired_to_the_resources_it_uses(
    template: Template, function: str, deployment: str
) -> None:
    parameters = DEPLOYMENTS[deployment]
    variables = functions(configured(template, parameters))[function]["Environment"]["Variables"]
    wiring = {
        var: wiring_target(value)
        for var, value in variables.items()
        if var.endswith(("_URL", "_ID", "_IDS")) and var != "SETHUB_PUBLIC_URL"
    }
    assert wiring == expected_wiring(function, parameters)
    assert ref_target(variables["SETHUB_TABLE_NAME"]) == "HubTable"


def _references(value: Any) -> Iterator[str]:
    """Every logical id or parameter named by a Ref, GetAtt or ${...} in ``value``."""
    if isinstance(value, list):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        if set(value) == {"Ref"}:
            yield str(value["Ref"]).split(".", 1)[0]  # SAM's !Ref HubApi.Stage
        elif set(value) == {"Fn::GetAtt"}:
            target = value["Fn::GetAtt"]
            yield str(target[0] if isinstance(target, list) else target.split(".", 1)[0])
        elif set(value) == {"Fn::Sub"}:
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
            for name in re.findall(r"\$\{([^}!][^}]*)\}", text):
                yield name.split(".", 1)[0]
            if isinstance(value["Fn::Sub"], list):
                yield from _references(value["Fn::Sub"][1])
        else:
            for item in value.values():
                yield from _references(item)


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_no_deployment_refers_to_a_signing_key_it_does_not_create(
    template: Template, deployment: str
) -> None:
    deployed = configured(template, DEPLOYMENTS[deployment])
    known = set(deployed["Resources"]) | set(deployed["Parameters"])
    named = set(_references(deployed["Resources"])) | set(_references(deployed["Outputs"]))
    assert {name for name in named if not name.startswith("AWS::")} - known == set()
    keys = {"SigningKey", "SigningKeyB"} & set(deployed["Resources"])
    assert len(keys) == (1 if kms_signing(DEPLOYMENTS[deployment]) else 0), keys
    # wrapped: the deploy makes the key ring (the custom resource); kms: it does not.
    assert ("SigningKeyRing" in deployed["Resources"]) != kms_signing(DEPLOYMENTS[deployment])


def test_a_reference_to_the_slot_that_is_not_deployed_is_caught(template: Template) -> None:
    broken = copy.deepcopy(template)
    broken["Resources"]["SigningKeyAlias"]["Properties"]["TargetKeyId"] = {"Ref": "SigningKeyB"}
    deployed = configured(broken, {"SigningMode": "kms"})
    assert "SigningKeyB" in set(_references(deployed["Resources"])) - set(deployed["Resources"])


def _parameter_defaults(template: Template) -> dict[str, str]:
    return {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}


def test_deployed_defaults_are_the_design_defaults(template: Template) -> None:
    # GIVEN a stack deployed with every parameter left at its default
    defaults = _parameter_defaults(template)
    variables = functions(configured(template))["DispatchFunction"]["Environment"]["Variables"]
    env = {
        var: defaults.get(str(ref_target(value)), "resource") if ref_target(value) else str(value)
        for var, value in variables.items()
    }
    # WHEN a function reads its settings
    settings = Settings.from_env(env)
    # THEN they are DESIGN.md's deployed defaults
    assert settings.issuer == ""  # the API's base URL, derived per request
    assert not settings.public_hub
    assert not settings.open_topics
    assert not settings.allow_private_callbacks
    assert not settings.allow_http_callbacks
    assert settings.retry_schedule == DEFAULT_RETRY_SCHEDULE
    assert 20 * 3600 <= sum(settings.retry_schedule) <= 26 * 3600  # "about a day"
    assert (settings.lease_seconds_min, settings.lease_seconds_max) == (
        DEFAULT_LEASE_SECONDS_MIN,
        DEFAULT_LEASE_SECONDS_MAX,
    )
    assert settings.delivery_timeout_seconds == 10


def test_a_verification_batch_finishes_within_the_verifier_timeout(template: Template) -> None:
    # The verifier runs a batch's GETs side by side (up to MAX_CONCURRENT), each bounded
    # in total by the timeout: a batch takes one timeout, plus DynamoDB and SQS calls.
    longest = int(template["Parameters"]["DeliveryTimeoutSeconds"]["MaxValue"])
    ((_, _, source),) = [s for s in sqs_event_sources(template) if s[0] == "VerifierFunction"]
    assert source["BatchSize"] <= MAX_CONCURRENT
    assert 2 * longest <= functions(template)["VerifierFunction"]["Timeout"]


def test_routes_and_api_key_requirements(template: Template) -> None:
    routes = {}
    for name, res in resources(template, "AWS::Serverless::Function").items():
        for event in res["Properties"].get("Events", {}).values():
            if event["Type"] == "Api":
                props = event["Properties"]
                assert ref_target(props["RestApiId"]) == "HubApi"
                required = props.get("Auth", {}).get("ApiKeyRequired", False)
                routes[(props["Method"].upper(), props["Path"])] = (name, required)
    assert routes == {
        ("POST", "/events"): ("IngestFunction", True),
        # /hub: the key requirement depends on PublicHub, so it is set in HubApi's
        # DefinitionBody, not on the event (test_template_api_keys.py).
        ("POST", "/hub"): ("WebSubFunction", False),
        ("GET", "/.well-known/jwks.json"): ("WebSubFunction", False),
        ("GET", "/health"): ("WebSubFunction", False),
        # SSF: metadata and JWKS are public; the rest checks OAuth bearer tokens itself.
        **dict.fromkeys(
            (
                ("GET", "/.well-known/ssf-configuration"),
                ("GET", "/ssf/jwks.json"),
                ("POST", "/oauth2/token"),
                *((method, "/ssf/stream") for method in ("POST", "GET", "PATCH", "PUT", "DELETE")),
                ("GET", "/ssf/status"),
                ("POST", "/ssf/status"),
                ("POST", "/ssf/subjects/add"),
                ("POST", "/ssf/subjects/remove"),
                ("POST", "/ssf/verify"),
                ("POST", "/ssf/poll"),
            ),
            ("SsfFunction", False),
        ),
    }
    api = template["Resources"]["HubApi"]["Properties"]
    assert api["StageName"] == "Prod"
    assert api["Auth"]["ApiKeyRequired"] is False


def test_gateway_errors_are_one_line_json(template: Template) -> None:
    responses = template["Resources"]["HubApi"]["Properties"]["GatewayResponses"]
    assert {"INVALID_API_KEY", "MISSING_AUTHENTICATION_TOKEN", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(responses)
    for kind, response in responses.items():
        body = response["ResponseTemplates"]["application/json"]
        # messageString is API Gateway's message as a quoted JSON string.
        document = json.loads(body.replace("$context.error.messageString", '"message"'))
        assert list(document) == ["error"], kind
        assert "\n" not in document["error"], kind


def test_each_api_key_is_throttled_on_its_own_by_the_usage_plan(template: Template) -> None:
    res = template["Resources"]
    # Keys are made by the operator command (sethub.credentials), never by the template.
    assert not resources(template, "AWS::ApiGateway::ApiKey")
    assert not resources(template, "AWS::SecretsManager::Secret")
    plan = res["HubUsagePlan"]["Properties"]
    assert ref_target(plan["ApiStages"][0]["ApiId"]) == "HubApi"
    assert ref_target(plan["Throttle"]["RateLimit"]) == "KeyRateLimit"
    assert ref_target(plan["Throttle"]["BurstLimit"]) == "KeyBurstLimit"
    assert ref_target(plan["Quota"]["Limit"]) == "KeyDailyQuota"
    assert ref_target(template["Outputs"]["UsagePlanId"]["Value"]) == "HubUsagePlan"


def test_the_waf_rate_rule_per_ip_is_optional(template: Template) -> None:
    res = template["Resources"]
    assert template["Parameters"]["WafRequestsPerIpPer5Min"]["Default"] == 0
    acl, association = res["HubWebAcl"], res["HubWebAclAssociation"]
    assert acl["Condition"] == association["Condition"] == "HasWafRateRule"
    [rule] = acl["Properties"]["Rules"]
    assert rule["Action"] == {"Block": {}}
    statement = rule["Statement"]["RateBasedStatement"]
    assert statement["AggregateKeyType"] == "IP"
    assert ref_target(statement["Limit"]) == "WafRequestsPerIpPer5Min"
    assert get_att_target(association["Properties"]["WebACLArn"], "Arn") == "HubWebAcl"
    assert "${HubApi}/stages/${HubApi.Stage}" in association["Properties"]["ResourceArn"]["Fn::Sub"]


def test_functions_share_the_layer_and_name_their_handler_modules(template: Template) -> None:
    # One layer per architecture (tests/unit/test_template_architecture.py), each built by the
    # layer's Makefile (sam build runs its build-<logical id> target): the layer ships bytecode,
    # which sam's python3.12 builder leaves out.
    for name in ("SharedLayer", "SharedLayerArm64"):
        layer = template["Resources"][name]
        assert layer["Metadata"]["BuildMethod"] == "makefile"
        content = ROOT / layer["Properties"]["ContentUri"]
        assert f"build-{name}:" in (content / "Makefile").read_text()
        assert (content / "sethub" / "__init__.py").is_file()
    for name, props in functions(template).items():
        assert props["Runtime"] == "python3.12"
        assert props["Tracing"] == {"Ref": "Tracing"}
        # The layer built for the function's architecture.
        assert props["Layers"] == [
            {"Fn::If": ["Arm64", {"Ref": "SharedLayerArm64"}, {"Ref": "SharedLayer"}]}
        ], name
        folder = props["CodeUri"].strip("/").removeprefix("functions/")
        assert props["Handler"] == f"{folder}_handler.handler", name
        assert (ROOT / "functions" / folder / f"{folder}_handler.py").is_file(), name


def test_table_keys_ttl_recovery_and_encryption(template: Template) -> None:
    table = template["Resources"]["HubTable"]
    props = table["Properties"]
    assert {(a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]} == {
        ("pk", "S"),
        ("sk", "S"),
        ("state", "S"),
    }
    assert [(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]] == [
        ("pk", "HASH"),
        ("sk", "RANGE"),
    ]
    # The operator's listings read subscriptions by state, never the whole table.
    (by_state,) = props["GlobalSecondaryIndexes"]
    assert by_state["IndexName"] == "ByState"
    assert [(k["AttributeName"], k["KeyType"]) for k in by_state["KeySchema"]] == [
        ("state", "HASH"),
        ("pk", "RANGE"),
    ]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEType"] == "KMS"
    assert get_att_target(props["SSESpecification"]["KMSMasterKeyId"], "Arn") == "DataKey"
    assert table["DeletionPolicy"] == "Retain"


def test_signing_key_is_p256_by_default_and_rsa_on_request(template: Template) -> None:
    key = template["Resources"]["SigningKey"]["Properties"]
    assert key["KeyUsage"] == "SIGN_VERIFY"
    assert ref_target(key["KeySpec"]) == "SigningKeySpec"
    spec = template["Parameters"]["SigningKeySpec"]
    assert spec["Default"] == "ECC_NIST_P256"
    assert set(spec["AllowedValues"]) == {"ECC_NIST_P256", "RSA_2048"}
    data_key = template["Resources"]["DataKey"]["Properties"]
    assert data_key["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert data_key["EnableKeyRotation"] is True


def test_outputs_give_the_urls_and_the_usage_plan(template: Template) -> None:
    outputs: Mapping[str, Any] = template["Outputs"]
    assert {"ApiUrl", "HubUrl", "JwksUrl", "UsagePlanId", "TableName", "DeadLetterQueueUrl"} <= set(outputs)
    assert outputs["HubUrl"]["Value"]["Fn::Sub"].endswith("/Prod/hub")
    assert outputs["JwksUrl"]["Value"]["Fn::Sub"].endswith("/Prod/.well-known/jwks.json")


def test_signing_key_slots_are_twins_that_outlive_the_stack(template: Template) -> None:
    res = template["Resources"]
    a, b = res["SigningKey"], res["SigningKeyB"]
    # A slot flip must give a key of the same kind, policy and spec.
    assert {**a["Properties"], "Description": None} == {**b["Properties"], "Description": None}
    assert (a["Condition"], b["Condition"]) == ("SigningKeyInSlotA", "SigningKeyInSlotB")
    conditions = template["Conditions"]
    kms = {"Condition": "KmsSigning"}
    assert conditions["SigningKeyInSlotA"] == {
        "Fn::And": [kms, {"Fn::Equals": [{"Ref": "SigningKeySlot"}, "a"]}]
    }
    assert conditions["SigningKeyInSlotB"] == {
        "Fn::And": [kms, {"Fn::Equals": [{"Ref": "SigningKeySlot"}, "b"]}]
    }
    assert template["Parameters"]["SigningKeySlot"]["AllowedValues"] == ["a", "b"]
    # A key leaving the stack still verifies SETs that are being retried: never deleted by CloudFormation.
    for key in (a, b):
        assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("Retain", "Retain")


@pytest.mark.parametrize(("slot", "active"), [("a", "SigningKey"), ("b", "SigningKeyB")])
def test_alias_and_outputs_name_the_active_signing_key(template: Template, slot: str, active: str) -> None:
    deployed = configured(template, {"SigningMode": "kms", "SigningKeySlot": slot})
    assert ref_target(deployed["Resources"]["SigningKeyAlias"]["Properties"]["TargetKeyId"]) == active
    outputs = deployed["Outputs"]
    assert ref_target(outputs["SigningKeyId"]["Value"]) == active
    assert get_att_target(outputs["SigningKeyArn"]["Value"], "Arn") == active
    assert wiring_target(outputs["SigningKeyIds"]["Value"]) == active


@pytest.mark.parametrize(
    ("value", "admitted"),
    [
        ("", True),
        ("arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", True),
        (RETIRED_KEYS, True),
        ("arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", True),
        ("arn:aws:kms:eu-west-1:111122223333:alias/sethub/signing", False),
        ("arn:aws:kms:eu-west-1:111122223333:key/*", False),
        ("1234abcd-12ab-34cd-56ef-1234567890ab", False),
        (RETIRED_KEYS.replace(",", ", "), False),
        (RETIRED_KEYS + ",", False),
        ("*", False),
    ],
)
def test_previous_signing_keys_admit_only_key_arns(template: Template, value: str, admitted: bool) -> None:
    pattern = template["Parameters"]["PreviousSigningKeyArns"]["AllowedPattern"]
    assert pattern == KEY_ARNS_PATTERN
    # CloudFormation matches AllowedPattern against the whole value.
    assert (re.fullmatch(pattern, value) is not None) is admitted


@pytest.fixture(scope="module")
def transformed(template: Template) -> Template:
    return sam_transformed(template)


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_sam_generated_roles_carry_no_managed_policy_nor_resource_star_of_ours(
    transformed: Template, deployment: str
) -> None:
    deployed = configured(transformed, DEPLOYMENTS[deployment])
    roles = resources(deployed, "AWS::IAM::Role")
    parameters = DEPLOYMENTS[deployment]
    expected = {function for function in EXPECTED_GRANTS if has_function(function, parameters)}
    assert set(roles) == {f"{function}Role" for function in expected}
    assert role_problems(deployed) == []
    for name, role in roles.items():
        assert len(role["Properties"]["ManagedPolicyArns"]) == len(SAM_BASE_MANAGED_POLICIES), name


def test_a_sam_sqs_event_shows_up_as_a_managed_policy_in_the_generated_role(broken: Template) -> None:
    # GIVEN the verify queue consumed through a SAM SQS event again
    mapping = broken["Resources"].pop("VerifierFunctionVerifyQueue")["Properties"]
    broken["Resources"]["VerifierFunction"]["Properties"]["Events"] = {
        "VerifyQueue": {
            "Type": "SQS",
            "Properties": {"Queue": mapping["EventSourceArn"], "BatchSize": mapping["BatchSize"]},
        }
    }
    # WHEN SAM transforms it
    deployed = configured(sam_transformed(broken))
    # THEN the role it generates can read and delete any queue of the account
    assert role_problems(deployed) == [
        "VerifierFunctionRole: managed policy "
        "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"
    ]


def test_a_wildcard_resource_in_a_generated_role_is_caught_unless_it_is_tracing(broken: Template) -> None:
    policies = broken["Resources"]["DispatchFunction"]["Properties"]["Policies"]
    policies.append({"Statement": [{"Effect": "Allow", "Action": "xray:PutTraceSegments", "Resource": "*"}]})
    queues = {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:*"}
    policies.append(
        {"Statement": [{"Effect": "Allow", "Action": ["sqs:ReceiveMessage"], "Resource": queues}]}
    )

    assert role_problems(configured(sam_transformed(broken))) == [
        "DispatchFunctionRole: ['sqs:ReceiveMessage'] on "
        "['arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:*']"
    ]


def test_each_consumer_may_poll_exactly_the_queues_that_feed_it(transformed: Template) -> None:
    deployed = configured(transformed)
    # SAM generated no mapping of its own: the template's three are all there is.
    mappings = resources(deployed, "AWS::Lambda::EventSourceMapping")
    assert set(mappings) == {
        "DispatchFunctionEventsQueue",
        "DispatchFunctionRetryQueue",
        "VerifierFunctionVerifyQueue",
    }
    fed: dict[str, set[str]] = {function: set() for function in EXPECTED_GRANTS if has_function(function, {})}
    for function, queue, _ in sqs_event_sources(deployed):
        fed[function].add(queue)
    assert {(queue, function) for function, queues in fed.items() for queue in queues} == EXPECTED_CONSUMERS
    assert polled_queues(deployed) == fed


KEY_LIMIT_VARIABLES = {
    "SETHUB_KEY_RATE_LIMIT": "KeyRateLimit",
    "SETHUB_KEY_BURST_LIMIT": "KeyBurstLimit",
    "SETHUB_KEY_DAILY_QUOTA": "KeyDailyQuota",
}


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_ingest_limits_each_key_itself_only_behind_the_http_api(template: Template, deployment: str) -> None:
    parameters = DEPLOYMENTS[deployment]
    variables = functions(configured(template, parameters))["IngestFunction"]["Environment"]["Variables"]
    limits = {var: ref_target(value) for var, value in variables.items() if var in KEY_LIMIT_VARIABLES}
    # The REST API's usage plan limits each key at the gateway: ingest counts nothing there.
    assert limits == (KEY_LIMIT_VARIABLES if parameters.get("Ingress") == "http" else {})
