"""What template.yaml says, as data the tests and the local run use instead of copies of it.

The template stays the one source of truth for the tables' key schemas, the EventBridge rules that
route events to functions, and each function's handler and environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml  # no types-PyYAML in the dev group

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"

# The short-form tags of CloudFormation intrinsic functions, and the long form each stands for.
_INTRINSICS = {
    "!Ref": "Ref",
    "!Condition": "Condition",
    "!GetAtt": "Fn::GetAtt",
    "!Sub": "Fn::Sub",
    "!If": "Fn::If",
    "!Equals": "Fn::Equals",
    "!Not": "Fn::Not",
    "!And": "Fn::And",
    "!Or": "Fn::Or",
    "!Join": "Fn::Join",
    "!Select": "Fn::Select",
    "!Split": "Fn::Split",
    "!FindInMap": "Fn::FindInMap",
    "!GetAZs": "Fn::GetAZs",
    "!ImportValue": "Fn::ImportValue",
    "!Base64": "Fn::Base64",
    "!Cidr": "Fn::Cidr",
    "!Transform": "Fn::Transform",
    "!Length": "Fn::Length",
    "!ToJsonString": "Fn::ToJsonString",
}


class CloudFormationLoader(yaml.SafeLoader):
    """A safe YAML loader that reads CloudFormation's short tags as their long, plain-data form."""


