"""devstack.provision: a template's resources created in moto, and its functions' wiring."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import pytest

from devstack.provision import ProvisionError, provision
from devstack.template import load_template, loads_template

HUB_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  SigningKeySpec: {Type: String, Default: ECC_NIST_P256}
  RetrySchedule: {Type: String, Default: "5,30"}
  AuditEnabled: {Type: String, Default: "false"}
Conditions:
  IsRsa: !Equals [!Ref SigningKeySpec, RSA_2048]
Globals:
  Function:
    Runtime: python3.12
    Timeout: 20
    Environment:
      Variables:
        SETHUB_TABLE_NAME: !Ref HubTable
        SETHUB_RETRY_SCHEDULE: !Ref RetrySchedule
        SETHUB_PUBLIC_HUB: false
Resources:
  HubApi:
    Type: AWS::Serverless::Api
    Properties:
      StageName: Prod
      Auth: {ApiKeyRequired: true}
      GatewayResponses:
        INVALID_API_KEY:
          StatusCode: 403
          ResponseTemplates:
            application/json: '{"error": $context.error.messageString}'
  WorkQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 120
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt WorkDeadLetterQueue.Arn
        maxReceiveCount: 3
  WorkDeadLetterQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-work-dlq"
      MessageRetentionPeriod: 1209600
  AuditQueue:
    Type: AWS::SQS::Queue
  WorkFunctionWorkQueue:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !Ref WorkFunction
      EventSourceArn: !GetAtt WorkQueue.Arn
      BatchSize: 25
      MaximumBatchingWindowInSeconds: 1
      FunctionResponseTypes: [ReportBatchItemFailures]
      ScalingConfig: {MaximumConcurrency: 5}
  WorkFunctionAuditQueue:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !GetAtt WorkFunction.Arn
      EventSourceArn: !GetAtt AuditQueue.Arn
      Enabled: !Ref AuditEnabled
  HubTable:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {AttributeName: pk, AttributeType: S}
        - {AttributeName: sk, AttributeType: S}
      KeySchema:
        - {AttributeName: pk, KeyType: HASH}
        - {AttributeName: sk, KeyType: RANGE}
      TimeToLiveSpecification: {AttributeName: ttl, Enabled: true}
  SigningKey:
    Type: AWS::KMS::Key
    Properties:
      KeySpec: !Ref SigningKeySpec
      KeyUsage: SIGN_VERIFY
  ApiKeySecret:
    Type: AWS::SecretsManager::Secret
    Properties:
      GenerateSecretString: {PasswordLength: 40, ExcludePunctuation: true}
  WorkFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/work/
      Handler: work_handler.handler
      Environment:
        Variables:
          SETHUB_WORK_QUEUE_URL: !Ref WorkQueue
          SETHUB_SIGNING_KEY_IDS: !Ref SigningKey
          SETHUB_API_KEY_SECRET_ID: !Ref ApiKeySecret
          SETHUB_ALG: !If [IsRsa, RS256, ES256]
          SETHUB_DLQ_ARN: !Sub "${WorkDeadLetterQueue.Arn}"
      Events:
        Post:
          Type: Api
          Properties: {RestApiId: !Ref HubApi, Path: /work, Method: post}
        Health:
          Type: Api
          Properties:
            RestApiId: !Ref HubApi
            Path: /health
            Method: get
            Auth: {ApiKeyRequired: false}
"""


@pytest.fixture
def template():
    return loads_template(TEMPLATE)


def _prefix() -> str:
    return f"p{uuid.uuid4().hex[:8]}"


