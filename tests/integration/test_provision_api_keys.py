"""The local API Gateway asks for a key where the deployed API does, including ``POST /hub``'s
key requirement that template.yaml merges into SAM's OpenAPI under a condition on PublicHub,
which the local setting ``SETHUB_PUBLIC_HUB`` chooses as the parameter would."""

from __future__ import annotations

import uuid

import pytest

from devstack.provision import provision
from devstack.template import loads_template

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  PublicHub: {Type: String, Default: "false", AllowedValues: ["true", "false"]}
  RetrySchedule: {Type: String, Default: "5,30"}
Conditions:
  HubKeyRequired: !Equals [!Ref PublicHub, "false"]
Globals:
  Function:
    Runtime: python3.12
    Environment:
      Variables:
        SETHUB_PUBLIC_HUB: !Ref PublicHub
        SETHUB_RETRY_SCHEDULE: !Ref RetrySchedule
Resources:
  HubApi:
    Type: AWS::Serverless::Api
    Properties:
      StageName: Prod
      Auth: {ApiKeyRequired: false}
      MergeDefinitions: true
      DefinitionBody:
        swagger: "2.0"
        paths:
          /hub:
            post:
              security: !If [HubKeyRequired, [{api_key: []}], !Ref AWS::NoValue]
  HubFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/hub/
      Handler: hub_handler.handler
      Events:
        Hub:
          Type: Api
          Properties: {RestApiId: !Ref HubApi, Path: /hub, Method: post}
        Events:
          Type: Api
          Properties:
            RestApiId: !Ref HubApi
            Path: /events
            Method: post
            Auth: {ApiKeyRequired: true}
        Health:
          Type: Api
          Properties: {RestApiId: !Ref HubApi, Path: /health, Method: get}
"""


@pytest.mark.parametrize(
    ("overrides", "hub_keyed"),
    [({}, True), ({"SETHUB_PUBLIC_HUB": "false"}, True), ({"SETHUB_PUBLIC_HUB": "true"}, False)],
)
def test_hub_needs_a_key_at_the_gateway_unless_the_hub_is_public(
    moto_endpoint: str, overrides: dict[str, str], hub_keyed: bool
) -> None:
    stack = provision(
        loads_template(TEMPLATE),
        endpoint_url=moto_endpoint,
        prefix=f"t{uuid.uuid4().hex[:8]}",
        overrides=overrides,
    )

    routes = {(route.method, route.path): route.api_key_required for route in stack.routes}
    assert routes == {("POST", "/hub"): hub_keyed, ("POST", "/events"): True, ("GET", "/health"): False}
    # An overridden setting that no condition reads stays a variable only.
    assert stack.env_for("HubFunction")["SETHUB_RETRY_SCHEDULE"] == "5,30"


def test_a_parameter_given_explicitly_wins_over_the_setting(moto_endpoint: str) -> None:
    stack = provision(
        loads_template(TEMPLATE),
        endpoint_url=moto_endpoint,
        prefix=f"t{uuid.uuid4().hex[:8]}",
        parameters={"PublicHub": "false"},
        overrides={"SETHUB_PUBLIC_HUB": "true"},
    )

    assert {route.path: route.api_key_required for route in stack.routes}["/hub"] is True