def _construct_intrinsic(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    name = _INTRINSICS[node.tag]
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "Fn::GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


for _tag in _INTRINSICS:
    CloudFormationLoader.add_constructor(_tag, _construct_intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as stream:
        document = yaml.load(stream, Loader=CloudFormationLoader)  # a SafeLoader subclass
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a template")
    return document


@cache
def _template() -> dict[str, Any]:
    return load_template()


class UnresolvedError(Exception):
    """A value depends on something only CloudFormation knows (a resource's name, an account id...)."""


def parameter_values(
    template: Mapping[str, Any], overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each parameter's default (as CloudFormation passes it: a string), replaced by any override."""
    unknown = set(overrides or {}) - set(template.get("Parameters", {}))
    if unknown:
        raise KeyError(f"the template has no parameter {', '.join(sorted(unknown))}")
    values: dict[str, str] = {}
    for name, spec in template.get("Parameters", {}).items():
        if "Default" in spec:
            values[name] = _as_parameter_string(spec["Default"])
    values.update(overrides or {})
    return values


def _as_parameter_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def resolve(value: Any, names: Mapping[str, str], template: Mapping[str, Any] | None = None) -> Any:
    """Resolves intrinsics against `names`: Ref, Sub without lookups of attributes, and, given the
    `template` (its Conditions and Mappings), If, Equals, Not, And, Or, Condition and FindInMap.

    `names` maps parameter names (and, where the caller knows them, resources' logical ids) to values.
    Raises UnresolvedError for anything else.
    """
    if isinstance(value, list):
        return [resolve(item, names, template) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref":
            if argument in names:
                return names[argument]
            raise UnresolvedError(f"Ref {argument}")
        if key == "Fn::Sub":
            return _substitute(argument, names, template)
        if template is not None and key in _CONDITIONALS:
            return _CONDITIONALS[key](argument, names, template)
        if key.startswith("Fn::") or key == "Condition":
            raise UnresolvedError(key)
    return {key: resolve(item, names, template) for key, item in value.items()}


def condition_value(name: str, names: Mapping[str, str], template: Mapping[str, Any]) -> bool:
    """The template's condition `name`, evaluated for these parameter values."""
    conditions = template.get("Conditions", {})
    if name not in conditions:
        raise UnresolvedError(f"Condition {name}")
    return bool(resolve(conditions[name], names, template))


def _if(argument: Any, names: Mapping[str, str], template: Mapping[str, Any]) -> Any:
    condition, when_true, when_false = argument
    chosen = when_true if condition_value(condition, names, template) else when_false
    if chosen == {"Ref": "AWS::NoValue"}:
        return None
    return resolve(chosen, names, template)


def _equals(argument: Any, names: Mapping[str, str], template: Mapping[str, Any]) -> bool:
    left, right = (_as_parameter_string(resolve(item, names, template)) for item in argument)
    return left == right


def _find_in_map(argument: Any, names: Mapping[str, str], template: Mapping[str, Any]) -> Any:
    mapping, top, second = (resolve(item, names, template) for item in argument)
    try:
        return template["Mappings"][mapping][top][second]
    except KeyError:
        raise UnresolvedError(f"Fn::FindInMap {mapping}.{top}.{second}") from None


_CONDITIONALS: dict[str, Any] = {
    "Fn::If": _if,
    "Fn::Equals": _equals,
    "Fn::Not": lambda argument, names, template: not resolve(argument[0], names, template),
    "Fn::And": lambda argument, names, template: all(resolve(item, names, template) for item in argument),
    "Fn::Or": lambda argument, names, template: any(resolve(item, names, template) for item in argument),
    "Condition": lambda argument, names, template: condition_value(argument, names, template),
    "Fn::FindInMap": _find_in_map,
}


def _substitute(argument: Any, names: Mapping[str, str], template: Mapping[str, Any] | None = None) -> str:
    if isinstance(argument, list):
        text, variables = argument
        names = {**names, **{key: resolve(item, names, template) for key, item in variables.items()}}
    else:
        text = argument
    result, rest = "", str(text)
    while "${" in rest:
        before, _, after = rest.partition("${")
        reference, _, rest = after.partition("}")
        result += before
        if reference.startswith("!"):
            result += "${" + reference[1:] + "}"
        elif reference in names:
            result += names[reference]
        else:
            raise UnresolvedError(f"Fn::Sub ${{{reference}}}")
    return result + rest


# --- Tables -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableDefinition:
    logical_id: str
    create_table: dict[str, Any]  # the keyword arguments of boto3's DynamoDB create_table
    ttl_attribute: str | None  # enable separately: update_time_to_live

    @property
    def name(self) -> str:
        return str(self.create_table["TableName"])


def table_definitions(
    suffix: str = "", template: Mapping[str, Any] | None = None
) -> dict[str, TableDefinition]:
    """Each AWS::DynamoDB::Table of the template, by logical id, named `<logical id><suffix>`."""
    template = template if template is not None else _template()
    tables: dict[str, TableDefinition] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        properties = resource.get("Properties", {})
        billing_mode = properties.get("BillingMode", "PROVISIONED")
        kwargs: dict[str, Any] = {
            "TableName": f"{logical_id}{suffix}",
            "KeySchema": [dict(key) for key in properties["KeySchema"]],
            "AttributeDefinitions": [dict(attribute) for attribute in properties["AttributeDefinitions"]],
            "BillingMode": billing_mode,
        }
        if billing_mode == "PROVISIONED":
            kwargs["ProvisionedThroughput"] = dict(properties["ProvisionedThroughput"])
        for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if properties.get(kind):
                kwargs[kind] = [_index(index, billing_mode) for index in properties[kind]]
        ttl = properties.get("TimeToLiveSpecification") or {}
        ttl_attribute = ttl.get("AttributeName") if ttl.get("Enabled") in (True, "true") else None
        tables[logical_id] = TableDefinition(logical_id, kwargs, ttl_attribute)
    return tables


def queue_ids(template: Mapping[str, Any] | None = None) -> list[str]:
    """The logical ids of the template's SQS queues."""
    template = template if template is not None else _template()
    return [
        logical_id
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == "AWS::SQS::Queue"
    ]


def _index(index: Mapping[str, Any], billing_mode: str) -> dict[str, Any]:
    result: dict[str, Any] = {
        "IndexName": index["IndexName"],
        "KeySchema": [dict(key) for key in index["KeySchema"]],
        "Projection": dict(index.get("Projection", {"ProjectionType": "ALL"})),
    }
    if billing_mode == "PROVISIONED" and "ProvisionedThroughput" in index:
        result["ProvisionedThroughput"] = dict(index["ProvisionedThroughput"])
    return result


# --- Functions and the rules that route events to them -------------------------------------------------


def _functions(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each AWS::Serverless::Function's properties with the template's Globals merged in."""
    globals_ = template.get("Globals", {}).get("Function", {})
    functions: dict[str, dict[str, Any]] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            functions[logical_id] = _merge(globals_, resource.get("Properties", {}))
    return functions


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rule: maps merge key by key, anything else in the resource replaces the global."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) and not _is_intrinsic(value):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _is_intrinsic(value: Mapping[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)) in {"Ref", "Condition", *_INTRINSICS.values()}


@dataclass(frozen=True)
class EventRoute:
    """One EventBridge rule: the events matching `pattern` go to `function_id`, straight or through
    the SQS queue `queue_id` (a rule resource whose target is a queue a function consumes)."""

    function_id: str
    rule_id: str  # the event's name under the function's Events, or the rule resource's logical id
    event_bus: Any
    pattern: dict[str, Any]
    properties: dict[str, Any] = field(default_factory=dict)  # the retry policy and dead-letter config
    queue_id: str | None = None
    batch_size: int = 1  # records per invocation, for a queue
    maximum_concurrency: int | None = None  # the queue's event source mapping's limit (resolved)

    def matches(self, event: Mapping[str, Any]) -> bool:
        return pattern_matches(self.pattern, event)


def event_routes(
    parameter_overrides: Mapping[str, str] | None = None, template: Mapping[str, Any] | None = None
) -> list[EventRoute]:
    """Every EventBridgeRule / CloudWatchEvent source of every function, its pattern resolved."""
    template = template if template is not None else _template()
    names = parameter_values(template, parameter_overrides)
    routes: list[EventRoute] = []
    for function_id, properties in _functions(template).items():
        for rule_id, source in (properties.get("Events") or {}).items():
            if source.get("Type") not in ("EventBridgeRule", "CloudWatchEvent"):
                continue
            rule = source.get("Properties", {})
            try:
                bus = resolve(rule.get("EventBusName", "default"), names, template)
            except UnresolvedError:
                bus = rule.get("EventBusName")
            routes.append(
                EventRoute(function_id, rule_id, bus, resolve(rule["Pattern"], names, template), dict(rule))
            )
    routes += _queued_routes(template, names)
    return routes


def _queued_routes(template: Mapping[str, Any], names: Mapping[str, str]) -> list[EventRoute]:
    """AWS::Events::Rule resources whose target is a queue that a function's SQS event consumes."""
    consumers: dict[str, tuple[str, dict[str, Any]]] = {}
    for function_id, properties in _functions(template).items():
        for source in (properties.get("Events") or {}).values():
            if source.get("Type") == "SQS":
                queue = source.get("Properties", {}).get("Queue")
                if isinstance(queue, Mapping) and "Fn::GetAtt" in queue:
                    consumers[queue["Fn::GetAtt"][0]] = (function_id, dict(source["Properties"]))
    routes: list[EventRoute] = []
    for rule_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Events::Rule":
            continue
        rule = resource.get("Properties", {})
        for target in rule.get("Targets", []):
            arn = target.get("Arn")
            queue_id = arn["Fn::GetAtt"][0] if isinstance(arn, Mapping) and "Fn::GetAtt" in arn else None
            if queue_id not in consumers:
                raise ValueError(f"rule {rule_id} targets {arn!r}, which no function consumes")
            function_id, mapping = consumers[queue_id]
            try:
                bus = resolve(rule.get("EventBusName", "default"), names, template)
            except UnresolvedError:
                bus = rule.get("EventBusName")
            limit = (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency")
            routes.append(
                EventRoute(
                    function_id,
                    rule_id,
                    bus,
                    resolve(rule["EventPattern"], names, template),
                    {key: value for key, value in target.items() if key not in ("Id", "Arn")},
                    queue_id=queue_id,
                    batch_size=int(mapping.get("BatchSize", 10)),
                    maximum_concurrency=None if limit is None else int(resolve(limit, names, template)),
                )
            )
    return routes


def routes_for(event: Mapping[str, Any], routes: list[EventRoute]) -> list[EventRoute]:
    return [route for route in routes if route.matches(event)]


def pattern_matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """EventBridge's matching for the parts of the pattern language a rule of ours can use:
    exact values, prefix / suffix / anything-but / exists / numeric equality, nested objects."""
    for key, expected in pattern.items():
        present = key in event
        actual = event.get(key)
        if isinstance(expected, Mapping):
            if not isinstance(actual, Mapping) or not pattern_matches(expected, actual):
                return False
            continue
        if not isinstance(expected, list):
            raise ValueError(f"pattern value for {key!r} must be a list or an object")
        candidates = actual if isinstance(actual, list) else [actual]
        if not any(_value_matches(test, value, present) for test in expected for value in candidates):
            return False
    return True


def _value_matches(test: Any, value: Any, present: bool) -> bool:
    if not isinstance(test, Mapping):
        return present and value == test
    ((operator, operand),) = test.items()
    if operator == "exists":
        return present is bool(operand)
    if not present:
        return False
    if operator == "prefix":
        return isinstance(value, str) and value.startswith(operand)
    if operator == "suffix":
        return isinstance(value, str) and value.endswith(operand)
    if operator == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(operand).lower()
    if operator == "anything-but":
        excluded = operand if isinstance(operand, list) else [operand]
        return value not in excluded
    raise ValueError(f"pattern operator {operator!r} is not supported by the local router")


# --- Handlers and their environment ---------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionHandler:
    logical_id: str
    handler: str  # "module.function", relative to code_uri
    code_uri: str
    environment: dict[str, str]  # the variables whose values could be resolved
    unresolved: dict[str, Any]  # the others, as the template writes them (e.g. {"Ref": "AccountsTable"})
    timeout: int
    memory_size: str | None  # None when the template's value could not be resolved

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def function(self) -> str:
        return self.handler.rsplit(".", 1)[1]


def _resolved_or_none(value: Any, names: Mapping[str, str], template: Mapping[str, Any]) -> str | None:
    try:
        return _as_parameter_string(resolve(value, names, template))
    except UnresolvedError:
        return None


def function_handlers(
    parameter_overrides: Mapping[str, str] | None = None,
    resource_names: Mapping[str, str] | None = None,
    template: Mapping[str, Any] | None = None,
) -> dict[str, FunctionHandler]:
    """Each function's handler and environment (Globals merged, parameters resolved).

    `resource_names` maps resources' logical ids to the names `Ref` gives them where the caller made
    them (e.g. the local tables), so that those variables resolve too.
    """
    template = template if template is not None else _template()
    names = {**parameter_values(template, parameter_overrides), **(resource_names or {})}
    handlers: dict[str, FunctionHandler] = {}
    for logical_id, properties in _functions(template).items():
        environment: dict[str, str] = {}
        unresolved: dict[str, Any] = {}
        for variable, value in (properties.get("Environment", {}).get("Variables") or {}).items():
            try:
                environment[variable] = _as_parameter_string(resolve(value, names, template))
            except UnresolvedError:
                unresolved[variable] = value
        handlers[logical_id] = FunctionHandler(
            logical_id=logical_id,
            handler=str(properties["Handler"]),
            code_uri=str(properties.get("CodeUri", ".")),
            environment=environment,
            unresolved=unresolved,
            timeout=int(properties.get("Timeout", 3)),
            memory_size=_resolved_or_none(properties.get("MemorySize", 128), names, template),
        )
    return handlers
