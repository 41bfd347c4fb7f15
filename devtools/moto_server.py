"""AWS on loopback: moto's server in a thread, with the template's tables, a Stripe secret and an SBT bus.

The project's boto3 clients honour AWS_ENDPOINT_URL, so pointing that variable at `MotoServer.endpoint`
sends every DynamoDB, Secrets Manager and EventBridge call over real HTTP to moto.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3

from devtools.template import event_routes, load_template, queue_ids, table_definitions

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

REGION = "us-east-1"
# Dummy credentials: moto accepts anything, and these make sure nothing real is ever signed.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # not a secret: moto's placeholder
    "AWS_SESSION_TOKEN": "testing",
}


def aws_environment(endpoint: str, region: str = REGION) -> dict[str, str]:
    """The variables that send boto3 (in this process or a child) to the moto server."""
    return {
        **DUMMY_CREDENTIALS,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ENDPOINT_URL": endpoint,
        # Never read the developer's own profile or config.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


class MotoServer:
    """moto's server on 127.0.0.1 and a free port, in a process of its own (in a thread of this
    process it would contend for the GIL with the code under test, and answer several times slower).
    Use as a context manager."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""

    def start(self) -> str:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **DUMMY_CREDENTIALS},
        )
        self.endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):
                    return self.endpoint
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def environment(self, region: str = REGION) -> dict[str, str]:
        return aws_environment(self.endpoint, region)

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@contextmanager
def environment_applied(variables: Mapping[str, str]) -> Iterator[None]:
    """Sets variables in os.environ for the duration, restoring what was there before."""
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class AwsClients:
    """boto3 clients bound to one endpoint with dummy credentials (never the environment's)."""

    def __init__(self, endpoint: str, region: str = REGION) -> None:
        self.endpoint = endpoint
        self.region = region

    def _session(self) -> boto3.Session:
        return boto3.Session(
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
            region_name=self.region,
        )

    def dynamodb(self) -> DynamoDBClient:
        return self._session().client("dynamodb", endpoint_url=self.endpoint)

    def events(self) -> EventBridgeClient:
        return self._session().client("events", endpoint_url=self.endpoint)

    def secretsmanager(self) -> SecretsManagerClient:
        return self._session().client("secretsmanager", endpoint_url=self.endpoint)

    def sqs(self) -> SQSClient:
        return self._session().client("sqs", endpoint_url=self.endpoint)


@dataclass(frozen=True)
class LocalResources:
    """What `create_resources` made: names to hand the functions, by the template's logical ids."""

    endpoint: str
    region: str
    tables: dict[str, str]  # logical id -> table name
    event_bus_name: str
    secret_name: str
    secret_arn: str
    queues: dict[str, str] = field(default_factory=dict)  # logical id -> queue URL
    parameters: dict[str, str] = field(default_factory=dict)  # template parameters set for this stack

    def resource_names(self) -> dict[str, str]:
        """For devtools.template.function_handlers(resource_names=...): what `Ref` gives each."""
        return {**self.tables, **self.queues}

    def parameter_overrides(self) -> dict[str, str]:
        return {**self.parameters, "EventBusName": self.event_bus_name, "StripeSecretName": self.secret_name}


def create_tables(clients: AwsClients, suffix: str) -> dict[str, str]:
    """The template's DynamoDB tables (key schemas, indexes, TTL), named `<logical id><suffix>`."""
    dynamodb = clients.dynamodb()
    names: dict[str, str] = {}
    for logical_id, table in table_definitions(suffix).items():
        dynamodb.create_table(**table.create_table)
        dynamodb.get_waiter("table_exists").wait(TableName=table.name)
        if table.ttl_attribute:
            dynamodb.update_time_to_live(
                TableName=table.name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
            )
        names[logical_id] = table.name
    return names


