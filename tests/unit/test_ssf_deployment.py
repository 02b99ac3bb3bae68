"""The deployed SSF issuer (template.yaml): with ``PublicUrl`` (a custom domain mapped at its
root) the SSF function's base URL, the issuer output and the discovery URL are the domain's,
with no API Gateway stage; without it they are the execute-api URL's, ``/Prod`` included."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

EXECUTE_API = "https://api1.execute-api.eu-west-1.amazonaws.com"


def evaluate(node: Any, parameters: Mapping[str, str], conditions: Mapping[str, Any]) -> Any:
    """The few intrinsics the SSF outputs use: Ref, Fn::Sub, Fn::If (with the template's conditions)."""
    names = {"HubApi": "api1", "AWS::Region": "eu-west-1", "AWS::URLSuffix": "amazonaws.com", **parameters}
    if isinstance(node, str):
        return node
    (function, argument), *_ = node.items()
    if function == "Ref":
        return names[argument]
    if function == "Fn::Sub":
        return re.sub(r"\$\{([^}]+)\}", lambda match: names[match.group(1)], argument)
    if function == "Fn::If":
        condition, when_true, when_false = argument
        return evaluate(
            when_true if holds(condition, parameters, conditions) else when_false, parameters, conditions
        )
    raise AssertionError(f"unexpected intrinsic {function}")


def holds(name: str, parameters: Mapping[str, str], conditions: Mapping[str, Any]) -> bool:
    node = conditions[name]
    if "Fn::Not" in node:
        [inner] = node["Fn::Not"]
        left, right = inner["Fn::Equals"]
        return evaluate(left, parameters, conditions) != right
    raise AssertionError(f"unexpected condition {node}")


@pytest.mark.parametrize(
    ("public_url", "issuer"),
    [("https://ssf.acme.example", "https://ssf.acme.example"), ("", EXECUTE_API + "/Prod")],
)
def test_the_ssf_issuer_output_follows_public_url(
    template: dict[str, Any], public_url: str, issuer: str
) -> None:
    outputs, conditions = template["Outputs"], template["Conditions"]
    parameters = {"PublicUrl": public_url}
    assert evaluate(outputs["SsfIssuer"]["Value"], parameters, conditions) == issuer
    assert (
        evaluate(outputs["SsfConfigurationUrl"]["Value"], parameters, conditions)
        == issuer + "/.well-known/ssf-configuration"
    )
    assert evaluate(outputs["SsfTokenEndpoint"]["Value"], parameters, conditions) == issuer + "/oauth2/token"


def test_the_ssf_function_gets_the_public_url(template: dict[str, Any]) -> None:
    # The SSF handler's issuer is SETHUB_PUBLIC_URL when set (tests/integration/test_ssf_issuer.py).
    function = template["Resources"]["SsfFunction"]["Properties"]
    variables = {
        **template["Globals"]["Function"]["Environment"]["Variables"],
        **function.get("Environment", {}).get("Variables", {}),
    }
    assert variables["SETHUB_PUBLIC_URL"] == {"Ref": "PublicUrl"}


# ---------------------------------------------------------------------------- kms mode's SSF key

SLOTS = {"SsfSigningKey": "a", "SsfSigningKeyB": "b"}
DISPATCH_ROLES = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/sethub/${AWS::StackName}/dispatch/*"


def condition_holds(name: str, parameters: Mapping[str, str], conditions: Mapping[str, Any]) -> bool:
    """The template's signing conditions: Fn::Equals on a parameter, Fn::And, Condition."""

    def truth(node: Any) -> bool:
        (function, argument), *_ = node.items()
        if function == "Condition":
            return truth(conditions[argument])
        if function == "Fn::And":
            return all(truth(part) for part in argument)
        if function == "Fn::Equals":
            left, right = argument
            return parameters[left["Ref"]] == right
        raise AssertionError(f"unexpected condition {node}")

    return truth(conditions[name])


@pytest.mark.parametrize("mode", ["wrapped", "kms"])
@pytest.mark.parametrize("slot", ["a", "b"])
def test_the_ssf_kms_key_exists_only_in_kms_mode_in_the_hub_keys_slot(
    template: dict[str, Any], mode: str, slot: str
) -> None:
    resources, conditions = template["Resources"], template["Conditions"]
    parameters = {"SigningMode": mode, "SigningKeySlot": slot}
    created = {
        name for name in SLOTS if condition_holds(resources[name]["Condition"], parameters, conditions)
    }
    assert created == (
        {name for name, key_slot in SLOTS.items() if key_slot == slot} if mode == "kms" else set()
    )
    for name in ("SsfSigningKeyRecord", "SsfSigningKeyAlias"):
        assert condition_holds(resources[name]["Condition"], parameters, conditions) == (mode == "kms")
    # The hub's key flips with the same parameter: one rotation command rotates both.
    assert resources["SsfSigningKey"]["Condition"] == resources["SigningKey"]["Condition"]
    assert resources["SsfSigningKeyB"]["Condition"] == resources["SigningKeyB"]["Condition"]


@pytest.mark.parametrize("name", sorted(SLOTS))
def test_the_ssf_kms_key_is_an_rsa_signing_key_only_dispatch_signs_with(
    template: dict[str, Any], name: str
) -> None:
    key = template["Resources"][name]
    properties = key["Properties"]
    # CAEP interoperability profile: RS256 with at least 2048 bits.
    assert properties["KeySpec"] in ("RSA_2048", "RSA_3072", "RSA_4096")
    assert properties["KeyUsage"] == "SIGN_VERIFY"
    # A slot flip drops it from the stack: kept, as SETs it signed may still be verified.
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"
    statements = properties["KeyPolicy"]["Statement"]
    signers = [s for s in statements if s.get("Action") == "kms:Sign" or "kms:Sign" in s.get("Action", [])]
    assert [s["Condition"]["ArnLike"]["aws:PrincipalArn"] for s in signers] == [{"Fn::Sub": DISPATCH_ROLES}]
    assert all(s.get("NotAction") == "kms:Sign" for s in statements if s not in signers)


def statements(node: Any) -> list[dict[str, Any]]:
    """Every policy statement under ``node``, on both sides of each Fn::If."""
    if isinstance(node, list):
        return [found for item in node for found in statements(item)]
    if not isinstance(node, dict):
        return []
    if "Effect" in node and ("Action" in node or "NotAction" in node):
        return [node]
    return [found for value in node.values() for found in statements(value)]


def test_only_dispatch_signs_with_the_ssf_kms_key_and_only_the_deploy_reads_it(
    template: dict[str, Any],
) -> None:
    used: dict[str, set[str]] = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for statement in statements(resource["Properties"].get("Policies", [])):
            if any(key in str(statement.get("Resource")) for key in SLOTS):
                actions = statement["Action"]
                used.setdefault(name, set()).update([actions] if isinstance(actions, str) else actions)
    # The JWKS is read from the SSF ring (the deploy recorded the public key): no KMS call there.
    assert used == {"DispatchFunction": {"kms:Sign"}, "KeyRingFunction": {"kms:GetPublicKey"}}


def test_the_deploy_records_the_active_ssf_kms_key(template: dict[str, Any]) -> None:
    record = template["Resources"]["SsfSigningKeyRecord"]
    assert record["Type"] == "Custom::SsfSigningKey"
    properties = record["Properties"]
    assert properties["ServiceToken"] == {"Fn::GetAtt": ["KeyRingFunction", "Arn"]}
    assert properties["KeyId"] == {
        "Fn::If": [
            "SigningKeyInSlotA",
            {"Fn::GetAtt": ["SsfSigningKey", "Arn"]},
            {"Fn::GetAtt": ["SsfSigningKeyB", "Arn"]},
        ]
    }
