"""CloudFormation's intrinsic functions, evaluated against what is known of one stack: its parameter
values, the template's conditions, and (where the caller made them, e.g. on moto) what `Ref` and
`Fn::GetAtt` give for its resources."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class Unresolvable(Exception):
    """A value refers to something the stack's names do not say."""


NO_VALUE = object()  # what AWS::NoValue resolves to: the enclosing key or list item disappears


@dataclass
class StackNames:
    """What CloudFormation would know about one stack: parameter values, pseudo parameters, and what
    `Ref` and `Fn::GetAtt` give for the resources the caller made (e.g. on moto)."""

    parameters: Mapping[str, str]
    refs: Mapping[str, str]  # logical id -> what Ref gives (a table's name, a queue's URL...)
    attributes: Mapping[tuple[str, str], str]  # (logical id, attribute) -> value
    conditions: Mapping[str, Any] = field(default_factory=dict)  # the template's Conditions section
    mappings: Mapping[str, Any] = field(default_factory=dict)  # the template's Mappings section
    region: str = "us-east-1"
    account: str = "123456789012"
    partition: str = "aws"
    stack_name: str = "sbt-stripe-billing"

    def pseudo(self) -> dict[str, str]:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
        }

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        for source in (self.pseudo(), self.parameters, self.refs):
            if name in source:
                return source[name]
        raise Unresolvable(f"Ref {name}")

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            raise Unresolvable(f"condition {name}")
        return bool(resolve(self.conditions[name], self))


def resolve(value: Any, names: StackNames) -> Any:
    """`value` with every intrinsic function evaluated (Ref, Fn::GetAtt, Fn::Sub, Fn::If, Fn::Equals,
    Fn::Not, Fn::And, Fn::Or, Fn::Select, Fn::Split, Fn::Join, Condition); AWS::NoValue removes the key
    or list item it stands in. Raises Unresolvable for anything the names do not say."""
    if isinstance(value, list):
        items = [resolve(item, names) for item in value]
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        function = _FUNCTIONS.get(key)
        if function is not None:
            return function(argument, names)
        if key.startswith("Fn::"):
            raise Unresolvable(key)
    resolved = {key: resolve(item, names) for key, item in value.items()}
    return {key: item for key, item in resolved.items() if item is not NO_VALUE}


def _get_att(argument: Any, names: StackNames) -> str:
    logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
    key = (str(logical_id), str(resolve(attribute, names)))
    if key not in names.attributes:
        raise Unresolvable(f"Fn::GetAtt {key[0]}.{key[1]}")
    return names.attributes[key]


def _sub(argument: Any, names: StackNames) -> str:
    text, variables = (argument, {}) if isinstance(argument, str) else argument
    local = {name: resolve(item, names) for name, item in variables.items()}
    result, rest = "", str(text)
    while "${" in rest:
        before, _, after = rest.partition("${")
        reference, _, rest = after.partition("}")
        result += before
        if reference.startswith("!"):
            result += "${" + reference[1:] + "}"
        elif reference in local:
            result += str(local[reference])
        elif "." in reference and not reference.startswith("AWS::"):
            result += _get_att(reference, names)
        else:
            result += str(names.ref(reference))
    return result + rest


def _if(argument: Any, names: StackNames) -> Any:
    condition, when_true, when_false = argument
    return resolve(when_true if names.condition(condition) else when_false, names)


def _text(value: Any) -> str:
    """A value as CloudFormation compares it: a parameter's string (true/false, a list comma-joined)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(item) for item in value)
    return str(value)


def _find_in_map(argument: Any, names: StackNames) -> Any:
    mapping, top, second = (resolve(item, names) for item in argument)
    try:
        return names.mappings[mapping][top][second]
    except KeyError:
        raise Unresolvable(f"Fn::FindInMap {mapping}.{top}.{second}") from None


def _select(argument: Any, names: StackNames) -> Any:
    index, items = argument
    return resolve(items, names)[int(resolve(index, names))]


def _split(argument: Any, names: StackNames) -> list[str]:
    separator, text = argument
    return str(resolve(text, names)).split(separator)


def _join(argument: Any, names: StackNames) -> str:
    separator, items = argument
    return str(separator).join(str(item) for item in resolve(items, names))


_FUNCTIONS: dict[str, Callable[[Any, StackNames], Any]] = {
    "Ref": lambda argument, names: names.ref(str(argument)),
    "Condition": lambda argument, names: names.condition(str(argument)),
    "Fn::GetAtt": _get_att,
    "Fn::Sub": _sub,
    "Fn::If": _if,
    "Fn::Equals": lambda argument, names: (
        _text(resolve(argument[0], names)) == _text(resolve(argument[1], names))
    ),
    "Fn::FindInMap": _find_in_map,
    "Fn::Not": lambda argument, names: not resolve(argument[0], names),
    "Fn::And": lambda argument, names: all(resolve(item, names) for item in argument),
    "Fn::Or": lambda argument, names: any(resolve(item, names) for item in argument),
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::Join": _join,
}
