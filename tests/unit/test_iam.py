"""devstack.iam: policy evaluation, the template's roles and AWS's per-call rules (no network)."""

from __future__ import annotations

import base64
import copy
import json
import os
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest
from moto.kms.utils import Ciphertext, _serialize_ciphertext_blob
from templates import parameter_resolver

from devstack.iam import (
    MANAGED_POLICIES,
    AwsRequest,
    Check,
    Decision,
    IamError,
    Lookups,
    NoRuleError,
    Policy,
    RequestError,
    authorize,
    checks_for,
    function_policies,
    parse_request,
    sam_transform,
    statements_of,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/hub"
OTHER_TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/other"
KEY_ID = "0b7c5f56-1a3e-4a2b-9c1d-2f6e8d4a7b10"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
QUEUE_URL = f"http://127.0.0.1:5000/{ACCOUNT}/events"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:events"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:api-key-AbC123"
PRINCIPAL = f"arn:aws:sts::{ACCOUNT}:assumed-role/stack-FnRole/stack-Fn"


def policy(*statements: dict[str, Any]) -> Policy:
    return Policy("FnRole", tuple(statements_of({"Statement": list(statements)})))


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def call(service: str, operation: str, **parameters: Any) -> AwsRequest:
    return AwsRequest(service=service, operation=operation, parameters=parameters, region=REGION)


# ---------------------------------------------------------------- policy evaluation


@pytest.mark.parametrize(
    ("pattern", "action", "granted"),
    [
        ("dynamodb:GetItem", "dynamodb:GetItem", True),
        ("DynamoDB:getitem", "dynamodb:GetItem", True),  # actions are case-insensitive
        ("dynamodb:Get*", "dynamodb:GetItem", True),
        ("dynamodb:Get*", "dynamodb:PutItem", False),
        ("sqs:SendMessage*", "sqs:SendMessage", True),
        ("dynamodb:?etItem", "dynamodb:GetItem", True),
        ("dynamodb:?etItem", "dynamodb:BatchGetItem", False),
        ("*", "kms:Decrypt", True),
        ("dynamodb:GetItem", "dynamodb:GetItems", False),  # the whole action must match
    ],
)
def test_actions_match_case_insensitively_with_globs(pattern: str, action: str, granted: bool) -> None:
    decision = policy(allow(pattern)).decide(action, TABLE_ARN)
    assert decision is (Decision.ALLOW if granted else Decision.IMPLICIT_DENY)


@pytest.mark.parametrize(
    ("pattern", "resource", "granted"),
    [
        (TABLE_ARN, TABLE_ARN, True),
        (TABLE_ARN.upper(), TABLE_ARN, False),  # resources are case-sensitive
        (f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/*", OTHER_TABLE_ARN, True),
        ("arn:aws:dynamodb:*:*:table/hub", TABLE_ARN, True),
        (f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/hu?", TABLE_ARN, True),
        (TABLE_ARN, f"{TABLE_ARN}/index/by-topic", False),  # an index is not its table
        (f"{TABLE_ARN}/index/*", f"{TABLE_ARN}/index/by-topic", True),
        (f"{TABLE_ARN}*", f"{TABLE_ARN}/index/by-topic", True),  # * crosses "/"
    ],
)
def test_resources_match_case_sensitively_with_globs(pattern: str, resource: str, granted: bool) -> None:
    decision = policy(allow("dynamodb:Query", pattern)).decide("dynamodb:Query", resource)
    assert decision is (Decision.ALLOW if granted else Decision.IMPLICIT_DENY)


def test_an_explicit_deny_wins_over_any_allow() -> None:
    role = policy(
        allow("dynamodb:*", TABLE_ARN),
        {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "*"},
        allow("dynamodb:DeleteItem", TABLE_ARN),
    )
    assert role.decide("dynamodb:GetItem", TABLE_ARN) is Decision.ALLOW
    assert role.decide("dynamodb:DeleteItem", TABLE_ARN) is Decision.EXPLICIT_DENY


def test_not_action_and_not_resource_cover_everything_else() -> None:
    role = policy(
        {"Effect": "Allow", "NotAction": "kms:*", "Resource": TABLE_ARN},
        {"Effect": "Allow", "Action": "kms:Sign", "NotResource": KEY_ARN},
    )
    assert role.decide("dynamodb:PutItem", TABLE_ARN) is Decision.ALLOW
    assert role.decide("kms:Decrypt", TABLE_ARN) is Decision.IMPLICIT_DENY
    assert role.decide("kms:Sign", KEY_ARN) is Decision.IMPLICIT_DENY
    assert role.decide("kms:Sign", KEY_ARN.replace(KEY_ID, "another")) is Decision.ALLOW


def test_a_statement_of_many_patterns_matches_any_of_them_and_only_them() -> None:
    # A statement's patterns are compiled into one: each still matches in full, alone.
    role = policy(allow(["dynamodb:Get*", "sqs:SendMessage"], [TABLE_ARN, "arn:aws:sqs:*:*:events"]))
    assert role.decide("dynamodb:GetItem", TABLE_ARN) is Decision.ALLOW
    assert role.decide("sqs:SendMessage", QUEUE_ARN) is Decision.ALLOW
    assert role.decide("sqs:SendMessageBatch", QUEUE_ARN) is Decision.IMPLICIT_DENY
    assert role.decide("dynamodb:GetItem", TABLE_ARN + "/index/x") is Decision.IMPLICIT_DENY
    assert role.decide("dynamodb:GetItem", QUEUE_ARN + "s") is Decision.IMPLICIT_DENY
    assert policy(allow([], [])).decide("", "") is Decision.IMPLICIT_DENY


def test_a_decision_remembered_is_only_reused_for_the_same_action_resource_and_context() -> None:
    context_prefix = "kms:encryptioncontext:"
    condition = {"StringEquals": {"kms:EncryptionContext:purpose": "signing-key"}}
    role = policy(allow("kms:Decrypt", KEY_ARN, Condition=condition))
    signing = {f"{context_prefix}purpose": "signing-key"}
    other = {f"{context_prefix}purpose": "secret"}
    for _ in range(2):  # the second round answers from what the first decided
        assert role.decide("kms:Decrypt", KEY_ARN, signing, (context_prefix,)) is Decision.ALLOW
        assert role.decide("kms:Decrypt", KEY_ARN, other, (context_prefix,)) is Decision.IMPLICIT_DENY
        assert role.decide("kms:Decrypt", KEY_ARN, {}, (context_prefix,)) is Decision.IMPLICIT_DENY
        assert role.decide("kms:Decrypt", KEY_ARN, signing) is Decision.IMPLICIT_DENY  # key not known
        assert role.decide("kms:Decrypt", OTHER_TABLE_ARN, signing, (context_prefix,)) is (
            Decision.IMPLICIT_DENY
        )


def test_remembered_decisions_stay_bounded() -> None:
    role = policy(allow("dynamodb:GetItem", TABLE_ARN))
    for n in range(10_000):
        role.decide("dynamodb:GetItem", f"{TABLE_ARN}-{n}")
    assert len(role._decisions) <= 4096
    assert role.decide("dynamodb:GetItem", TABLE_ARN) is Decision.ALLOW


def test_a_conditional_allow_never_grants_and_a_conditional_deny_always_applies() -> None:
    condition = {"StringEquals": {"aws:SourceVpc": "vpc-1"}}
    assert policy(allow("kms:Encrypt", Condition=condition)).decide("kms:Encrypt", KEY_ARN) is (
        Decision.IMPLICIT_DENY
    )
    role = policy(
        allow("kms:Encrypt"), {"Effect": "Deny", "Action": "kms:*", "Resource": "*", "Condition": condition}
    )
    assert role.decide("kms:Encrypt", KEY_ARN) is Decision.EXPLICIT_DENY


def test_an_encryption_context_condition_is_evaluated_on_the_calls_own_context() -> None:
    # GIVEN Decrypt allowed for one purpose, and hub.secret ciphertexts (any subscription)
    purpose = {"StringEquals": {"kms:EncryptionContext:sethub:purpose": "set-signing-key"}}
    present = {"Null": {"kms:EncryptionContext:sethub:subscription": "false"}}
    role = policy(
        allow("kms:Decrypt", KEY_ARN, Condition=purpose), allow("kms:Decrypt", KEY_ARN, Condition=present)
    )

    def decrypt(context: dict[str, str]) -> bool:
        request = call("kms", "Decrypt", KeyId=KEY_ARN, CiphertextBlob="eA==", EncryptionContext=context)
        return authorize(role, request, PRINCIPAL).allowed

    # THEN each call is allowed exactly when its own encryption context satisfies a statement
    assert decrypt({"sethub:purpose": "set-signing-key", "sethub:kid": "k1"})
    assert decrypt({"sethub:subscription": "s1"})
    assert not decrypt({"sethub:purpose": "another-purpose"})
    assert not decrypt({})
    # ...and a Deny conditioned on the context applies only when it holds.
    guarded = policy(
        allow("kms:Encrypt", KEY_ARN),
        {"Effect": "Deny", "Action": "kms:Encrypt", "Resource": "*", "Condition": purpose},
    )
    encrypt = call(
        "kms", "Encrypt", KeyId=KEY_ARN, Plaintext="eA==", EncryptionContext={"sethub:purpose": "x"}
    )
    assert authorize(guarded, encrypt, PRINCIPAL).allowed
    signing = call(
        "kms",
        "Encrypt",
        KeyId=KEY_ARN,
        Plaintext="eA==",
        EncryptionContext={"sethub:purpose": "set-signing-key"},
    )
    assert not authorize(guarded, signing, PRINCIPAL).allowed


def test_a_context_condition_on_a_call_without_a_context_never_grants() -> None:
    # kms:Sign has no encryption context: devstack cannot evaluate the key, so it fails closed.
    purpose = {"StringEquals": {"kms:EncryptionContext:sethub:purpose": "set-signing-key"}}
    role = policy(allow("kms:Sign", KEY_ARN, Condition=purpose))
    assert not authorize(role, call("kms", "Sign", KeyId=KEY_ARN, Message="eA=="), PRINCIPAL).allowed


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Permit", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:*", "NotAction": "s3:Get*", "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:*"},
        {"Effect": "Allow", "Action": {"Fn::GetAtt": ["T", "Arn"]}, "Resource": "*"},
    ],
)
def test_a_statement_that_is_not_valid_iam_is_an_error(statement: dict[str, Any]) -> None:
    with pytest.raises(IamError):
        statements_of({"Statement": [statement]})


# ---------------------------------------------------------------- the template's roles


class FakeStack:
    """A resolver of the template's references to made-up physical resources."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str] | None = None) -> None:
        self.resolver = parameter_resolver(
            template, parameters, other_ref=self.ref, get_att=self.get_att, region=REGION
        )

    def ref(self, name: str) -> Any:
        """A pseudo parameter or a resource (parameters are the resolver's)."""
        pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
        if name in pseudo:
            return pseudo[name]
        if name == "ApiKeySecret":
            return SECRET_ARN
        return f"{name}-id"

    def get_att(self, logical_id: str, attribute: str) -> str:
        return {
            "Arn": {
                "HubTable": TABLE_ARN,
                "SigningKey": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/SigningKey-id",
                "SigningKeyB": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/SigningKeyB-id",
                "DataKey": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/DataKey-id",
            }.get(logical_id, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{logical_id}"),
            "QueueName": logical_id,
        }[attribute]


@pytest.fixture(scope="module")
def transformed(template: dict[str, Any]) -> dict[str, Any]:
    return sam_transform(template)


def test_every_function_of_the_template_gets_its_role_with_sams_managed_policies(
    transformed: dict[str, Any],
) -> None:
    policies = function_policies(transformed, FakeStack(transformed).resolver.resolve, stack_name="hub")
    assert set(policies) == {
        "IngestFunction",
        "WebSubFunction",
        "VerifierFunction",
        "DispatchFunction",
        "KeyRingFunction",
        "SsfFunction",
    }
    verifier = policies["VerifierFunction"]
    assert verifier.role_name == "hub-VerifierFunctionRole"
    # Inline statements, resolved...
    assert verifier.decide("dynamodb:ConditionCheckItem", TABLE_ARN) is Decision.ALLOW
    assert verifier.decide("sqs:ReceiveMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:VerifyQueue") is (
        Decision.ALLOW
    )
    assert verifier.decide("sqs:ReceiveMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:EventsQueue") is (
        Decision.IMPLICIT_DENY
    )
    assert verifier.decide("kms:Decrypt", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/DataKey-id") is (
        Decision.IMPLICIT_DENY
    )
    # ...SAM's base managed policies (logs, X-Ray)...
    assert verifier.decide("logs:PutLogEvents", "arn:aws:logs:us-east-1:1:log-group:x") is Decision.ALLOW
    assert verifier.decide("xray:PutTraceSegments", "*") is Decision.ALLOW
    # ...and SAM's policy templates with their variables.
    dispatch, websub = policies["DispatchFunction"], policies["WebSubFunction"]
    data_key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/DataKey-id"
    # Decrypt is conditioned on the encryption context: a hub.secret's or the signing key's.
    known = ("kms:encryptioncontext:",)
    secret = {"kms:encryptioncontext:sethub:subscription": "s1"}
    assert dispatch.decide("kms:Decrypt", data_key, secret, known) is Decision.ALLOW
    signing_key = {"kms:encryptioncontext:sethub:purpose": "set-signing-key"}
    assert dispatch.decide("kms:Decrypt", data_key, signing_key, known) is Decision.ALLOW
    other = {"kms:encryptioncontext:sethub:purpose": "something-else"}
    assert dispatch.decide("kms:Decrypt", data_key, other, known) is Decision.IMPLICIT_DENY
    assert dispatch.decide("kms:Decrypt", data_key, {}, known) is Decision.IMPLICIT_DENY
    keyring = policies["KeyRingFunction"]
    assert keyring.decide("kms:Encrypt", data_key, signing_key, known) is Decision.ALLOW
    assert keyring.decide("kms:Encrypt", data_key, secret, known) is Decision.IMPLICIT_DENY
    assert keyring.decide("kms:Decrypt", data_key, signing_key, known) is Decision.IMPLICIT_DENY
    assert dispatch.decide("sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:RetryDeadLetterQueue") is (
        Decision.ALLOW
    )
    assert websub.decide("kms:Encrypt", data_key) is Decision.ALLOW
    assert websub.decide("kms:Decrypt", data_key) is Decision.IMPLICIT_DENY
    # API keys are hashed records in the table: no function reads a secret.
    assert policies["IngestFunction"].decide("secretsmanager:GetSecretValue", SECRET_ARN) is (
        Decision.IMPLICIT_DENY
    )


def test_conditional_statements_follow_the_deployments_parameters(transformed: dict[str, Any]) -> None:
    retired = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/retired"
    slot_b = FakeStack(
        transformed, {"SigningMode": "kms", "SigningKeySlot": "b", "PreviousSigningKeyArns": retired}
    )
    websub = function_policies(transformed, slot_b.resolver.resolve)["WebSubFunction"]
    key_b = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/SigningKeyB-id"
    assert websub.decide("kms:GetPublicKey", key_b) is Decision.ALLOW
    assert websub.decide("kms:GetPublicKey", retired) is Decision.ALLOW
    assert websub.decide("kms:GetPublicKey", key_b.replace("SigningKeyB", "SigningKey")) is (
        Decision.IMPLICIT_DENY
    )
    default = function_policies(transformed, FakeStack(transformed).resolver.resolve)["WebSubFunction"]
    assert default.decide("kms:GetPublicKey", retired) is Decision.IMPLICIT_DENY


def test_an_unknown_managed_policy_is_an_error_not_an_allow(transformed: dict[str, Any]) -> None:
    edited = copy.deepcopy(transformed)
    role = edited["Resources"]["VerifierFunctionRole"]["Properties"]
    role["ManagedPolicyArns"].append("arn:aws:iam::aws:policy/AdministratorAccess")
    with pytest.raises(IamError, match="AdministratorAccess"):
        function_policies(edited, FakeStack(edited).resolver.resolve)


def test_a_role_outside_the_template_is_an_error(transformed: dict[str, Any]) -> None:
    edited = copy.deepcopy(transformed)
    edited["Resources"]["VerifierFunction"]["Properties"]["Role"] = f"arn:aws:iam::{ACCOUNT}:role/shared"
    with pytest.raises(IamError, match="VerifierFunction"):
        function_policies(edited, FakeStack(edited).resolver.resolve)


def test_a_policy_resource_attached_to_a_role_counts(transformed: dict[str, Any]) -> None:
    edited = copy.deepcopy(transformed)
    edited["Resources"]["ExtraPolicy"] = {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": "extra",
            "Roles": [{"Ref": "VerifierFunctionRole"}],
            "PolicyDocument": {"Statement": [allow("kms:Decrypt", {"Fn::Sub": "arn:aws:kms:*:*:key/*"})]},
        },
    }
    verifier = function_policies(edited, FakeStack(edited).resolver.resolve)["VerifierFunction"]
    assert verifier.decide("kms:Decrypt", KEY_ARN) is Decision.ALLOW


def test_managed_policies_grant_only_their_documented_actions() -> None:
    basic = Policy("r", MANAGED_POLICIES["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"])
    assert basic.decide("logs:CreateLogStream", "*") is Decision.ALLOW
    assert basic.decide("sqs:ReceiveMessage", QUEUE_ARN) is Decision.IMPLICIT_DENY


# ---------------------------------------------------------------- per-call rules


@pytest.mark.parametrize("operation", ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "DescribeTable"])
def test_item_calls_are_checked_on_the_table(operation: str) -> None:
    assert checks_for(call("dynamodb", operation, TableName="hub")) == [
        Check(f"dynamodb:{operation}", TABLE_ARN)
    ]


@pytest.mark.parametrize("operation", ["Query", "Scan"])
def test_reads_of_an_index_are_checked_on_the_index(operation: str) -> None:
    assert checks_for(call("dynamodb", operation, TableName="hub")) == [
        Check(f"dynamodb:{operation}", TABLE_ARN)
    ]
    assert checks_for(call("dynamodb", operation, TableName="hub", IndexName="by-topic")) == [
        Check(f"dynamodb:{operation}", f"{TABLE_ARN}/index/by-topic")
    ]


def test_a_table_named_by_its_arn_is_that_arn() -> None:
    assert checks_for(call("dynamodb", "GetItem", TableName=OTHER_TABLE_ARN)) == [
        Check("dynamodb:GetItem", OTHER_TABLE_ARN)
    ]


@pytest.mark.parametrize("operation", ["BatchWriteItem", "BatchGetItem"])
def test_batch_calls_are_checked_once_per_table_with_the_batch_action(operation: str) -> None:
    request = call("dynamodb", operation, RequestItems={"hub": [{}, {}], "other": [{}]})
    assert checks_for(request) == [
        Check(f"dynamodb:{operation}", TABLE_ARN),
        Check(f"dynamodb:{operation}", OTHER_TABLE_ARN),
    ]


def test_a_write_transaction_is_checked_per_item_with_each_items_action() -> None:
    request = call(
        "dynamodb",
        "TransactWriteItems",
        TransactItems=[
            {"Put": {"TableName": "hub", "Item": {}}},
            {"Delete": {"TableName": "hub", "Key": {}}},
            {"Update": {"TableName": "other", "Key": {}}},
            {"ConditionCheck": {"TableName": "hub", "Key": {}, "ConditionExpression": "x"}},
        ],
    )
    assert checks_for(request) == [
        Check("dynamodb:PutItem", TABLE_ARN),
        Check("dynamodb:DeleteItem", TABLE_ARN),
        Check("dynamodb:UpdateItem", OTHER_TABLE_ARN),
        Check("dynamodb:ConditionCheckItem", TABLE_ARN),
    ]


def test_a_transaction_without_condition_check_item_is_refused_for_that_item_alone() -> None:
    # The verifier's role before issue 10: Put, Delete, GetItem, but no ConditionCheckItem.
    role = policy(allow(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"], TABLE_ARN))
    put_and_check = call(
        "dynamodb",
        "TransactWriteItems",
        TransactItems=[{"Put": {"TableName": "hub"}}, {"ConditionCheck": {"TableName": "hub"}}],
    )
    verdict = authorize(role, put_and_check, PRINCIPAL)
    assert not verdict.allowed
    assert verdict.refused == Check("dynamodb:ConditionCheckItem", TABLE_ARN)
    assert verdict.message == (
        f"User: {PRINCIPAL} is not authorized to perform: dynamodb:ConditionCheckItem on resource: "
        f"{TABLE_ARN} because no identity-based policy allows the dynamodb:ConditionCheckItem action"
    )
    # No separate dynamodb:TransactWriteItems action is checked (AWS has none).
    role = policy(allow(["dynamodb:PutItem", "dynamodb:ConditionCheckItem"], TABLE_ARN))
    assert authorize(role, put_and_check, PRINCIPAL).allowed


def test_a_read_transaction_is_checked_as_get_item_per_item() -> None:
    request = call("dynamodb", "TransactGetItems", TransactItems=[{"Get": {"TableName": "other", "Key": {}}}])
    assert checks_for(request) == [Check("dynamodb:GetItem", OTHER_TABLE_ARN)]


@pytest.mark.parametrize(
    ("operation", "action"),
    [
        ("SendMessage", "sqs:SendMessage"),
        ("SendMessageBatch", "sqs:SendMessage"),
        ("ReceiveMessage", "sqs:ReceiveMessage"),
        ("DeleteMessage", "sqs:DeleteMessage"),
        ("DeleteMessageBatch", "sqs:DeleteMessage"),
        ("ChangeMessageVisibility", "sqs:ChangeMessageVisibility"),
        ("ChangeMessageVisibilityBatch", "sqs:ChangeMessageVisibility"),
        ("GetQueueAttributes", "sqs:GetQueueAttributes"),
    ],
)
def test_queue_calls_are_checked_on_the_queue_arn_from_its_url(operation: str, action: str) -> None:
    assert checks_for(call("sqs", operation, QueueUrl=QUEUE_URL)) == [Check(action, QUEUE_ARN)]


def test_get_queue_url_is_checked_on_the_named_queue() -> None:
    assert checks_for(call("sqs", "GetQueueUrl", QueueName="events")) == [Check("sqs:GetQueueUrl", QUEUE_ARN)]
    assert checks_for(call("sqs", "GetQueueUrl", QueueName="events", QueueOwnerAWSAccountId="999")) == [
        Check("sqs:GetQueueUrl", f"arn:aws:sqs:{REGION}:999:events")
    ]


@pytest.mark.parametrize(
    "key", [KEY_ID, KEY_ARN, "alias/hub/data", f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/hub/data"]
)
@pytest.mark.parametrize(
    "operation", ["Sign", "Verify", "GetPublicKey", "Encrypt", "GenerateDataKey", "DescribeKey"]
)
def test_key_calls_are_checked_on_the_key_arn_however_the_key_is_named(key: str, operation: str) -> None:
    lookups = Lookups(key_aliases={"alias/hub/data": KEY_ID})
    assert checks_for(call("kms", operation, KeyId=key), lookups) == [Check(f"kms:{operation}", KEY_ARN)]


def test_an_unknown_alias_is_refused() -> None:
    with pytest.raises(RequestError, match="alias/nope"):
        checks_for(call("kms", "Encrypt", KeyId="alias/nope"))


def test_decrypt_without_key_id_is_checked_on_the_key_inside_the_ciphertext() -> None:
    blob = _serialize_ciphertext_blob(
        Ciphertext(key_id=KEY_ID, iv=os.urandom(12), ciphertext=b"sealed", tag=os.urandom(16))
    )
    request = call("kms", "Decrypt", CiphertextBlob=base64.b64encode(blob).decode())
    assert checks_for(request) == [Check("kms:Decrypt", KEY_ARN)]
    with pytest.raises(RequestError):
        checks_for(call("kms", "Decrypt", CiphertextBlob="not base64!"))


def test_a_secret_named_by_name_is_checked_on_its_full_arn() -> None:
    lookups = Lookups(secret_arns=[SECRET_ARN])
    for secret in ("api-key", SECRET_ARN):
        assert checks_for(call("secretsmanager", "GetSecretValue", SecretId=secret), lookups) == [
            Check("secretsmanager:GetSecretValue", SECRET_ARN)
        ]
    # "api" is not the name "api-key" (the name part of the ARN must match whole).
    assert checks_for(call("secretsmanager", "DescribeSecret", SecretId="api"), lookups) == [
        Check("secretsmanager:DescribeSecret", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:api")
    ]


def test_get_caller_identity_is_always_allowed() -> None:
    assert authorize(policy(), call("sts", "GetCallerIdentity"), PRINCIPAL).allowed


@pytest.mark.parametrize(
    "request_",
    [
        call("sqs", "PurgeQueue", QueueUrl=QUEUE_URL),
        call("dynamodb", "DeleteTable", TableName="hub"),
        call("kms", "ScheduleKeyDeletion", KeyId=KEY_ID),
        call("s3", "GetObject", Bucket="b", Key="k"),
    ],
)
def test_an_operation_without_a_rule_is_refused_even_under_allow_star(request_: AwsRequest) -> None:
    with pytest.raises(NoRuleError, match="devstack has no IAM rule"):
        checks_for(request_)
    verdict = authorize(policy(allow("*")), request_, PRINCIPAL)
    assert not verdict.allowed
    assert f"{request_.service}:{request_.operation}" in verdict.message


def test_a_call_missing_what_names_its_resource_is_refused() -> None:
    verdict = authorize(policy(allow("*")), call("dynamodb", "GetItem"), PRINCIPAL)
    assert not verdict.allowed
    assert "TableName" in verdict.message


def test_an_explicit_deny_is_worded_as_aws_words_it() -> None:
    role = policy(allow("*"), {"Effect": "Deny", "Action": "sqs:*", "Resource": "*"})
    verdict = authorize(role, call("sqs", "SendMessageBatch", QueueUrl=QUEUE_URL), PRINCIPAL)
    assert verdict.message.endswith(
        f"sqs:SendMessage on resource: {QUEUE_ARN} with an explicit deny in an identity-based policy"
    )


# ---------------------------------------------------------------- reading SDK requests


class Captured(Exception):
    """Raised from botocore's before-send hook: the request it would have sent."""

    def __init__(self, request: AWSPreparedRequest) -> None:
        super().__init__("captured")
        self.request = request


def capture(service: str, operation: str, **parameters: Any) -> AwsRequest:
    """What botocore would send for ``operation``, read back by ``parse_request``."""
    client: Any = boto3.client(  # type: ignore[call-overload]
        service,
        region_name=REGION,
        endpoint_url="http://127.0.0.1:1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    def stop(request: AWSPreparedRequest, **_: Any) -> None:
        raise Captured(request)

    client.meta.events.register("before-send", stop)
    with pytest.raises(Captured) as caught:
        getattr(client, operation)(**parameters)
    sent = caught.value.request
    raw = sent.body
    body = bytes(raw) if isinstance(raw, bytes | bytearray) else raw.encode() if isinstance(raw, str) else b""
    headers = {name: v.decode() if isinstance(v, bytes) else v for name, v in sent.headers.items()}
    return parse_request(sent.method, sent.url, headers, body)


@pytest.fixture
def _no_endpoint_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.mark.usefixtures("_no_endpoint_env")
def test_botocores_requests_are_read_back_as_the_calls_they_make() -> None:
    get = capture("dynamodb", "get_item", TableName="hub", Key={"pk": {"S": "a"}})
    assert (get.service, get.operation, get.region, get.parameters["TableName"]) == (
        "dynamodb",
        "GetItem",
        REGION,
        "hub",
    )
    batch = capture(
        "sqs", "send_message_batch", QueueUrl=QUEUE_URL, Entries=[{"Id": "1", "MessageBody": "x"}]
    )
    assert checks_for(batch) == [Check("sqs:SendMessage", QUEUE_ARN)]
    sign = capture("kms", "sign", KeyId=KEY_ID, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    assert checks_for(sign) == [Check("kms:Sign", KEY_ARN)]
    secret = capture("secretsmanager", "get_secret_value", SecretId=SECRET_ARN)
    assert checks_for(secret) == [Check("secretsmanager:GetSecretValue", SECRET_ARN)]
    identity = capture("sts", "get_caller_identity")  # the query protocol
    assert (identity.service, identity.operation) == ("sts", "GetCallerIdentity")


def test_the_query_protocol_is_read_from_the_form() -> None:
    headers = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20250101/eu-west-1/sqs/aws4_request, "
        "SignedHeaders=host, Signature=abc",
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    }
    body = f"Action=DeleteMessageBatch&QueueUrl={QUEUE_URL}&DeleteMessageBatchRequestEntry.1.Id=1".encode()
    request = parse_request("POST", "/", headers, body)
    assert checks_for(request) == [
        Check("sqs:DeleteMessage", f"arn:aws:sqs:eu-west-1:{ACCOUNT}:events"),
    ]


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, b"{}"),  # unsigned
        ({"Authorization": "AWS4-HMAC-SHA256 Credential=a/20250101/us-east-1/kms/aws4_request"}, b""),
        (
            {
                "Authorization": "AWS4-HMAC-SHA256 Credential=a/20250101/us-east-1/kms/aws4_request",
                "X-Amz-Target": "TrentService.Decrypt",
            },
            b"[1]",
        ),
    ],
)
def test_a_request_devstack_cannot_read_is_an_error(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(RequestError):
        parse_request("POST", "/", headers, body)


def test_parsed_json_parameters_keep_their_structure() -> None:
    headers = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=a/20250101/us-east-1/dynamodb/aws4_request",
        "X-Amz-Target": "DynamoDB_20120810.BatchWriteItem",
    }
    body = json.dumps({"RequestItems": {"hub": [{"DeleteRequest": {"Key": {}}}]}}).encode()
    assert checks_for(parse_request("POST", "/", headers, body)) == [
        Check("dynamodb:BatchWriteItem", TABLE_ARN)
    ]