def test_resources_are_created_from_the_template(moto_endpoint, template):
    # GIVEN a template with a queue and its DLQ, a table with TTL, a signing key, a secret
    prefix = _prefix()

    # WHEN it is provisioned
    stack = provision(template, endpoint_url=moto_endpoint, prefix=prefix, api_key="k-123")

    # THEN each resource exists in moto with the template's settings, under the prefix
    sqs = boto3.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=stack.queue_urls["WorkQueue"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["VisibilityTimeout"] == "120"
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == stack.queue_arns["WorkDeadLetterQueue"]
    assert int(redrive["maxReceiveCount"]) == 3
    assert stack.queue_urls["WorkDeadLetterQueue"].endswith(f"/{prefix}-work-dlq")

    dynamodb = boto3.client("dynamodb")
    table = stack.table_names["HubTable"]
    assert table.startswith(prefix)
    ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "ttl"

    key = boto3.client("kms").describe_key(KeyId=stack.key_ids["SigningKey"])["KeyMetadata"]
    assert key["KeyUsage"] == "SIGN_VERIFY"
    assert key["KeySpec"] == "ECC_NIST_P256"

    secret = boto3.client("secretsmanager").get_secret_value(SecretId=stack.secret_arns["ApiKeySecret"])
    assert secret["SecretString"] == "k-123"


def test_function_environment_resolves_references_and_takes_overrides(moto_endpoint, template):
    stack = provision(
        template,
        endpoint_url=moto_endpoint,
        prefix=_prefix(),
        parameters={"SigningKeySpec": "RSA_2048"},
        overrides={"SETHUB_PUBLIC_HUB": "true"},
    )

    env = stack.env_for("WorkFunction")

    assert env["SETHUB_TABLE_NAME"] == stack.table_names["HubTable"]
    assert env["SETHUB_WORK_QUEUE_URL"] == stack.queue_urls["WorkQueue"]
    assert env["SETHUB_SIGNING_KEY_IDS"] == stack.key_ids["SigningKey"]
    assert env["SETHUB_API_KEY_SECRET_ID"] == stack.secret_arns["ApiKeySecret"]
    assert env["SETHUB_DLQ_ARN"] == stack.queue_arns["WorkDeadLetterQueue"]
    assert env["SETHUB_RETRY_SCHEDULE"] == "5,30"
    assert env["SETHUB_ALG"] == "RS256"
    assert env["SETHUB_PUBLIC_HUB"] == "true"
    with pytest.raises(ProvisionError):
        stack.env_for("NoSuchFunction")


def test_event_sources_routes_and_gateway_responses_are_read(moto_endpoint, template):
    stack = provision(template, endpoint_url=moto_endpoint, prefix=_prefix())

    mappings = {mapping.queue: mapping for mapping in stack.event_sources}
    assert set(mappings) == {"WorkQueue", "AuditQueue"}
    mapping = mappings["WorkQueue"]
    assert (mapping.function, mapping.batch_size) == ("WorkFunction", 25)
    assert mapping.batching_window_seconds == 1
    assert mapping.reports_batch_item_failures
    assert mapping.maximum_concurrency == 5
    assert mapping.enabled
    assert mapping.queue_url == stack.queue_urls["WorkQueue"]
    assert mapping.queue_arn == stack.queue_arns["WorkQueue"]
    # FunctionName as !GetAtt .Arn, Lambda's defaults, and Enabled from a parameter.
    audit = mappings["AuditQueue"]
    assert audit.function == "WorkFunction"
    assert (audit.batch_size, audit.batching_window_seconds, audit.maximum_concurrency) == (10, 0, None)
    assert not audit.reports_batch_item_failures
    assert not audit.enabled

    routes = {(route.method, route.path): route.api_key_required for route in stack.routes}
    assert routes == {("POST", "/work"): True, ("GET", "/health"): False}
    assert stack.gateway_responses["INVALID_API_KEY"].status == 403

    function = stack.functions["WorkFunction"]
    assert (function.code_uri, function.handler, function.timeout) == (
        "functions/work/",
        "work_handler.handler",
        20,
    )


def test_provisioning_the_same_prefix_again_reuses_the_resources(moto_endpoint, template):
    prefix = _prefix()
    first = provision(template, endpoint_url=moto_endpoint, prefix=prefix)

    second = provision(template, endpoint_url=moto_endpoint, prefix=prefix)

    assert second.queue_urls == first.queue_urls
    assert second.key_ids == first.key_ids
    assert second.secret_arns == first.secret_arns
    assert second.table_names == first.table_names


def test_prefixes_keep_hubs_apart(moto_endpoint, template):
    one = provision(template, endpoint_url=moto_endpoint, prefix=_prefix())
    two = provision(template, endpoint_url=moto_endpoint, prefix=_prefix())

    assert set(one.queue_urls.values()).isdisjoint(two.queue_urls.values())
    assert one.table_names["HubTable"] != two.table_names["HubTable"]
    assert one.key_ids["SigningKey"] != two.key_ids["SigningKey"]


def test_a_mapping_disabled_by_its_condition_is_not_read(moto_endpoint, template):
    template["Conditions"]["AuditOn"] = {"Fn::Equals": [{"Ref": "AuditEnabled"}, "true"]}
    template["Resources"]["WorkFunctionAuditQueue"]["Condition"] = "AuditOn"

    stack = provision(template, endpoint_url=moto_endpoint, prefix=_prefix())

    assert [mapping.queue for mapping in stack.event_sources] == ["WorkQueue"]


def test_a_sam_sqs_event_is_refused(moto_endpoint, template):
    # SAM would give the function a managed policy that reads every queue of the account.
    events = template["Resources"]["WorkFunction"]["Properties"]["Events"]
    events["Work"] = {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["WorkQueue", "Arn"]}}}

    with pytest.raises(ProvisionError, match="WorkFunction: a SAM SQS event"):
        provision(template, endpoint_url=moto_endpoint, prefix=_prefix())


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("FunctionName", {"Ref": "NoSuchFunction"}, "FunctionName must be"),
        ("FunctionName", {"Fn::GetAtt": ["WorkFunction", "Name"]}, "FunctionName must be"),
        ("FunctionName", "work-function", "FunctionName must be"),
        ("EventSourceArn", {"Fn::GetAtt": ["HubTable", "Arn"]}, "is not a queue of the template"),
    ],
)
def test_a_mapping_that_is_not_from_a_queue_to_a_function_of_the_template_is_refused(
    moto_endpoint, template, field, value, reason
):
    template["Resources"]["WorkFunctionWorkQueue"]["Properties"][field] = value

    with pytest.raises(ProvisionError, match=f"WorkFunctionWorkQueue: .*{reason}"):
        provision(template, endpoint_url=moto_endpoint, prefix=_prefix())


