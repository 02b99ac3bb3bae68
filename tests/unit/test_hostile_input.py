"""Hostile input to the ``/hub`` and ``/events`` parsers: any body or parameters are either
parsed or refused with a 4xx and a reason, never an unexpected exception.

``tests/integration/test_hostile_handlers.py`` drives the real handlers with the same
strategies against moto.
"""

from __future__ import annotations

import json

from hostile_strategies import FORM, HYPOTHESIS, events_documents
from hypothesis import example, given
from hypothesis import strategies as st

from sethub.errors import BadRequestError
from sethub.events import event_problems, parse_request_body
from sethub.websub import parse_hub_request

# --- the parsers alone (no AWS) ---------------------------------------------------------------


def assert_refused_with_a_reason(refusal: BadRequestError) -> None:
    # Every body here is under the 1 MiB limit (413): a malformed one is 400, as DESIGN.md says.
    assert refusal.status == 400
    assert refusal.reason.strip()
    assert "\n" not in refusal.reason


@HYPOTHESIS
@given(query=st.dictionaries(st.text(max_size=20), st.text(max_size=50)), body=st.binary(max_size=2000))
@example(query={}, body=b"hub.mode=subscribe&hub.topic=%ff")
@example(query={}, body=b"\xff\xfe=\x00")
@example(query={"hub.mode": "publish"}, body=b"&" * 100_000)
def test_hub_parser_refuses_or_parses_any_form_body(query: dict[str, str], body: bytes) -> None:
    try:
        request = parse_hub_request(query=query, body=body, content_type=FORM)
    except BadRequestError as exc:
        refusal = exc
    else:
        assert isinstance(request.params, dict)
        return
    assert_refused_with_a_reason(refusal)


@HYPOTHESIS
@given(body=st.one_of(st.binary(max_size=2000), events_documents.map(lambda doc: json.dumps(doc).encode())))
@example(body=b"")
@example(body=b"[]")
@example(body=b'{"events": []}')
@example(body=b"NaN")
@example(body=b'{"events": ' * 5000)  # nesting deeper than the JSON decoder's recursion limit
def test_events_parser_refuses_or_parses_any_body(body: bytes) -> None:
    try:
        batch = parse_request_body(body)
    except BadRequestError as exc:
        refusal = exc
    else:
        for raw in batch:
            assert all(isinstance(problem, str) and problem for problem in event_problems(raw))
        return
    assert_refused_with_a_reason(refusal)
