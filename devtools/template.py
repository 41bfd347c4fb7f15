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

from devtools.intrinsics import NO_VALUE, StackNames, Unresolvable
from devtools.intrinsics import resolve as resolve_intrinsics

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
    """Resolves the intrinsics that need no resource attribute (Ref, Fn::Sub, Fn::Select, Fn::Split,
    Fn::Join) against `names`, and, given the `template` (its Conditions and Mappings), Fn::If, the
    condition functions and Fn::FindInMap; AWS::NoValue resolves to NO_VALUE (a key or list item that
    is not there).

    `names` maps parameter names (and, where the caller knows them, resources' logical ids) to values.
    Raises UnresolvedError for anything else.
    """
    stack = StackNames(
        parameters=names,
        refs={},
        attributes={},
        conditions=(template or {}).get("Conditions") or {},
        mappings=(template or {}).get("Mappings") or {},
    )
    try:
        return resolve_intrinsics(value, stack)
    except Unresolvable as error:
        raise UnresolvedError(str(error)) from None


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
                resolved = resolve(value, names, template)
            except UnresolvedError:
                unresolved[variable] = value
                continue
            if resolved is not NO_VALUE:
                environment[variable] = _as_parameter_string(resolved)
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


# --- Which function a sample event reaches --------------------------------------------------------------


def api_routes(template: Mapping[str, Any] | None = None) -> dict[tuple[str, str], str]:
    """(path, METHOD) of each Api event source -> the function serving it."""
    template = template if template is not None else _template()
    return {
        (str(source["Properties"]["Path"]), str(source["Properties"]["Method"]).upper()): function_id
        for function_id, properties in _functions(template).items()
        for source in (properties.get("Events") or {}).values()
        if source.get("Type") == "Api"
    }


def queue_consumers(template: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Logical id of each queue an SQS event source reads -> the function it feeds."""
    template = template if template is not None else _template()
    consumers: dict[str, str] = {}
    for function_id, properties in _functions(template).items():
        for source in (properties.get("Events") or {}).values():
            queue = (source.get("Properties") or {}).get("Queue")
            if source.get("Type") == "SQS" and isinstance(queue, Mapping) and "Fn::GetAtt" in queue:
                consumers[str(queue["Fn::GetAtt"][0])] = function_id
    return consumers


def schedule_rules(template: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Logical id of each Schedule event source's rule (`<function id><event id>`) -> its function."""
    template = template if template is not None else _template()
    return {
        f"{function_id}{event_id}": function_id
        for function_id, properties in _functions(template).items()
        for event_id, source in (properties.get("Events") or {}).items()
        if source.get("Type") == "Schedule"
    }


def sample_targets(
    event: Mapping[str, Any],
    kind: str,
    routes: list[EventRoute],
    template: Mapping[str, Any] | None = None,
) -> list[str]:
    """The functions the deployed stack hands a sample event of this `kind` (devtools.local_run's
    `delivery`) to: by the rules' patterns, the API's routes, the queue named in an SQS record's
    source ARN or the rule named in a scheduled event (deployed names hold the logical id between
    dashes, `<stack>-<logical id>-<suffix>`)."""
    if kind == "eventbridge":
        return [route.function_id for route in routes_for(event, routes)]
    if kind == "api":
        target = api_routes(template).get((str(event.get("resource")), str(event.get("httpMethod"))))
        return [target] if target else []
    if kind == "sqs":
        names = {str(record.get("eventSourceARN", "")).rsplit(":", 1)[-1] for record in event["Records"]}
        owners = queue_consumers(template)
    elif kind == "schedule":
        names = {str(arn).rsplit("/", 1)[-1] for arn in event.get("resources", [])}
        owners = schedule_rules(template)
    else:
        raise ValueError(f"unknown delivery {kind!r}")
    return sorted(
        {
            function_id
            for name in names
            for logical_id, function_id in owners.items()
            if logical_id in name.split("-")
        }
    )


# --- Dead letters ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetterSource:
    """One dead-letter queue and the one source whose failures it holds, in that source's format."""

    queue_id: str  # the dead-letter queue's logical id
    kind: str  # "queue": a queue's records received too often; "rule": events a rule could not deliver;
    # "async": Lambda's failure records of a function's asynchronous invocations
    source: (
        str  # the queue's, the rule's (`<function id><event id>` for a function's event) or the function's id
    )
    target_kind: str  # where its messages go back to: "queue" or "function"
    target: str  # that queue's or function's logical id


def _get_att_id(value: Any) -> str | None:
    if isinstance(value, Mapping) and "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    return None


def dead_letter_sources(template: Mapping[str, Any] | None = None) -> list[DeadLetterSource]:
    """Every dead-letter queue the template configures, with its source and where a redrive sends."""
    template = template if template is not None else _template()
    resources = template.get("Resources", {})
    queues = set(queue_ids(template))
    found: list[DeadLetterSource] = []
    for queue_id in sorted(queues):
        redrive = resources[queue_id].get("Properties", {}).get("RedrivePolicy")
        if redrive:
            dlq = _get_att_id(redrive.get("deadLetterTargetArn"))
            found.append(DeadLetterSource(str(dlq), "queue", queue_id, "queue", queue_id))
    for rule_id, resource in resources.items():
        if resource.get("Type") != "AWS::Events::Rule":
            continue
        for target in resource.get("Properties", {}).get("Targets", []):
            dlq = _get_att_id((target.get("DeadLetterConfig") or {}).get("Arn"))
            target_id = _get_att_id(target.get("Arn"))
            if dlq and target_id:
                kind = "queue" if target_id in queues else "function"
                found.append(DeadLetterSource(dlq, "rule", rule_id, kind, target_id))
    for function_id, properties in _functions(template).items():
        for event_id, source in (properties.get("Events") or {}).items():
            dlq = _get_att_id(((source.get("Properties") or {}).get("DeadLetterConfig") or {}).get("Arn"))
            if dlq:
                found.append(
                    DeadLetterSource(dlq, "rule", f"{function_id}{event_id}", "function", function_id)
                )
        on_failure = ((properties.get("EventInvokeConfig") or {}).get("DestinationConfig") or {}).get(
            "OnFailure"
        )
        dlq = _get_att_id((on_failure or {}).get("Destination"))
        if dlq and (on_failure or {}).get("Type") == "SQS":
            found.append(DeadLetterSource(dlq, "async", function_id, "function", function_id))
    return found