def test_the_hub_template_wires_its_queues_to_their_consumers(moto_endpoint):
    # template.yaml's mappings, as the local stack's pollers get them.
    stack = provision(load_template(HUB_TEMPLATE), endpoint_url=moto_endpoint, prefix=_prefix())

    sources = {
        mapping.queue: (
            mapping.function,
            mapping.batch_size,
            mapping.batching_window_seconds,
            mapping.maximum_concurrency,
            mapping.reports_batch_item_failures,
            mapping.enabled,
        )
        for mapping in stack.event_sources
    }
    assert sources == {
        # No batching window by default (BatchingWindowSeconds): an event goes as soon as it is received.
        "EventsQueue": ("DispatchFunction", 10, 0, 50, True, True),
        "RetryQueue": ("DispatchFunction", 10, 0, 20, True, True),
        "VerifyQueue": ("VerifierFunction", 10, 0, 10, True, True),
    }
    for mapping in stack.event_sources:
        assert mapping.queue_url == stack.queue_urls[mapping.queue]


def test_the_batching_window_of_the_dispatch_mappings_is_a_template_parameter(moto_endpoint):
    stack = provision(
        load_template(HUB_TEMPLATE),
        endpoint_url=moto_endpoint,
        prefix=_prefix(),
        parameters={"BatchingWindowSeconds": "5"},
    )

    windows = {mapping.queue: mapping.batching_window_seconds for mapping in stack.event_sources}
    assert windows == {"EventsQueue": 5, "RetryQueue": 5, "VerifyQueue": 0}
