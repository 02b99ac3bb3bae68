"""Which methods of the REST API need an API key, read from the API as CloudFormation creates it.

A method that needs a key admits only keys of the usage plan and is throttled per key
(``HubUsagePlan``). ``POST /events`` always needs one; ``POST /hub`` needs one unless the hub is
public (``PublicHub=true`` takes anonymous subscribers, whom the WAF rule per IP bounds).
SAM's ``ApiKeyRequired`` cannot depend on a parameter, so the template merges a conditional
``security`` entry into the OpenAPI SAM generates: these checks run SAM's own translator
(offline, as ``sam deploy`` does) and resolve the conditions for each value of ``PublicHub``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from templates import parameter_resolver

from devstack.iam import sam_transform
from devstack.intrinsics import Resolver
from devstack.template import load_template

ROOT = Path(__file__).resolve().parents[2]
METHODS = frozenset(
    {"get", "put", "post", "delete", "patch", "head", "options", "x-amazon-apigateway-any-method"}
)

Template = dict[str, Any]


@pytest.fixture(scope="module")
def transformed() -> Template:
    return sam_transform(load_template(ROOT / "template.yaml"))


def resolver(transformed: Template, parameters: Mapping[str, str]) -> Resolver:
    """Conditions and parameters as deployed with ``parameters``; a ``GetAtt`` is a placeholder
    string (``<Id.Attribute>``), which ``Fn::Sub`` can write into the integration's URI."""
    return parameter_resolver(
        transformed, parameters, get_att=lambda logical_id, attribute: f"<{logical_id}.{attribute}>"
    )


def keyed_methods(transformed: Template, parameters: Mapping[str, str]) -> dict[str, bool]:
    """Every method of the hub's REST API (``POST /hub``): whether it requires an API key."""
    body = transformed["Resources"]["HubApi"]["Properties"]["Body"]
    resolve = resolver(transformed, parameters).resolve
    found: dict[str, bool] = {}
    for path, item in resolve(body["paths"]).items():
        for method, definition in item.items():
            if method in METHODS:
                security = definition.get("security") or []
                found[f"{method.upper()} {path}"] = any("api_key" in entry for entry in security)
    return found


@pytest.mark.parametrize(
    ("public_hub", "keyed"),
    [("false", {"POST /events", "POST /hub"}), ("true", {"POST /events"})],
)
def test_the_methods_that_need_a_key_follow_public_hub(
    transformed: Template, public_hub: str, keyed: set[str]
) -> None:
    methods = keyed_methods(transformed, {"PublicHub": public_hub})

    assert {name for name, required in methods.items() if required} == keyed
    # The anonymous routes are still routed (JWKS, health, SSF with its own bearer tokens).
    assert {"POST /hub", "GET /.well-known/jwks.json", "GET /health"} <= set(methods)


def test_a_required_key_is_the_x_api_key_header_of_the_usage_plan(transformed: Template) -> None:
    body = transformed["Resources"]["HubApi"]["Properties"]["Body"]
    plan = transformed["Resources"]["HubUsagePlan"]["Properties"]

    assert body["securityDefinitions"]["api_key"] == {"type": "apiKey", "name": "x-api-key", "in": "header"}
    # The plan covers the API's stage, each key throttled and metered on its own.
    [stage] = plan["ApiStages"]
    assert stage["ApiId"] == {"Ref": "HubApi"}
    assert plan["Throttle"] == {"BurstLimit": {"Ref": "KeyBurstLimit"}, "RateLimit": {"Ref": "KeyRateLimit"}}
    assert plan["Quota"] == {"Limit": {"Ref": "KeyDailyQuota"}, "Period": "DAY"}


def test_hub_is_routed_to_the_websub_function_whatever_public_hub_says(transformed: Template) -> None:
    for public_hub in ("false", "true"):
        body = resolver(transformed, {"PublicHub": public_hub}).resolve(
            transformed["Resources"]["HubApi"]["Properties"]["Body"]
        )
        integration = body["paths"]["/hub"]["post"]["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy"
        assert "/functions/<WebSubFunction.Arn>/invocations" in integration["uri"]


def test_a_deploy_that_only_flips_public_hub_still_redeploys_the_stage() -> None:
    # SAM names the stage's deployment after the OpenAPI text, and the Fn::If keeps that text
    # the same for both values: only AlwaysDeploy makes the stage serve the new key rule.
    api = load_template(ROOT / "template.yaml")["Resources"]["HubApi"]["Properties"]
    assert "Fn::If" in str(api["DefinitionBody"]["paths"]["/hub"])
    assert api["AlwaysDeploy"] is True
