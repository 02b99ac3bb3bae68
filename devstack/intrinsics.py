"""Resolution of CloudFormation intrinsic functions, in their JSON (dict) form.

``devstack.template.load_template`` turns the YAML short forms (``!Ref``, ``!GetAtt``,
``!Sub``...) into the long ``{"Ref": ...}`` / ``{"Fn::X": ...}`` dicts, so this module
only deals with those. What a ``Ref`` or ``GetAtt`` resolves to is asked of a callback
(the provisioner knows which resources it created), which keeps this module pure.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

NO_VALUE = object()
"""``AWS::NoValue``: the property is removed where it appears."""

RefLookup = Callable[[str], Any]
AttLookup = Callable[[str, str], Any]

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class IntrinsicError(ValueError):
    """An intrinsic function that cannot be resolved locally."""


def pseudo_parameters(*, region: str, account_id: str, stack_name: str, stack_id: str) -> dict[str, Any]:
    """What ``Ref AWS::...`` gives in a stack of that name, account and region."""
    return {
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/{stack_id}",
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::NotificationARNs": [],
        "AWS::NoValue": NO_VALUE,
    }


def ref_target(value: Any) -> str | None:
    """The name that ``Ref X`` names, else None."""
    if isinstance(value, Mapping) and set(value) == {"Ref"}:
        return str(value["Ref"])
    return None


def arn_target(value: Any) -> str | None:
    """The logical id that ``Fn::GetAtt [X, Arn]`` names, else None."""
    if isinstance(value, Mapping) and set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        parts = target if isinstance(target, list) else str(target).split(".", 1)
        if len(parts) == 2 and parts[1] == "Arn":
            return str(parts[0])
    return None


def cfn_string(value: Any) -> str:
    """An environment or attribute value the way CloudFormation stringifies it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


class Resolver:
    """Resolves intrinsic functions against parameters, conditions, mappings and resources."""

    def __init__(
        self,
        *,
        ref: RefLookup,
        get_att: AttLookup,
        conditions: Mapping[str, Any] | None = None,
        mappings: Mapping[str, Any] | None = None,
        region: str = "us-east-1",
    ) -> None:
        self._ref = ref
        self._get_att = get_att
        self._conditions = dict(conditions or {})
        self._mappings = dict(mappings or {})
        self._region = region
        self._condition_values: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._condition_values:
            if name not in self._conditions:
                raise IntrinsicError(f"unknown condition {name!r}")
            self._condition_values[name] = bool(self.resolve(self._conditions[name]))
        return self._condition_values[name]

    def resolve(self, value: Any) -> Any:
        """The value with every intrinsic function replaced by its result."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(str(argument))
            if key == "Condition" and isinstance(argument, str):
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key[4:], argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def _function(self, name: str, argument: Any) -> Any:  # noqa: PLR0911, PLR0912
        if name == "GetAtt":
            parts = argument.split(".", 1) if isinstance(argument, str) else self.resolve(argument)
            return self._get_att(str(parts[0]), str(parts[1]))
        if name == "Sub":
            return self._sub(argument)
        if name == "If":
            condition, if_true, if_false = argument
            return self.resolve(if_true if self.condition(condition) else if_false)
        args = self.resolve(argument)
        if name == "Join":
            separator, items = args
            return str(separator).join(str(item) for item in items)
        if name == "Select":
            index, items = args
            return items[int(index)]
        if name == "Split":
            separator, text = args
            return str(text).split(str(separator))
        if name == "Equals":
            left, right = args
            return str(left) == str(right)
        if name == "Not":
            return not args[0]
        if name == "And":
            return all(args)
        if name == "Or":
            return any(args)
        if name == "FindInMap":
            mapping, key, attribute = args
            return self._mappings[mapping][key][attribute]
        if name == "Base64":
            return base64.b64encode(str(args).encode()).decode()
        if name == "GetAZs":
            return [f"{self._region}{zone}" for zone in "abc"]
        if name == "ImportValue":
            raise IntrinsicError(f"Fn::ImportValue {args!r} cannot be resolved in a local stack")
        raise IntrinsicError(f"unsupported intrinsic function Fn::{name}")

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            template, variables = argument[0], self.resolve(argument[1])
        else:
            template, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return str(self._get_att(logical_id, attribute))
            return str(self._ref(name))

        # "${!Literal}" is how a template writes a literal "${Literal}".
        return _SUB_VARIABLE.sub(replace, str(template)).replace("${!", "${")
