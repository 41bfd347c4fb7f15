"""IAM, evaluated locally: what each AWS call a function makes needs (service, action, resource ARN),
what a role's policy statements allow, and a recorder of the calls made through boto3.

moto does not enforce IAM, so a call the template does not grant works in every local test and fails
in AWS. Recording the calls the functions really make and checking them against the roles SAM makes
of the template (devtools.sam_translate) closes that gap.

The evaluation is IAM's for identity policies without permission boundaries or SCPs: an explicit Deny
wins, then an Allow whose Action and Resource (with `*` and `?` wildcards) match. An Allow with a
Condition grants only when the condition holds for the request's context keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlparse

import boto3

# --- Policies -------------------------------------------------------------------------------------------


@cache
def _pattern(text: str, case_sensitive: bool) -> re.Pattern[str]:
    expression = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(expression, 0 if case_sensitive else re.IGNORECASE | re.DOTALL)


def wildcard_match(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    return _pattern(pattern, case_sensitive).fullmatch(value) is not None


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


_NEGATED = ("StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike")


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    """The condition operators a policy of ours uses; an unknown operator never holds."""
    for operator, tests in condition.items():
        for key, expected in tests.items():
            wanted = [str(item) for item in _listed(expected)]
            present = key in context
            actual = [str(item) for item in _listed(context.get(key))]
            if operator in _NEGATED and not present:
                continue  # IAM: a negated operator holds when the key is absent
            if not present:
                return False
            if operator in ("StringEquals", "ArnEquals"):
                ok = any(value in wanted for value in actual)
            elif operator in ("StringNotEquals", "ArnNotEquals"):
                ok = not any(value in wanted for value in actual)
            elif operator in ("StringLike", "ArnLike"):
                ok = any(wildcard_match(p, value) for p in wanted for value in actual)
            elif operator in ("StringNotLike", "ArnNotLike"):
                ok = not any(wildcard_match(p, value) for p in wanted for value in actual)
            elif operator == "Bool":
                ok = any(value.lower() in [w.lower() for w in wanted] for value in actual)
            else:
                return False
            if not ok:
                return False
    return True


def _matches(statement: Mapping[str, Any], action: str, resource: str) -> bool:
    if "NotAction" in statement:
        action_ok = not any(
            wildcard_match(p, action, case_sensitive=False) for p in _listed(statement["NotAction"])
        )
    else:
        action_ok = any(
            wildcard_match(p, action, case_sensitive=False) for p in _listed(statement.get("Action"))
        )
    if "NotResource" in statement:
        resource_ok = not any(wildcard_match(p, resource) for p in _listed(statement["NotResource"]))
    else:
        resource_ok = any(wildcard_match(p, resource) for p in _listed(statement.get("Resource")))
    return action_ok and resource_ok


def decision(
    statements: Sequence[Mapping[str, Any]],
    action: str,
    resource: str,
    context: Mapping[str, Any] | None = None,
) -> str:
    """ "Deny" (an explicit deny), "Allow", or "ImplicitDeny" for one action on one resource."""
    context = context or {}
    allowed = False
    for statement in statements:
        if not _matches(statement, action, resource):
            continue
        holds = _condition_holds(statement.get("Condition") or {}, context)
        if statement.get("Effect") == "Deny" and holds:
            return "Deny"
        if statement.get("Effect") == "Allow" and holds:
            allowed = True
    return "Allow" if allowed else "ImplicitDeny"


def role_statements(
    translated: Mapping[str, Any], function_id: str, resolved: Callable[[Any], Any]
) -> list[dict[str, Any]]:
    """The inline policy statements of the role SAM made for the function, their intrinsic functions
    evaluated by `resolved` (e.g. devtools.sam_translate.resolve against a stack's names). Managed policies (AWSLambdaBasicExecutionRole and the like) are not counted: they serve
    the Lambda service (logs, event source polling), never a call of the function's own code."""
    resources = translated["Resources"]
    role = resources[function_id]["Properties"]["Role"]
    if not (isinstance(role, Mapping) and "Fn::GetAtt" in role):
        raise ValueError(f"{function_id} does not use a role of the stack: {role!r}")
    role_id = role["Fn::GetAtt"][0]
    statements: list[dict[str, Any]] = []
    for policy in resolved(resources[role_id]["Properties"].get("Policies") or []):
        for statement in _listed(policy["PolicyDocument"]["Statement"]):
            statements.append(dict(statement))
    return statements


# --- Calls ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsCall:
    """One request a function made: the IAM actions it needs, each on its resource ARNs."""

    service: str
    operation: str
    needs: tuple[tuple[str, str], ...]  # (IAM action, resource ARN)
    problem: str | None = None  # set when the call's resources could not be told

    def __str__(self) -> str:
        return f"{self.service}:{self.operation}"


SecretArnOf = Callable[[str], str]


@dataclass(frozen=True)
class Account:
    region: str = "us-east-1"
    account: str = "123456789012"
    partition: str = "aws"

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"


# DynamoDB's transactions are authorised item by item, by the action each item stands for.
_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
# SQS authorises a batch by the single-message action.
_SQS_BATCH = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def _table_arn(where: Account, table: str) -> str:
    return table if table.startswith("arn:") else where.arn("dynamodb", f"table/{table}")


def needs_of(
    service: str, operation: str, params: Mapping[str, Any], where: Account, secret_arn: SecretArnOf
) -> tuple[tuple[str, str], ...]:
    """The (action, resource) pairs IAM checks for one call. Raises NotImplementedError for a call
    this module does not know yet: teach it the call's resource rather than skip it."""
    if service == "dynamodb":
        if operation in ("BatchWriteItem", "BatchGetItem"):
            return tuple((f"dynamodb:{operation}", _table_arn(where, t)) for t in params["RequestItems"])
        if operation in ("TransactWriteItems", "TransactGetItems"):
            return tuple(
                (f"dynamodb:{_TRANSACT_ACTIONS[kind]}", _table_arn(where, request["TableName"]))
                for item in params["TransactItems"]
                for kind, request in item.items()
            )
        if "TableName" in params:
            arn = _table_arn(where, params["TableName"])
            if params.get("IndexName"):
                arn += f"/index/{params['IndexName']}"
            return ((f"dynamodb:{operation}", arn),)
    elif service == "secretsmanager" and "SecretId" in params:
        secret = str(params["SecretId"])
        return ((f"secretsmanager:{operation}", secret if secret.startswith("arn:") else secret_arn(secret)),)
    elif service == "events" and operation == "PutEvents":
        buses = {str(entry.get("EventBusName") or "default") for entry in params["Entries"]}
        return tuple(
            ("events:PutEvents", bus if bus.startswith("arn:") else where.arn("events", f"event-bus/{bus}"))
            for bus in sorted(buses)
        )
    elif service == "sqs" and "QueueUrl" in params:
        account, name = urlparse(str(params["QueueUrl"])).path.strip("/").split("/")[-2:]
        arn = f"arn:{where.partition}:sqs:{where.region}:{account}:{name}"
        return ((f"sqs:{_SQS_BATCH.get(operation, operation)}", arn),)
    elif service == "sqs" and operation == "GetQueueUrl":
        return (("sqs:GetQueueUrl", where.arn("sqs", str(params["QueueName"]))),)
    raise NotImplementedError(f"devtools.iam does not know the resource of {service}:{operation}")


@dataclass
class CallRecorder:
    """Collects every call made through boto3's default session while `recording()` is active,
    under the label set by `working_for` (e.g. the function being invoked)."""

    where: Account
    secret_arn: SecretArnOf
    calls: dict[str, list[AwsCall]] = field(default_factory=dict)
    label: str | None = None

    @contextmanager
    def working_for(self, label: str) -> Iterator[None]:
        self.label = label
        try:
            yield
        finally:
            self.label = None

    def _record(self, params: Mapping[str, Any], model: Any, **_: Any) -> None:
        if self.label is None:
            return
        service, operation = model.service_model.signing_name, model.name
        try:
            call = AwsCall(
                service, operation, needs_of(service, operation, params, self.where, self.secret_arn)
            )
        except Exception as error:  # reported as the call's problem, never raised into the function
            call = AwsCall(service, operation, (), problem=str(error))
        self.calls.setdefault(self.label, []).append(call)

    @contextmanager
    def recording(self) -> Iterator[CallRecorder]:
        """Swaps boto3's default session for one that reports each call (clients made before it are
        not seen: drop cached clients first, e.g. sbt_billing.bootstrap.clients.forget_clients)."""
        session = boto3.Session()
        session.events.register("provide-client-params.*.*", self._record)
        previous = boto3.DEFAULT_SESSION
        boto3.DEFAULT_SESSION = session
        try:
            yield self
        finally:
            boto3.DEFAULT_SESSION = previous
