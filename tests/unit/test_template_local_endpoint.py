"""``AWS_ENDPOINT_URL`` in template.yaml: declared for ``sam local`` only, never deployed.

sam local hands a function only the environment variables the template declares, whatever
``--env-vars`` says, so the local stack's emulator mode needs the template to declare the
endpoint; a deployed function must not get one, or it would call a local address instead of
AWS. The checks read the functions as CloudFormation creates them: SAM's translator's output,
with the conditions resolved for one set of parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest
from templates import parameter_resolver

from devstack.iam import sam_transform
from devstack.sam import LOCAL_ENDPOINT_PARAMETER

Template = dict[str, Any]
LOCAL = "http://172.17.0.1:5000"


def function_environments(template: Template, parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Each deployed ``AWS::Lambda::Function``'s environment variables, ``Fn::If`` resolved for
    ``parameters`` (the defaults otherwise); other references are left as they are."""
    transformed = sam_transform(template)
    resolver = parameter_resolver(transformed, parameters)
    return {
        name: resolver.resolve(resource["Properties"].get("Environment", {}).get("Variables", {}))
        for name, resource in transformed["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


def template_functions(template: Template) -> set[str]:
    """The template's functions, each of which SAM turns into one AWS::Lambda::Function."""
    return {
        name
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def test_deployed_functions_get_no_endpoint_override(template: Template) -> None:
    environments = function_environments(template)

    assert set(environments) == template_functions(template)
    for name, variables in environments.items():
        assert "AWS_ENDPOINT_URL" not in variables, name
        assert "SETHUB_TABLE_NAME" in variables, name  # the environment was read at all


def test_every_function_declares_the_endpoint_when_the_local_parameter_is_set(template: Template) -> None:
    environments = function_environments(template, {LOCAL_ENDPOINT_PARAMETER: LOCAL})

    assert set(environments) == template_functions(template)
    assert {name: variables["AWS_ENDPOINT_URL"] for name, variables in environments.items()} == dict.fromkeys(
        environments, LOCAL
    )


def test_the_endpoint_parameter_is_blank_by_default(template: Template) -> None:
    parameter = template["Parameters"][LOCAL_ENDPOINT_PARAMETER]

    assert parameter["Type"] == "String"
    assert parameter["Default"] == ""


@pytest.mark.parametrize(
    "variable",
    [
        {"Ref": LOCAL_ENDPOINT_PARAMETER},
        "http://127.0.0.1:5000",
    ],
)
def test_an_unconditional_endpoint_would_be_deployed_and_is_caught(template: Template, variable: Any) -> None:
    broken = copy.deepcopy(template)
    broken["Globals"]["Function"]["Environment"]["Variables"]["AWS_ENDPOINT_URL"] = variable

    environments = function_environments(broken)

    assert all("AWS_ENDPOINT_URL" in variables for variables in environments.values())


def test_without_the_declaration_sam_local_could_not_set_the_endpoint(template: Template) -> None:
    broken = copy.deepcopy(template)
    del broken["Globals"]["Function"]["Environment"]["Variables"]["AWS_ENDPOINT_URL"]

    environments = function_environments(broken, {LOCAL_ENDPOINT_PARAMETER: LOCAL})

    assert all("AWS_ENDPOINT_URL" not in variables for variables in environments.values())
