"""Reading template.yaml: a YAML loader that understands CloudFormation's short tags.

``!Ref X`` becomes ``{"Ref": "X"}``, ``!GetAtt A.B`` becomes ``{"Fn::GetAtt": ["A", "B"]}``
and every other ``!Fn`` becomes ``{"Fn::Fn": ...}``: the long forms, so that code reading
the template (the local stack, the template tests) handles one spelling only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

# The short tags CloudFormation accepts; all but Ref and Condition are "Fn::<name>".
_FUNCTIONS = (
    "And",
    "Base64",
    "Cidr",
    "Equals",
    "FindInMap",
    "GetAZs",
    "GetAtt",
    "If",
    "ImportValue",
    "Join",
    "Not",
    "Or",
    "Select",
    "Split",
    "Sub",
    "Transform",
    "Length",
    "ToJsonString",
)


class TemplateError(ValueError):
    """template.yaml is not a readable CloudFormation template."""


class _CloudFormationLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type stubs
    """SafeLoader plus the CloudFormation short tags (a subclass, so SafeLoader stays untouched)."""


def _node_value(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise TemplateError(f"unsupported YAML node {node!r}")  # pragma: no cover - yaml has no others


def _ref(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    return {"Ref": _node_value(loader, node)}


def _condition(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    return {"Condition": _node_value(loader, node)}


def _get_att(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    value = _node_value(loader, node)
    if isinstance(value, str):
        # "Resource.Attr.With.Dots": only the first dot separates the logical id.
        resource, _, attribute = value.partition(".")
        if not attribute:
            raise TemplateError(f"!GetAtt {value!r} needs the form Resource.Attribute")
        return {"Fn::GetAtt": [resource, attribute]}
    return {"Fn::GetAtt": value}


def _function(name: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        return {f"Fn::{name}": _node_value(loader, node)}

    return construct


_CloudFormationLoader.add_constructor("!Ref", _ref)
_CloudFormationLoader.add_constructor("!Condition", _condition)
_CloudFormationLoader.add_constructor("!GetAtt", _get_att)
for _name in _FUNCTIONS:
    if _name != "GetAtt":
        _CloudFormationLoader.add_constructor(f"!{_name}", _function(_name))


def loads_template(text: str) -> dict[str, Any]:
    """A template given as YAML (or JSON) text, with short tags in their long form."""
    try:
        document = yaml.load(text, Loader=_CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TemplateError(f"template is not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError("template has no Resources section")
    return document


def load_template(path: str | Path) -> dict[str, Any]:
    """The template at ``path`` as a dict, with short tags in their long form."""
    return loads_template(Path(path).read_text(encoding="utf-8"))


def merge_globals(base: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """SAM Globals semantics: maps merge key by key, everything else the resource's own wins."""
    merged = dict(base)
    for key, value in own.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_globals(merged[key], value)
        else:
            merged[key] = value
    return merged
