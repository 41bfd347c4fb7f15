"""A stack on loopback for integration tests: moto's server for AWS, the Stripe emulator for Stripe,
tables made from template.yaml, events routed to handlers by the template's own rules."""

from __future__ import annotations

import importlib
import json
import os
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import stripe

from devtools.local_run import sqs_event
from devtools.moto_server import (
    AwsClients,
    EventCapture,
    LocalResources,
    create_resources,
    environment_applied,
)
from devtools.template import (
    EventRoute,
    FunctionHandler,
    api_routes,
    dead_letter_sources,
    event_routes,
    function_handlers,
    routes_for,
)

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
TEST_KEY = "sk_test_harness_0000000000000000"
CATALOGUE = {
    "basic": ("Basic", 2900, "sbt_basic_monthly"),
    "standard": ("Standard", 9900, "sbt_standard_monthly"),
    "premium": ("Premium", 29900, "sbt_premium_monthly"),
}


def sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


class FakeLambdaContext:
    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.aws_request_id = os.urandom(8).hex()
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


class Emulator:
    """The Stripe emulator's admin API, over HTTP as any out-of-process user would reach it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def admin(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}/_emulator/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = self.admin("GET", "counts")
        return counts

    def writes(self) -> int:
        """Requests that changed or could change Stripe (POST and DELETE) and reached the endpoint."""
        return sum(n for route, n in self.counts().items() if route.split(" ", 1)[0] in ("POST", "DELETE"))

    def fault(self, **spec: Any) -> None:
        self.admin("POST", "faults", spec)

    def client(self) -> stripe.StripeClient:
        return stripe.StripeClient(TEST_KEY, base_addresses={"api": self.url}, max_network_retries=0)

    def seed_usage_catalogue(self) -> None:
        """A per-seat price for premium, and a meter with a metered price for api_calls."""
        client = self.client()
        client.v1.prices.create(
            params={
                "currency": "usd",
                "unit_amount": 500,
                "recurring": {"interval": "month"},
                "lookup_key": "sbt_premium_seat",
                "product_data": {"name": "Premium seat"},
            }
        )
        meter = client.v1.billing.meters.create(
            params={
                "display_name": "API calls",
                "event_name": "sbt_api_calls",
                "default_aggregation": {"formula": "sum"},
            }
        )
        client.v1.prices.create(
            params={
                "currency": "usd",
                "unit_amount": 1,
                "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
                "lookup_key": "sbt_api_calls_metered",
                "product_data": {"name": "API calls"},
            }
        )

    def seed_catalogue(self) -> None:
        client = self.client()
        for name, amount, lookup_key in CATALOGUE.values():
            client.v1.prices.create(
                params={
                    "currency": "usd",
                    "unit_amount": amount,
                    "recurring": {"interval": "month"},
                    "lookup_key": lookup_key,
                    "product_data": {"name": name},
                }
            )


@dataclass
class Stack:
    resources: LocalResources
    emulator: Emulator
    capture: EventCapture
    environment: dict[str, str]
    outcomes: list[dict[str, str]] = field(default_factory=list)

    @property
    def clients(self) -> AwsClients:
        return AwsClients(self.resources.endpoint, self.resources.region)

    @cached_property
    def handlers(self) -> dict[str, FunctionHandler]:
        return function_handlers(self.resources.parameter_overrides(), self.resources.resource_names())

    @cached_property
    def routes(self) -> list[EventRoute]:
        return event_routes(self.resources.parameter_overrides())

    def invoke(self, function_id: str, event: Mapping[str, Any]) -> dict[str, Any]:
        handler = self.handlers[function_id]
        module = importlib.import_module(handler.module)
        result: dict[str, Any] = getattr(module, handler.function)(
            dict(event), FakeLambdaContext(function_id)
        )
        self.outcomes.append(result)
        return result

    def request(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """An API Gateway request, invoked on the function the template routes its resource and method to
        (the gate has a function of its own)."""
        function_id = api_routes().get((str(event.get("resource")), str(event.get("httpMethod"))))
        assert function_id is not None, (
            f"no function serves {event.get('httpMethod')} {event.get('resource')}"
        )
        return self.invoke(function_id, event)

    def deliver(self, event: Mapping[str, Any]) -> list[dict[str, str]]:
        """Invokes every function whose rule matches the event, as the template routes it, and returns
        each outcome. A function fed by a queue gets the event as its queue's record would carry it, on
        its own (the bare-event form its handler takes); `put_on_bus` and `run_queue` go through the
        queue itself."""
        return [self.invoke(route.function_id, event) for route in routes_for(event, self.routes)]

    def put_on_bus(self, events: Sequence[Mapping[str, Any]]) -> None:
        """PutEvents to the local SBT bus, ten at a time: the template's rules (made on the bus by
        create_resources) put them on the functions' queues."""
        client = self.clients.events()
        for start in range(0, len(events), 10):
            entries = [
                {
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"]),
                    "Time": datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00")),
                    "EventBusName": self.resources.event_bus_name,
                }
                for event in events[start : start + 10]
            ]
            response = client.put_events(Entries=entries)
            assert response["FailedEntryCount"] == 0, response

    def run_queue(
        self, queue_id: str, *, concurrency: int | None = None, visibility_timeout: int = 30
    ) -> QueueRun:
        """Plays Lambda's SQS event source mapping for the queue until it is empty: at most the
        mapping's maximum concurrency invocations at once (or `concurrency`), each with up to its batch
        size of records; the records an invocation reports as failed (or all, if it raises) stay on the
        queue and come back after `visibility_timeout` seconds (the template says 180), and
        moto moves a record received too often to the dead-letter queue, as the redrive policy says."""
        route = next(route for route in self.routes if route.queue_id == queue_id)  # rules share a queue
        workers = concurrency or route.maximum_concurrency or 1
        queue_url = self.resources.queues[queue_id]
        run = QueueRun()
        lock = threading.Lock()

        def drained(sqs: Any) -> bool:
            attributes = sqs.get_queue_attributes(
                QueueUrl=queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            return all(int(value) == 0 for value in attributes.values())

        def worker() -> None:
            sqs = self.clients.sqs()
            while True:
                messages = sqs.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=route.batch_size,
                    VisibilityTimeout=visibility_timeout,
                    AttributeNames=["All"],
                ).get("Messages", [])
                if not messages:
                    if drained(sqs):
                        return
                    time.sleep(0.05)
                    continue
                try:
                    result = self.invoke(route.function_id, _sqs_event(messages, queue_url))
                    failed = _failed_ids(result)
                except Exception:
                    failed = {message["MessageId"] for message in messages}
                _delete_all_but(sqs, queue_url, messages, failed)
                with lock:
                    run.invocations += 1
                    run.records += len(messages)
                    run.failed_records += len(failed)

        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return run

    def dead_letters(self) -> list[dict[str, Any]]:
        """What waits in the dead-letter queues, each source's own (received, not deleted)."""
        sqs = self.clients.sqs()
        found: list[dict[str, Any]] = []
        for queue_id in sorted({source.queue_id for source in dead_letter_sources()}):
            while True:
                messages = sqs.receive_message(
                    QueueUrl=self.resources.queues[queue_id],
                    MaxNumberOfMessages=10,
                    VisibilityTimeout=60,
                ).get("Messages", [])
                if not messages:
                    break
                found += [json.loads(message["Body"]) for message in messages]
        return found

    def account(self, tenant_id: str) -> dict[str, Any] | None:
        from sbt_billing.adapters.tenant_accounts import account_from_item

        item = (
            self.clients.dynamodb()
            .get_item(
                TableName=self.resources.tables["AccountsTable"],
                Key={"tenantId": {"S": tenant_id}},
                ConsistentRead=True,
            )
            .get("Item")
        )
        return account_from_item(item).model_dump(mode="json") if item else None

    def table_items(self, logical_id: str) -> list[dict[str, Any]]:
        return self.clients.dynamodb().scan(TableName=self.resources.tables[logical_id])["Items"]

    def published(self) -> list[dict[str, Any]]:
        return self.capture.drain()

    def run_seat_syncs(self) -> int:
        """Plays Lambda's SQS poller for the seat sync queue until it is empty; returns the batches run."""
        sqs = self.clients.sqs()
        queue_url = self.resources.queues["SeatSyncQueue"]
        batches = 0
        while True:
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return batches
            result = self.invoke("SeatSyncFunction", _sqs_event(messages, queue_url))
            _delete_all_but(sqs, queue_url, messages, _failed_ids(result))
            batches += 1


