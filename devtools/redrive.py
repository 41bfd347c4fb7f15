"""Sends dead letters back where they came from, one dead-letter queue at a time, and only there.

Each dead-letter queue of the stack holds the failures of one source (template.yaml, checked by
tests/test_template.py), in that source's format:

* a queue's dead-letter queue: its records, received too often (the EventBridge event, or the seat
  sync's {"tenantId"}): sent back to that queue;
* a rule's dead-letter queue: the events the rule could not deliver: sent to the rule's target (the
  lifecycle function's queue, or the function itself, invoked asynchronously as the rule would);
* a function's failure queue: Lambda's failure records of its asynchronous invocations: the event
  under `requestPayload` is invoked again, asynchronously, on that function.

Before anything is sent, each message must be what its source sends: an event the source's rule
matches (so a tenant-deletion event that somehow sits in the provisioning queue's dead letters is
refused, never delivered to a function that would act on it), a failure record of that function.
A refused message stays in its queue and is reported; `--dry-run` only reports.

    scripts/redrive --stack sbt-stripe-billing --list
    scripts/redrive --stack sbt-stripe-billing TenantDeletedDeadLetterQueue --dry-run
    scripts/redrive --stack sbt-stripe-billing TenantDeletedDeadLetterQueue [--max 500]

It uses the caller's AWS credentials and region (the standard variables or profile): it needs
sqs:ReceiveMessage/DeleteMessage/ChangeMessageVisibility/GetQueueAttributes on the dead-letter queue, sqs:SendMessage on a
target queue or lambda:InvokeFunction on a target function's `live` alias, and cloudformation:DescribeStacks /
DescribeStackResources on the stack. Run it from a checkout of the version that is deployed (it reads
template.yaml for which source each queue serves).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from devtools.template import DeadLetterSource, EventRoute, dead_letter_sources, event_routes, load_template

RECEIVE_VISIBILITY_SECONDS = 60  # hidden while the run lasts; what it leaves is made visible at its end


class Destination(Protocol):
    def send(self, payload: str) -> None: ...


@dataclass(frozen=True)
class QueueDestination:
    sqs: Any
    queue_url: str

    def send(self, payload: str) -> None:
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=payload)


@dataclass(frozen=True)
class FunctionDestination:
    """An asynchronous invocation of the function's alias, as the rule or Lambda's retry would make it
    (every event source invokes the alias: with SnapStart on, only its published version is restored
    from a snapshot)."""

    lambda_client: Any
    function_name: str
    alias: str | None = None

    def send(self, payload: str) -> None:
        qualifier = {"Qualifier": self.alias} if self.alias else {}
        self.lambda_client.invoke(
            FunctionName=self.function_name, InvocationType="Event", Payload=payload, **qualifier
        )


@dataclass(frozen=True)
class Deployment:
    """What the redrive needs of a deployed stack: the physical id of each resource by logical id
    (a queue's URL, a function's name) and its parameter values (the rules' patterns use them)."""

    physical_ids: Mapping[str, str]
    parameters: Mapping[str, str]

    def routes(self) -> list[EventRoute]:
        return event_routes(dict(self.parameters))


@dataclass
class RedriveReport:
    dead_letter_queue: str
    target: str
    moved: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (message id, why)
    dry_run: bool = False

    def lines(self) -> list[str]:
        verb = "would move" if self.dry_run else "moved"
        out = [f"{self.dead_letter_queue} -> {self.target}: {verb} {self.moved}, refused {len(self.refused)}"]
        out += [f"    refused {message_id}: {why}" for message_id, why in self.refused]
        return out


def payload_for(source: DeadLetterSource, body: str, deployment: Deployment) -> tuple[str | None, str | None]:
    """What to send for one dead letter of `source`, or why it must not be sent."""
    try:
        document = json.loads(body)
    except ValueError:
        return None, "not JSON"
    if not isinstance(document, dict):
        return None, "not a JSON object"
    if source.kind == "async":
        arn = str((document.get("requestContext") or {}).get("functionArn", ""))
        name = arn.split(":")[6] if arn.count(":") >= 6 else ""
        expected = deployment.physical_ids.get(source.target, "")
        if "requestPayload" not in document or not name:
            return None, "not a Lambda failure record"
        if name != expected:
            return None, f"a failure record of {name}, not of {expected}"
        document = document["requestPayload"]
        if not isinstance(document, dict):
            return None, "its requestPayload is not an event"
    problem = _unexpected_event(source, document, deployment.routes())
    if problem:
        return None, problem
    return json.dumps(document), None


# Messages a function of the stack puts on a lifecycle queue itself, not through a rule (source, detail
# type): the webhook hands the tenant update function a payment method the tenant gave.
OWN_MESSAGES = {"TenantUpdatedQueue": {("sbt.billing.stripe", "sbtBillingPaymentMethodGiven")}}


def _unexpected_event(
    source: DeadLetterSource, event: Mapping[str, Any], routes: list[EventRoute]
) -> str | None:
    """Why `event` is not one the source's rule(s) would hand its target, if it is not."""
    own = (event.get("source"), event.get("detail-type"))
    if source.target_kind == "queue" and own in OWN_MESSAGES.get(source.target, set()):
        return None
    if source.target_kind == "queue":
        feeding = [route for route in routes if route.queue_id == source.target]
    else:
        feeding = [route for route in routes if route.function_id == source.target and route.queue_id is None]
    if source.kind == "rule":
        feeding = [
            route
            for route in feeding
            if source.source in (route.rule_id, f"{route.function_id}{route.rule_id}")
        ] or feeding
    if not feeding:
        # Nothing but the stack itself feeds the target (the seat sync queue, a schedule): its own
        # messages are redriven as they are.
        return None
    if "detail-type" not in event:
        return "not an EventBridge event"
    if not any(route.matches(event) for route in feeding):
        return f"a {event.get('detail-type')!r} event from {event.get('source')!r}, which {source.target} never gets"
    return None


def redrive(
    source: DeadLetterSource,
    sqs: Any,
    dead_letter_queue_url: str,
    destination: Destination,
    deployment: Deployment,
    *,
    max_messages: int = 1000,
    dry_run: bool = False,
) -> RedriveReport:
    """Moves up to `max_messages` dead letters of `source`, each after its check; deletes each only
    once it has been sent."""
    report = RedriveReport(source.queue_id, source.target, dry_run=dry_run)
    seen: set[str] = set()
    kept: list[str] = []  # receipt handles of the messages left in the queue
    while report.moved + len(report.refused) < max_messages:
        messages = sqs.receive_message(
            QueueUrl=dead_letter_queue_url,
            MaxNumberOfMessages=min(10, max_messages - report.moved - len(report.refused)),
            VisibilityTimeout=RECEIVE_VISIBILITY_SECONDS,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        fresh = [message for message in messages if message["MessageId"] not in seen]
        if not fresh:
            break
        for message in fresh:
            seen.add(message["MessageId"])
            payload, problem = payload_for(source, message["Body"], deployment)
            if payload is None:
                report.refused.append((message["MessageId"], str(problem)))
                kept.append(message["ReceiptHandle"])
                continue
            report.moved += 1
            if dry_run:
                kept.append(message["ReceiptHandle"])
            else:
                destination.send(payload)
                sqs.delete_message(QueueUrl=dead_letter_queue_url, ReceiptHandle=message["ReceiptHandle"])
    for handle in kept:  # visible again at once, for whoever looks next
        sqs.change_message_visibility(
            QueueUrl=dead_letter_queue_url, ReceiptHandle=handle, VisibilityTimeout=0
        )
    return report


def destination_for(
    source: DeadLetterSource, deployment: Deployment, sqs: Any, lambda_client: Callable[[], Any]
) -> Destination:
    target = deployment.physical_ids[source.target]
    if source.target_kind == "queue":
        return QueueDestination(sqs, target)
    return FunctionDestination(lambda_client(), target, function_alias())


def function_alias() -> str | None:
    """The alias the template publishes every function under (Globals' AutoPublishAlias)."""
    alias = load_template().get("Globals", {}).get("Function", {}).get("AutoPublishAlias")
    return alias if isinstance(alias, str) else None


# --- Command line ---------------------------------------------------------------------------------------


def deployment_of(stack_name: str, cloudformation: Any) -> Deployment:
    physical: dict[str, str] = {}
    paginator = cloudformation.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=stack_name):
        for resource in page["StackResourceSummaries"]:
            physical[resource["LogicalResourceId"]] = resource["PhysicalResourceId"]
    [stack] = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    parameters = {
        item["ParameterKey"]: item.get("ParameterValue", "") for item in stack.get("Parameters", [])
    }
    return Deployment(physical, parameters)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/redrive", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="the deployed stack's name")
    parser.add_argument("queue", nargs="?", help="the dead-letter queue's logical id (see --list)")
    parser.add_argument(
        "--list", action="store_true", help="each dead-letter queue, its source and its count"
    )
    parser.add_argument("--max", type=int, default=1000, help="most messages to move (default %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="check and count, send nothing")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import boto3

    arguments = _arguments(argv)
    sources = {source.queue_id: source for source in dead_letter_sources()}
    deployment = deployment_of(arguments.stack, boto3.client("cloudformation"))
    sqs = boto3.client("sqs")
    if arguments.list or not arguments.queue:
        for queue_id, source in sorted(sources.items()):
            url = deployment.physical_ids.get(queue_id)
            count = (
                sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
                    "Attributes"
                ]["ApproximateNumberOfMessages"]
                if url
                else "not deployed"
            )
            print(
                f"{queue_id}: {count} ({source.kind} {source.source} -> {source.target_kind} {source.target})"
            )
        return 0
    if arguments.queue not in sources:
        print(
            f"redrive: {arguments.queue} is not a dead-letter queue of the template (see --list)",
            file=sys.stderr,
        )
        return 2
    source = sources[arguments.queue]
    destination = destination_for(source, deployment, sqs, lambda: boto3.client("lambda"))
    report = redrive(
        source,
        sqs,
        deployment.physical_ids[source.queue_id],
        destination,
        deployment,
        max_messages=arguments.max,
        dry_run=arguments.dry_run,
    )
    print("\n".join(report.lines()))
    return 1 if report.refused else 0


if __name__ == "__main__":
    sys.exit(main())
