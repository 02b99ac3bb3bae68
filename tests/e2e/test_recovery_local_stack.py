"""Recovery through ``make local`` (issue 14, part 4): a subscriber that was down misses
events; the operator runs ``sethub recover start --wait`` for the window; dispatch sends them
and the subscriber gets them in ``toe`` order, signed as it is subscribed now (its
Standard Webhooks secret, which only dispatch may decrypt); the topic's other subscriber
gets nothing more; ``sethub recover status`` shows the recovery done."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_harness import child_environment, wait_for  # type: ignore[import-not-found]
from standardwebhooks import Webhook

pytestmark = pytest.mark.e2e

LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"
SETHUB = Path(sys.executable).with_name("sethub")
TOPIC = "recover.login"


def test_a_subscriber_that_was_down_recovers_the_window_in_order(start_local_stack, subscribers):
    # A retry an hour away: what the subscriber gets during the test comes from the recovery.
    stack = start_local_stack(SETHUB_RETRY_SCHEDULE="3600")
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    crm, siem = subscribers(), subscribers()
    stack.subscribe(TOPIC, crm.url, format="json", signing="standard-webhooks", **{"hub.secret": secret})
    stack.subscribe(TOPIC, siem.url, register=False)
    (before,) = stack.publish({"topic": TOPIC, "events": {LOGIN: {"n": 0}}, "toe": 1})
    wait_for(lambda: crm.count() == siem.count() == 1, timeout=30, message="the first event delivered")
    since = f"{time.time():.6f}"
    crm.failures = 4  # its next three deliveries

    # GIVEN the CRM is down while three events come, published out of toe order
    published = stack.publish(
        *({"topic": TOPIC, "events": {LOGIN: {"n": toe}}, "toe": toe} for toe in (30, 10, 20))
    )
    wait_for(
        lambda: crm.count() == 4 and siem.count() == 4, timeout=30, message="the window's first attempts"
    )
    assert [json.loads(body)["jti"] for _, body in crm.received()] == [before]

    # WHEN the operator recovers the window for the CRM, as the README says
    env = child_environment({"SETHUB_AWS_ENDPOINT": stack.moto_endpoint, "SETHUB_STACK": stack.prefix})

    def sethub(*argv: str) -> dict[str, str]:
        done = subprocess.run(
            [str(SETHUB), *argv], env=env, capture_output=True, text=True, timeout=90, check=False
        )
        assert done.returncode == 0, done.stderr
        return dict(line.split(None, 1) for line in done.stdout.splitlines() if " " in line.strip())

    started = sethub(
        "recover",
        "start",
        "--topic",
        TOPIC,
        "--callback",
        crm.url,
        "--since",
        since,
        "--wait",
        "--timeout",
        "60",
    )

    # THEN the CRM gets the window in toe order, each verifying with the receiver's package
    assert (started["status"], started["found"], started["wanted"], started["ok"]) == ("done", "3", "3", "3")
    recovered = crm.received()[1:]
    assert [json.loads(body)["toe"] for _, body in recovered] == [10, 20, 30]
    assert sorted(json.loads(body)["jti"] for _, body in recovered) == sorted(published)
    for headers, body in recovered:
        Webhook(secret).verify(body, headers, json_parse=False)
        assert headers["webhook-id"] == json.loads(body)["jti"]
    # and the other subscriber got nothing more than its own deliveries
    assert siem.count() == 4
    # and the operator reads the recovery's outcome again by its id
    shown = sethub("recover", "status", started["recovery"])
    assert (shown["status"], shown["sent"]) == ("done", "3")
    assert shown["callback_host"] == crm.url.split("/")[2]  # host and port, never the path
