"""Every function's AWS calls, authorised against its role as AWS would (devstack.awsgate).

GIVEN a hub whose four functions each call AWS through an ``AuthorizingEndpoint`` that applies
their role of the SAM-transformed template.yaml, and Lambda's SQS pollers receiving with the
consumer's role: the hub's real flows (register, subscribe with a secret, verification,
ingest, signed delivery, JWKS) complete and nothing is refused. Then, with one action a flow
needs removed from a role in the loaded template, that flow fails with AccessDenied.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from botocore.exceptions import ClientError
from cfn_responses import cfn_responses
from hubs import local_receiver_token
from websub_peer import CallbackServer, websub_peer

from devstack.gateway import proxy_event
from devstack.iam import Check
from sethub.store import SubscriptionStore

TOPIC = "acme.login"
LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"

Template = dict[str, Any]


class HubFlows:
    """The hub's flows, each function's handler invoked with its role applied."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.websub = hub.function("WebSubFunction")
        self.ingest = hub.function("IngestFunction")
        self.verifier = hub.function("VerifierFunction")
        self.dispatch = hub.function("DispatchFunction")

    def api(self, function: Any, path: str, *, method: str = "POST", query: str = "", body: str = "") -> Any:
        headers = [("x-api-key", self.hub.api_key)]
        if body:
            kind = "application/json" if path == "/events" else "application/x-www-form-urlencoded"
            headers.append(("Content-Type", kind))
        event = proxy_event(resource=path, method=method, query=query, headers=headers, body=body.encode())
        return function.invoke(event)

    def ssf_stream(self) -> Any:
        """A receiver gets a token and creates a poll stream: the SSF function's table calls."""
        ssf = self.hub.function("SsfFunction")
        access = local_receiver_token(self.hub, "ssf.manage")
        return ssf.invoke(
            proxy_event(
                resource="/ssf/stream",
                method="POST",
                headers=[("Authorization", f"Bearer {access}"), ("Content-Type", "application/json")],
                body=json.dumps({"events_requested": []}).encode(),
            )
        )

    def post_hub(self, params: dict[str, str]) -> Any:
        return self.api(self.websub, "/hub", body=urlencode(params))

    def poll(self, queue: str, function: str) -> dict[str, Any]:
        """What Lambda's poller does for ``function``'s mapping, with ``function``'s role:
        read the queue's attributes, receive a batch, invoke, delete what succeeded."""
        provisioned = self.hub.provisioned
        sqs = boto3.client(
            "sqs", endpoint_url=self.hub.endpoint_for(function).url, region_name=provisioned.region
        )
        url = provisioned.queue_urls[queue]
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        records = [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": provisioned.queue_arns[queue],
                "awsRegion": provisioned.region,
            }
            for message in messages
        ]
        if not records:
            return {"batchItemFailures": [], "received": 0}
        consumer = getattr(self, function.removesuffix("Function").lower())
        try:
            result: dict[str, Any] = consumer.invoke({"Records": records})
        except Exception as exc:
            # The invocation failed (Powertools raises when every record failed): Lambda
            # deletes nothing and the whole batch comes back.
            ids = [{"itemIdentifier": r["messageId"]} for r in records]
            return {"batchItemFailures": ids, "received": len(records), "error": type(exc).__name__}
        failed = {item["itemIdentifier"] for item in result["batchItemFailures"]}
        done = [r for r in records if r["messageId"] not in failed]
        if done:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done)],
            )
        return {**result, "received": len(records)}

    def subscribe(self, callback: str) -> Any:
        return self.post_hub(
            {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": callback, "hub.secret": "s3cret"}
        )

    def publish(self) -> Any:
        event = {"topic": TOPIC, "events": {LOGIN: {"user": {"id": "42"}}}, "jti": uuid.uuid4().hex}
        return self.api(self.ingest, "/events", body=json.dumps(event))

    def refused(self) -> dict[str, list[Check | None]]:
        return {name: [v.refused for v in endpoint.refused] for name, endpoint in self.hub.endpoints.items()}

    def active(self, callback: str) -> bool:
        store = SubscriptionStore(self.hub.clients, self.hub.settings)
        return store.get_active(TOPIC, callback, now=time.time()) is not None


@pytest.fixture
def callbacks() -> Iterator[CallbackServer]:
    with websub_peer() as server:
        yield server


@pytest.fixture
def flows_for(
    hub_factory: Callable[[Template], Any], monkeypatch: pytest.MonkeyPatch
) -> Callable[[Template], HubFlows]:
    def build(template: Template) -> HubFlows:
        hub = hub_factory(template)
        for name, value in hub.env.items():
            monkeypatch.setenv(name, value)
        return HubFlows(hub)

    return build


def without(template: Template, function: str, action: str) -> Template:
    """``template`` with ``action`` taken out of ``function``'s inline policy statements."""
    edited = copy.deepcopy(template)
    removed = False
    for policy in edited["Resources"][function]["Properties"]["Policies"]:
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            actions = statement.get("Action") if isinstance(statement, dict) else None
            if isinstance(actions, list) and action in actions:
                actions.remove(action)
                removed = True
    assert removed, f"{function} has no inline {action} to remove"
    return edited


def without_policy_template(template: Template, function: str, name: str) -> Template:
    """``template`` with ``function``'s SAM policy template(s) ``name`` taken out."""
    edited = copy.deepcopy(template)
    policies = edited["Resources"][function]["Properties"]["Policies"]
    kept = [p for p in policies if not (isinstance(p, dict) and name in p)]
    assert len(kept) < len(policies), f"{function} has no {name}"
    edited["Resources"][function]["Properties"]["Policies"] = kept
    return edited


def test_every_functions_flows_run_under_its_role_and_nothing_is_refused(
    flows_for: Callable[[Template], HubFlows], template: Template, callbacks: CallbackServer
) -> None:
    flows = flows_for(template)
    callback = callbacks.url()

    assert flows.post_hub({"hub.mode": "register", "hub.topic": TOPIC})["statusCode"] == 200
    assert flows.subscribe(callback)["statusCode"] == 202
    verified = flows.poll("VerifyQueue", "VerifierFunction")
    published = flows.publish()
    dispatched = flows.poll("EventsQueue", "DispatchFunction")
    jwks = flows.api(flows.websub, "/.well-known/jwks.json", method="GET")
    stream = flows.ssf_stream()
    # The deploy's custom resource (wrapped signing): a key of another spec, made under its role.
    settings = flows.hub.settings
    with cfn_responses() as cfn:
        ring_properties = {
            "TableName": settings.table_name,
            "DataKeyId": settings.data_key_id,
            "KeySpec": "RSA_2048",
        }
        flows.hub.function("KeyRingFunction").invoke(cfn.event("Update", ring_properties, "ring"))

    assert verified == {"batchItemFailures": [], "received": 1}
    assert flows.active(callback)
    assert published["statusCode"] == 202, published["body"]
    assert dispatched == {"batchItemFailures": [], "received": 1}
    callbacks.wait_for(lambda: len(callbacks.posts()) == 1)
    assert callbacks.posts()[0].headers.get("X-Hub-Signature", "").startswith("sha256=")
    assert jwks["statusCode"] == 200
    assert json.loads(jwks["body"])["keys"]
    assert [answer["Status"] for answer in cfn.received] == ["SUCCESS"]
    assert stream["statusCode"] == 201, stream["body"]
    # Every function made its calls through its own endpoint, and none was refused.
    assert set(flows.hub.endpoints) == set(flows.hub.provisioned.functions)
    assert flows.refused() == {function: [] for function in flows.hub.provisioned.functions}


def test_a_verifier_without_condition_check_item_cannot_activate_a_subscription(
    flows_for: Callable[[Template], HubFlows], template: Template, callbacks: CallbackServer
) -> None:
    # GIVEN the verifier's role as it was before issue 10
    flows = flows_for(without(template, "VerifierFunction", "dynamodb:ConditionCheckItem"))
    flows.post_hub({"hub.mode": "register", "hub.topic": TOPIC})
    flows.subscribe(callbacks.url())

    # WHEN the verification runs
    result = flows.poll("VerifyQueue", "VerifierFunction")

    # THEN its transaction is refused for the ConditionCheck item, and nothing becomes active
    assert result["batchItemFailures"], result
    assert not flows.active(callbacks.url())
    refused = flows.refused()["VerifierFunction"]
    assert refused
    assert {check.action for check in refused if check} == {"dynamodb:ConditionCheckItem"}


def without_signing_key_decrypt(template: Template) -> Template:
    """``template`` whose dispatch role may not decrypt the wrapped signing key (wrapped mode,
    the default; kms mode's kms:Sign is tested in test_signing_modes)."""
    edited = copy.deepcopy(template)
    statements = edited["Resources"]["DispatchFunction"]["Properties"]["Policies"][0]["Statement"]
    kept = [s for s in statements if "DecryptSigningKey" not in json.dumps(s)]
    assert len(kept) == len(statements) - 1, "DispatchFunction has no DecryptSigningKey statement"
    edited["Resources"]["DispatchFunction"]["Properties"]["Policies"][0]["Statement"] = kept
    return edited


def test_a_dispatcher_that_may_not_decrypt_the_signing_key_delivers_nothing(
    flows_for: Callable[[Template], HubFlows], template: Template, callbacks: CallbackServer
) -> None:
    flows = flows_for(without_signing_key_decrypt(template))
    flows.post_hub({"hub.mode": "register", "hub.topic": TOPIC})
    flows.subscribe(callbacks.url())
    flows.poll("VerifyQueue", "VerifierFunction")
    flows.publish()

    result = flows.poll("EventsQueue", "DispatchFunction")

    assert result["batchItemFailures"], result
    assert callbacks.posts() == []
    assert {check.action for check in flows.refused()["DispatchFunction"] if check} == {"kms:Decrypt"}


def test_websub_without_its_kms_encrypt_policy_template_cannot_take_a_secret(
    flows_for: Callable[[Template], HubFlows], template: Template, callbacks: CallbackServer
) -> None:
    flows = flows_for(without_policy_template(template, "WebSubFunction", "KMSEncryptPolicy"))
    flows.post_hub({"hub.mode": "register", "hub.topic": TOPIC})

    response = flows.subscribe(callbacks.url())

    assert response["statusCode"] >= 500
    assert {check.action for check in flows.refused()["WebSubFunction"] if check} == {"kms:Encrypt"}


def test_ingest_without_its_send_message_policy_template_accepts_nothing(
    flows_for: Callable[[Template], HubFlows], template: Template
) -> None:
    flows = flows_for(without_policy_template(template, "IngestFunction", "SQSSendMessagePolicy"))
    flows.post_hub({"hub.mode": "register", "hub.topic": TOPIC})

    response = flows.publish()

    assert response["statusCode"] >= 500
    assert {check.action for check in flows.refused()["IngestFunction"] if check} == {"sqs:SendMessage"}


def test_a_poller_without_receive_message_gets_access_denied(
    flows_for: Callable[[Template], HubFlows], template: Template
) -> None:
    flows = flows_for(without(template, "VerifierFunction", "sqs:ReceiveMessage"))

    with pytest.raises(ClientError) as refused:
        flows.poll("VerifyQueue", "VerifierFunction")

    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert "sqs:ReceiveMessage" in refused.value.response["Error"]["Message"]
