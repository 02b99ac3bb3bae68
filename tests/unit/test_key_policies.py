"""The KMS key policies: an account administrator keeps administering the keys, but only
the dispatch function's role may Sign with the signing key or Decrypt with the data key
(issue 11, finding 7). An IAM policy granting ``kms:*`` on ``*`` no longer signs SETs or
reads subscribers' secrets.

The key policies are read as KMS evaluates them: a statement allows an action when its
``Action`` matches it or its ``NotAction`` does not; a statement with a condition allows
only the principals the condition admits.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import pytest

from devstack.iam import sam_transform

ACCOUNT = "123456789012"
STACK = "sethub-prod"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
SENSITIVE = {
    "SigningKey": ("kms:Sign",),
    "SigningKeyB": ("kms:Sign",),
    "DataKey": ("kms:Decrypt", "kms:ReEncryptFrom"),
}
ADMINISTRATION = ("kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DescribeKey", "kms:TagResource")


def resolve(value: Any) -> str:
    """A ``Fn::Sub`` of pseudo parameters, as CloudFormation would fill it in for STACK."""
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    names = {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT, "AWS::StackName": STACK}
    return re.sub(r"\$\{([^}]+)\}", lambda match: names[match.group(1)], text)


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def allows(statement: dict[str, Any], action: str) -> bool:
    if statement["Effect"] != "Allow":
        return False
    if "Action" in statement:
        return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(statement["Action"]))
    return not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(statement["NotAction"]))


def admits(statement: dict[str, Any], principal_arn: str, *, via: str | None = None) -> bool:
    """Whether the statement's principal and condition admit an IAM principal of this account."""
    principal = statement["Principal"]["AWS"]
    if principal != "*" and resolve(principal) != ROOT:
        return False
    for operator, conditions in statement.get("Condition", {}).items():
        for key, expected in conditions.items():
            if key == "aws:PrincipalArn" and operator == "ArnLike":
                if not fnmatch.fnmatchcase(principal_arn, resolve(expected)):
                    return False
            elif key == "kms:ViaService":
                if via is None:
                    return False
            elif key == "kms:CallerAccount":
                if expected != {"Ref": "AWS::AccountId"}:
                    return False
            else:
                return False  # a condition this test cannot evaluate must not grant
    return True


def may(key: dict[str, Any], action: str, principal_arn: str, *, via: str | None = None) -> bool:
    return any(
        allows(statement, action) and admits(statement, principal_arn, via=via)
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
    )


@pytest.fixture(scope="module")
def deployed(template: dict[str, Any]) -> dict[str, Any]:
    return sam_transform(template)


def role_arn(deployed: dict[str, Any], function: str) -> str:
    """The ARN CloudFormation gives a SAM-generated role: its path, then stack-logical-random."""
    role = deployed["Resources"][f"{function}Role"]["Properties"]
    path = resolve(role.get("Path", "/"))
    return f"arn:aws:iam::{ACCOUNT}:role{path}{STACK}-{function}Role-AB12CD34EF56"


FUNCTIONS = ("IngestFunction", "WebSubFunction", "VerifierFunction", "DispatchFunction")


@pytest.mark.parametrize("key_name", sorted(SENSITIVE))
def test_only_the_dispatch_function_may_use_a_keys_secret_operations(
    template: dict[str, Any], deployed: dict[str, Any], key_name: str
) -> None:
    key = template["Resources"][key_name]
    administrator = f"arn:aws:iam::{ACCOUNT}:role/Admin"
    user = f"arn:aws:iam::{ACCOUNT}:user/alice"

    for action in SENSITIVE[key_name]:
        allowed = {function for function in FUNCTIONS if may(key, action, role_arn(deployed, function))}
        assert allowed == ({"DispatchFunction"} if action != "kms:ReEncryptFrom" else set()), action
        assert not may(key, action, administrator), action
        assert not may(key, action, user), action


@pytest.mark.parametrize("key_name", sorted(SENSITIVE))
def test_the_account_still_administers_every_key(template: dict[str, Any], key_name: str) -> None:
    key = template["Resources"][key_name]

    for action in ADMINISTRATION:
        assert may(key, action, f"arn:aws:iam::{ACCOUNT}:role/Admin"), action


def test_the_table_is_still_decrypted_through_dynamodb(template: dict[str, Any]) -> None:
    key = template["Resources"]["DataKey"]
    reader = f"arn:aws:iam::{ACCOUNT}:role/{STACK}-VerifierFunctionRole-AB12CD34EF56"

    assert may(key, "kms:Decrypt", reader, via="dynamodb.us-east-1.amazonaws.com")
    assert not may(key, "kms:Decrypt", reader)


def test_the_websub_function_still_encrypts_secrets_and_reads_public_keys(
    template: dict[str, Any], deployed: dict[str, Any]
) -> None:
    websub = role_arn(deployed, "WebSubFunction")

    assert may(template["Resources"]["DataKey"], "kms:Encrypt", websub)
    assert may(template["Resources"]["SigningKey"], "kms:GetPublicKey", websub)