def create_resources(
    endpoint: str,
    *,
    stripe_api_key: str,
    suffix: str | None = None,
    region: str = REGION,
    parameters: Mapping[str, str] | None = None,
) -> LocalResources:
    """Tables from the template, the Stripe secret (holding `stripe_api_key`) and an SBT event bus;
    the rules as the template's `parameters` (e.g. SbtRelease) make them."""
    suffix = suffix if suffix is not None else f"-{uuid.uuid4().hex[:8]}"
    clients = AwsClients(endpoint, region)
    tables = create_tables(clients, suffix)
    bus_name = f"sbt-bus{suffix}"
    clients.events().create_event_bus(Name=bus_name)
    secret_name = f"sbt/stripe{suffix}"
    secret = clients.secretsmanager().create_secret(Name=secret_name, SecretString=stripe_api_key)
    queues = create_queues(clients, suffix)
    create_rules(clients, bus_name, queues, parameters)
    return LocalResources(
        endpoint, region, tables, bus_name, secret_name, secret["ARN"], queues, dict(parameters or {})
    )


def _queue_arn(sqs: Any, url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return str(attributes["QueueArn"])


def create_queues(clients: AwsClients, suffix: str) -> dict[str, str]:
    """The template's SQS queues with their visibility timeout, retention and redrive policy (the
    dead-letter queue made first), named `<logical id><suffix>`; logical id -> queue URL."""
    sqs = clients.sqs()
    resources = load_template()["Resources"]
    ordered = sorted(queue_ids(), key=lambda queue: "RedrivePolicy" in resources[queue].get("Properties", {}))
    queues: dict[str, str] = {}
    for logical_id in ordered:
        properties = resources[logical_id].get("Properties", {})
        attributes: dict[Any, str] = {
            name: str(properties[name])
            for name in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds")
            if name in properties
        }
        if "RedrivePolicy" in properties:
            redrive = properties["RedrivePolicy"]
            target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": _queue_arn(sqs, queues[target]),
                    "maxReceiveCount": str(redrive["maxReceiveCount"]),
                }
            )
        queues[logical_id] = sqs.create_queue(QueueName=f"{logical_id}{suffix}", Attributes=attributes)[
            "QueueUrl"
        ]
    return queues


def create_rules(
    clients: AwsClients, bus_name: str, queues: Mapping[str, str], parameters: Mapping[str, str] | None = None
) -> None:
    """The template's rules that put events on a queue, on the local bus, as in the stack."""
    events, sqs = clients.events(), clients.sqs()
    for route in event_routes({**(parameters or {}), "EventBusName": bus_name}):
        if route.queue_id is None:
            continue
        name = f"{route.rule_id}-{uuid.uuid4().hex[:8]}"
        events.put_rule(
            Name=name, EventBusName=bus_name, EventPattern=json.dumps(route.pattern), State="ENABLED"
        )
        arn = _queue_arn(sqs, queues[route.queue_id])
        events.put_targets(Rule=name, EventBusName=bus_name, Targets=[{"Id": route.queue_id, "Arn": arn}])


class EventCapture:
    """Collects what is published to a bus: a catch-all rule on it targets an SQS queue that
    `drain()` empties, so publishing goes through the real PutEvents protocol and rule matching."""

    def __init__(self, clients: AwsClients, bus_name: str, pattern: Mapping[str, Any] | None = None) -> None:
        self._sqs = clients.sqs()
        events = clients.events()
        name = f"capture-{uuid.uuid4().hex[:8]}"
        self.queue_url = self._sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = self._sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        # Every event on the bus carries the account it was put in; matching it matches them all.
        account = queue_arn.split(":")[4]
        events.put_rule(
            Name=name,
            EventBusName=bus_name,
            EventPattern=json.dumps(dict(pattern) if pattern else {"account": [account]}),
            State="ENABLED",
        )
        events.put_targets(Rule=name, EventBusName=bus_name, Targets=[{"Id": "capture", "Arn": queue_arn}])

    def drain(self, settle_seconds: float = 0.2) -> list[dict[str, Any]]:
        """Every event delivered so far (each once), oldest first as far as SQS tells."""
        captured: list[dict[str, Any]] = []
        deadline = time.monotonic() + settle_seconds
        while True:
            messages = self._sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            for message in messages:
                captured.append(json.loads(message["Body"]))
                self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            if not messages:
                if time.monotonic() >= deadline:
                    return captured
                time.sleep(0.05)