@dataclass
class QueueRun:
    invocations: int = 0
    records: int = 0
    failed_records: int = 0


def _sqs_event(messages: Sequence[Mapping[str, Any]], queue_url: str) -> dict[str, Any]:
    """Received SQS messages as Lambda's event source mapping hands them to the function."""
    name = queue_url.rsplit("/", 1)[-1]
    arn = f"arn:aws:sqs:us-east-1:123456789012:{name}"
    return sqs_event([_with_envelope_account(message) for message in messages], arn, "us-east-1")


def _with_envelope_account(message: Mapping[str, Any]) -> Mapping[str, Any]:
    """moto's rule targets leave out the EventBridge envelope's account, which EventBridge always sets."""
    try:
        envelope = json.loads(message["Body"])
    except ValueError:
        return message
    if isinstance(envelope, dict) and "detail-type" in envelope and "account" not in envelope:
        return {**message, "Body": json.dumps({**envelope, "account": "123456789012"})}
    return message


def _failed_ids(result: Mapping[str, Any]) -> set[str]:
    """The ids of the records a function's batch response reports as failed."""
    return {failure["itemIdentifier"] for failure in result.get("batchItemFailures", [])}


def _delete_all_but(
    sqs: Any, queue_url: str, messages: Sequence[Mapping[str, Any]], failed: set[str]
) -> None:
    """Deletes the messages a batch got through; the failed ones come back after their visibility timeout."""
    for message in messages:
        if message["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


@contextmanager
def stack_on(
    moto_endpoint: str,
    emulator_url: str,
    overrides: Mapping[str, str] | None = None,
    parameters: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """Fresh tables, bus and secret; the emulator reset and seeded; the functions' environment set
    (the template's, for its `parameters`, then `overrides` of single variables)."""
    from sbt_billing.bootstrap.clients import forget_clients

    emulator = Emulator(emulator_url)
    emulator.admin("POST", "reset")
    emulator.seed_catalogue()
    emulator.admin("DELETE", "requests")  # count only what the functions do
    resources = create_resources(moto_endpoint, stripe_api_key=TEST_KEY, parameters=parameters)
    clients = AwsClients(moto_endpoint, resources.region)
    capture = EventCapture(clients, resources.event_bus_name)
    handlers = function_handlers(resources.parameter_overrides(), resources.resource_names())
    environment: dict[str, str] = {}
    for handler in handlers.values():  # one process plays every function: their variables, merged
        environment.update(handler.environment)
    environment.update(
        {
            "STRIPE_API_BASE": emulator_url,
            "STRIPE_MAX_NETWORK_RETRIES": "2",
            "SEAT_SYNC_DELAY_SECONDS": "0",
            **(overrides or {}),
        }
    )
    with environment_applied(environment):
        forget_clients()
        try:
            yield Stack(resources, emulator, capture, environment)
        finally:
            forget_clients()
