"""The template as CloudFormation resolves it for one set of parameters, in tests.

Tests that read what a deploy creates (roles, environments, API methods, layers) resolve the
template's conditions and parameters; what the other references become is theirs to choose:
left as written by default, or made-up physical values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devstack.intrinsics import NO_VALUE, AttLookup, RefLookup, Resolver


def left_ref(name: str) -> Any:
    """A ``Ref`` left as it is written."""
    return {"Ref": name}


def left_get_att(logical_id: str, attribute: str) -> Any:
    """A ``GetAtt`` left as it is written (in its long form)."""
    return {"Fn::GetAtt": [logical_id, attribute]}


def parameter_resolver(
    template: Mapping[str, Any],
    parameters: Mapping[str, str] | None = None,
    *,
    other_ref: RefLookup = left_ref,
    get_att: AttLookup = left_get_att,
    region: str = "us-east-1",
) -> Resolver:
    """A resolver of ``template``'s conditions and parameters: each parameter its ``Default``
    (blank without one) unless ``parameters`` gives it, ``Ref AWS::NoValue`` removes what it is
    in; any other ``Ref`` is asked of ``other_ref`` and every ``GetAtt`` of ``get_att``."""
    values = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
    values.update(parameters or {})

    def ref(name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in values:
            return values[name]
        return other_ref(name)

    return Resolver(ref=ref, get_att=get_att, conditions=template.get("Conditions") or {}, region=region)
