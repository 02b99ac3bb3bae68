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
