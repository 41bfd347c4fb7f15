"""Runs the billing functions locally on the sample events, end to end, and shows what they did.

AWS is a moto server on loopback (tables from template.yaml, a bus, the Stripe secret); Stripe is the
project's emulator, or real Stripe in test mode when STRIPE_API_KEY holds a test-mode key. Each
EventBridge event in events/ goes, in process, to the handler(s) whose rule in the template matches
it, as the deployed rules route it (a function behind a queue gets the event as the queue's record
carries it, on its own, and answers with its outcome); its times are first moved forward by as much as has
passed since the samples were written, so that usage stays inside Stripe's 35-day window. The API
Gateway, SQS and schedule samples are for `sam local invoke` and are skipped. After the events, the
seat sync queue is drained into SeatSyncFunction (as Lambda's poller would), UsageFlushFunction
runs once (as its schedule would), and so does ReconcileFunction (a pass comparing every account with
Stripe). The local stack bills seats (standard and premium) and API calls.

    scripts/local-run                      # every file in events/, sorted by name
    scripts/local-run events/01_*.json     # chosen files
    scripts/local-run --param CollectionMode=trial
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import stripe
from boto3.dynamodb.types import TypeDeserializer

from devtools.moto_server import (
    AwsClients,
    EventCapture,
    LocalResources,
    MotoServer,
    create_resources,
    environment_applied,
)
from devtools.template import ROOT, EventRoute, FunctionHandler, event_routes, function_handlers, routes_for

EVENTS_DIR = ROOT / "events"
OUTPUT_DIR = ROOT / "local-run-output"
TEST_MODE_PREFIXES = ("sk_test_", "rk_test_")
LIVE_MODE_PREFIXES = ("sk_live_", "rk_live_")
ACCOUNT_COLUMNS = (
    "tenantId",
    "status",
    "customer_id",
    "subscription_id",
    "subscription_status",
    "applied_tier",
    "revision",
    "last_fact_at",
)


# What the local stack bills: a base price per tier, a per-seat price for standard and premium, and API
# calls through a Stripe Billing Meter with a metered price on every subscription.
SEAT_PRICE = "sbt_premium_seat"
LOCAL_TIER_CATALOGUE: dict[str, dict[str, str]] = {
    "basic": {"price": "sbt_basic_monthly"},
    "standard": {"price": "sbt_standard_monthly", "seat_price": SEAT_PRICE},
    "premium": {"price": "sbt_premium_monthly", "seat_price": SEAT_PRICE},
}
LOCAL_USAGE_METERS: dict[str, dict[str, str]] = {
    "api_calls": {"event_name": "sbt_api_calls", "price": "sbt_api_calls_metered"}
}
LOCAL_PARAMETERS = {
    "TierCatalogue": json.dumps(LOCAL_TIER_CATALOGUE),
    "UsageMeters": json.dumps(LOCAL_USAGE_METERS),
    "SeatSyncDelaySeconds": "0",  # a burst is gathered by draining the queue after the events instead
}
# The samples' times are from around this day; a run moves them forward by the time since.
SAMPLES_WRITTEN_AT = datetime(2026, 11, 24, tzinfo=UTC)
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
SKIPPED_PREFIXES = ("api_", "webhook_")


class LocalRunError(Exception):
    """The run cannot start (a bad key, a bad events file): the message says why."""


# --- Lambda's side ----------------------------------------------------------------------------------


@dataclass
class FakeLambdaContext:
    """What Powertools reads from a LambdaContext, with the function's configured timeout."""

    function_name: str
    timeout_seconds: int = 30
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# --- Stripe ---------------------------------------------------------------------------------------------


def stripe_key_from_environment(environ: Mapping[str, str]) -> str | None:
    """The test-mode key to use real Stripe with, or None for the emulator. Refuses live-mode keys."""
    key = environ.get("STRIPE_API_KEY", "").strip()
    if not key:
        return None
    if key.startswith(LIVE_MODE_PREFIXES):
        raise LocalRunError(
            "STRIPE_API_KEY is a live-mode key: the local run only ever uses a test-mode key "
            "(sk_test_... or rk_test_...). Unset it to use the Stripe emulator."
        )
    if not key.startswith(TEST_MODE_PREFIXES):
        raise LocalRunError("STRIPE_API_KEY is not a Stripe test-mode key (sk_test_... or rk_test_...)")
    return key


def stripe_client(api_key: str, api_base: str | None) -> stripe.StripeClient:
    if api_base:
        return stripe.StripeClient(api_key, base_addresses={"api": api_base}, max_network_retries=2)
    return stripe.StripeClient(api_key, max_network_retries=2)


def seed_catalogue(client: stripe.StripeClient, catalogue: Mapping[str, Any]) -> dict[str, str]:
    """A product and a monthly price per lookup key the catalogue names (kept if already there).
    Returns lookup key -> price id."""
    prices: dict[str, str] = {}
    for tier, plan in catalogue.items():
        plan = {"price": plan} if isinstance(plan, str) else plan
        for role, lookup_key in plan.items():
            if not lookup_key or str(lookup_key).startswith("price_"):
                continue
            existing = client.v1.prices.list(params={"lookup_keys": [lookup_key], "active": True, "limit": 1})
            if existing.data:
                prices[lookup_key] = existing.data[0].id
                continue
            seat = role == "seat_price"
            name = "SBT seat" if seat else f"SBT {tier}"
            product = client.v1.products.create(params={"name": name, "metadata": {"sbtTier": tier}})
            amount = 500 if seat else {"basic": 1900, "standard": 4900, "premium": 9900}.get(tier, 2900)
            price = client.v1.prices.create(
                params={
                    "product": product.id,
                    "currency": "usd",
                    "unit_amount": amount,
                    "recurring": {"interval": "month"},
                    "lookup_key": lookup_key,
                    "metadata": {"sbtTier": tier},
                }
            )
            prices[lookup_key] = price.id
    return prices


def seed_meters(client: stripe.StripeClient, meters: Mapping[str, Any]) -> dict[str, str]:
    """A Billing Meter (sum) per event name the meters name, and its metered monthly price when a
    lookup key is given (both kept if already there). Returns event name -> meter id."""
    ids: dict[str, str] = {}
    active = list(_all(client.v1.billing.meters.list(params={"status": "active", "limit": 100})))
    for usage_name, meter in meters.items():
        meter = {"event_name": meter} if isinstance(meter, str) else meter
        event_name = str(meter["event_name"])
        found = [item["id"] for item in active if item.get("event_name") == event_name]
        meter_id = (
            found[0]
            if found
            else client.v1.billing.meters.create(
                params={
                    "display_name": usage_name,
                    "event_name": event_name,
                    "default_aggregation": {"formula": "sum"},
                }
            ).id
        )
        ids[event_name] = meter_id
        lookup_key = meter.get("price")
        if not lookup_key or str(lookup_key).startswith("price_"):
            continue
        if client.v1.prices.list(params={"lookup_keys": [lookup_key], "active": True, "limit": 1}).data:
            continue
        client.v1.prices.create(
            params={
                "currency": "usd",
                "unit_amount": 1,
                "recurring": {"interval": "month", "usage_type": "metered", "meter": meter_id},
                "lookup_key": lookup_key,
                "product_data": {"name": f"SBT {usage_name}"},
            }
        )
    return ids


# --- Events ---------------------------------------------------------------------------------------------


def rebased(event: Any, now: datetime | None = None) -> Any:
    """The sample with every ISO-8601 instant in it moved forward by as much time as has passed since
    the samples were written (the order of the facts is kept, usage stays in Stripe's window)."""
    shift = (now or datetime.now(UTC)) - SAMPLES_WRITTEN_AT
    return _shifted(event, shift)


def _shifted(value: Any, shift: timedelta) -> Any:
    if isinstance(value, dict):
        return {key: _shifted(item, shift) for key, item in value.items()}
    if isinstance(value, list):
        return [_shifted(item, shift) for item in value]
    if isinstance(value, str) and _INSTANT.fullmatch(value):
        at = datetime.fromisoformat(value.replace("Z", "+00:00")) + shift
        return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def delivery(path: Path, event: Mapping[str, Any]) -> str:
    """How the platform delivers the sample: "eventbridge" (a rule on the bus), "api" (API Gateway),
    "sqs" (an SQS event source) or "schedule" (an EventBridge schedule)."""
    if path.name.startswith(SKIPPED_PREFIXES) or "httpMethod" in event or "requestContext" in event:
        return "api"
    if "Records" in event:
        return "sqs"
    if event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event":
        return "schedule"
    return "eventbridge"


def event_files(paths: Sequence[str]) -> list[Path]:
    if paths:
        return [Path(path) for path in paths]
    return sorted(EVENTS_DIR.glob("*.json"), key=lambda path: path.name)


def events_in(path: Path) -> list[dict[str, Any]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise LocalRunError(f"{path}: cannot read a JSON event ({error})") from None
    events = document if isinstance(document, list) else [document]
    if not all(isinstance(event, dict) for event in events):
        raise LocalRunError(f"{path}: holds something other than an event or a list of events")
    return events


@dataclass
class Invocation:
    file: str
    event_id: str
    detail_type: str
    function_id: str | None  # None: no rule routes the event anywhere
    outcome: dict[str, Any] | None = None
    error: str | None = None

    def line(self) -> str:
        where = f"{self.file} [{self.detail_type}]"
        if self.function_id is None:
            return f"{where}\n    -> no rule of the template matches: not delivered"
        if self.error is not None:
            return f"{where}\n    -> {self.function_id}: RAISED {self.error}"
        outcome = dict(self.outcome or {})
        result = outcome.pop("result", None)
        details = ", ".join(f"{key}={_short(value)}" for key, value in outcome.items() if key != "operation")
        if result is None:
            return f"{where}\n    -> {self.function_id}: {details or 'returned nothing'}"
        return f"{where}\n    -> {self.function_id}: {result}" + (f" ({details})" if details else "")


def invoke(handler: FunctionHandler, event: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    module = importlib.import_module(handler.module)
    function = getattr(module, handler.function)
    context = FakeLambdaContext(handler.logical_id, timeout_seconds=handler.timeout)
    try:
        result = function(json.loads(json.dumps(event)), context)
    except Exception as error:  # the platform would retry it: show it, go on with the next event
        if os.environ.get("LOCAL_RUN_TRACEBACKS"):
            traceback.print_exc()
        return None, f"{type(error).__name__}: {error}"
    return (result if isinstance(result, dict) else {"result": repr(result)}), None


def run_events(
    files: Sequence[Path],
    routes: list[EventRoute],
    handlers: Mapping[str, FunctionHandler],
    skipped: list[str] | None = None,
    now: datetime | None = None,
) -> list[Invocation]:
    """Routes each EventBridge sample (rebased to `now`) by the template's rules; the names of the other
    samples go to `skipped`."""
    invocations: list[Invocation] = []
    for path in files:
        for raw in events_in(path):
            if delivery(path, raw) != "eventbridge":
                if skipped is not None and path.name not in skipped:
                    skipped.append(path.name)
                continue
            event = rebased(raw, now)
            file, event_id = path.name, str(event.get("id", ""))
            detail_type = str(event.get("detail-type", ""))
            matched = routes_for(event, routes)
            if not matched:
                invocations.append(Invocation(file, event_id, detail_type, None))
            for route in matched:
                outcome, error = invoke(handlers[route.function_id], event)
                invocations.append(Invocation(file, event_id, detail_type, route.function_id, outcome, error))
    return invocations


def sqs_event(messages: Sequence[Mapping[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS poller hands a function for a batch of received messages."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes") or {}),
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def drain_seat_syncs(
    clients: AwsClients, queue_url: str, handler: FunctionHandler, max_batches: int = 100
) -> list[Invocation]:
    """Plays Lambda's SQS poller: batches of up to 10 to SeatSyncFunction until the queue is empty,
    deleting what the function did not report as failed (failed ones stay, invisible for a while)."""
    sqs = clients.sqs()
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    invocations: list[Invocation] = []
    for _ in range(max_batches):
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            break
        event = sqs_event(messages, queue_arn, clients.region)
        outcome, error = invoke(handler, event)
        tenants = sorted({str(json.loads(message["Body"]).get("tenantId")) for message in messages})
        failed = {item["itemIdentifier"] for item in (outcome or {}).get("batchItemFailures", [])}
        if error is None:
            for message in messages:
                if message["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        shown = {"result": "synced" if not failed else "partly failed", "tenants": ",".join(tenants)}
        if failed:
            shown["failed_messages"] = str(len(failed))
        invocations.append(
            Invocation(
                "(seat sync queue)",
                messages[0]["MessageId"],
                f"SQS batch of {len(messages)}",
                handler.logical_id,
                shown if error is None else None,
                error,
            )
        )
    return invocations


def scheduled_event(now: datetime | None = None) -> dict[str, Any]:
    """The flush schedule's event: the sample events/16_usage_flush_schedule.json when there is one."""
    samples = sorted(EVENTS_DIR.glob("[0-9]*_usage_flush_schedule.json"))
    if samples:
        event: dict[str, Any] = rebased(events_in(samples[0])[0], now)
        return event
    at = (now or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    return {"source": "aws.events", "detail-type": "Scheduled Event", "time": at, "detail": {}}


def run_reconcile(handler: FunctionHandler, now: datetime | None = None) -> Invocation:
    """One reconcile invocation, as its schedule makes it (its sample event when there is one)."""
    samples = sorted(EVENTS_DIR.glob("[0-9]*_reconcile_schedule.json"))
    event: dict[str, Any] = rebased(events_in(samples[0])[0], now) if samples else scheduled_event(now)
    outcome, error = invoke(handler, event)
    shown = None
    if outcome is not None:
        counts = outcome.get("passCounts") or {}
        drift = {name.removeprefix("drift:"): n for name, n in counts.items() if name.startswith("drift:")}
        shown = {
            "result": "reconciled" if outcome.get("complete") else "reconcile pass under way",
            "accounts_checked": counts.get("accounts_checked", 0),
            "events_replayed": counts.get("events_applied", 0),
            "drift": drift or "none",
        }
    return Invocation(
        "(reconcile schedule)", str(event.get("id", "")), "Scheduled Event", handler.logical_id, shown, error
    )


def run_flush(handler: FunctionHandler, now: datetime | None = None) -> Invocation:
    event = scheduled_event(now)
    outcome, error = invoke(handler, event)
    shown = None if outcome is None else {"result": "flushed", **outcome}
    return Invocation(
        "(usage flush schedule)",
        str(event.get("id", "")),
        "Scheduled Event",
        handler.logical_id,
        shown,
        error,
    )


# --- What it all came to ----------------------------------------------------------------------------------


def _all(listing: Any) -> Iterator[dict[str, Any]]:
    for item in listing.auto_paging_iter():
        yield item.to_dict(recursive=True)


def stripe_state(
    client: stripe.StripeClient, catalogue: Mapping[str, Any], tenant_ids: set[str] | None
) -> dict[str, list[dict[str, Any]]]:
    """Customers (only this run's tenants' when on real Stripe), their subscriptions and invoices."""
    tier_of = {}
    for tier, plan in catalogue.items():
        plan = {"price": plan} if isinstance(plan, str) else plan
        tier_of[str(plan["price"])] = tier  # seat and metered prices say nothing of the tier
    customers, subscriptions, invoices = [], [], []
    for customer in _all(client.v1.customers.list(params={"limit": 100})):
        metadata = dict(customer.get("metadata") or {})
        if tenant_ids is not None and metadata.get("tenantId") not in tenant_ids:
            continue
        customers.append(
            {
                "id": customer["id"],
                "tenantId": metadata.get("tenantId"),
                "name": customer.get("name"),
                "offboarded": metadata.get("offboarded"),
                "deleted": bool(customer.get("deleted")),
            }
        )
        for subscription in _all(
            client.v1.subscriptions.list(params={"customer": customer["id"], "status": "all", "limit": 100})
        ):
            items = subscription.get("items") or {}
            prices = [item["price"] for item in (items.get("data") or [])]
            lookup_keys = [price.get("lookup_key") or price.get("id") for price in prices]
            subscriptions.append(
                {
                    "id": subscription["id"],
                    "customer": customer["id"],
                    "status": subscription.get("status"),
                    "price": ",".join(str(key) for key in lookup_keys),
                    "tier": ",".join(
                        sorted({tier_of[str(key)] for key in lookup_keys if str(key) in tier_of})
                    ),
                    "cancel_at_period_end": subscription.get("cancel_at_period_end"),
                }
            )
        for invoice in _all(client.v1.invoices.list(params={"customer": customer["id"], "limit": 100})):
            invoices.append(
                {
                    "id": invoice["id"],
                    "customer": customer["id"],
                    "status": invoice.get("status"),
                    "amount_due": invoice.get("amount_due"),
                    "currency": invoice.get("currency"),
                    "billing_reason": invoice.get("billing_reason"),
                }
            )
    return {"customers": customers, "subscriptions": subscriptions, "invoices": invoices}


def accounts(clients: AwsClients, table: str) -> list[dict[str, Any]]:
    deserializer = TypeDeserializer()
    items = clients.dynamodb().scan(TableName=table).get("Items", [])
    return [{key: deserializer.deserialize(value) for key, value in item.items()} for item in items]


def seats_and_usage(
    account_rows: Sequence[Mapping[str, Any]],
    usage_rows: Sequence[Mapping[str, Any]],
    client: stripe.StripeClient,
    catalogue: Mapping[str, Any],
    meter_ids: Mapping[str, str],
    now: datetime | None = None,
    rejected_at_ingest: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Per tenant: its users and its seat item's quantity in Stripe; its usage records by state (those
    rejected before they were stored counted from `rejected_at_ingest`) and each meter's total for its
    customer (Stripe's event summaries over the last 40 days)."""
    seat_prices = {
        str(plan["seat_price"])
        for plan in catalogue.values()
        if isinstance(plan, Mapping) and plan.get("seat_price")
    }
    day = int((now or datetime.now(UTC)).timestamp()) // 86400
    start_time, end_time = (day - 40) * 86400, (day + 1) * 86400
    tenants = sorted(
        {str(row["tenantId"]) for row in [*account_rows, *usage_rows]} | set(rejected_at_ingest or {})
    )
    summaries = []
    for tenant in tenants:
        rows = [row for row in usage_rows if row["tenantId"] == tenant]
        account = next((row for row in account_rows if row["tenantId"] == tenant), {})
        records = [row for row in rows if str(row["sk"]).startswith("usage#")]
        summary: dict[str, Any] = {
            "tenantId": tenant,
            "users": sum(1 for row in rows if str(row["sk"]).startswith("user#") and row.get("present")),
            "seat_quantity": None,
            "usage_sent": sum(1 for row in records if row.get("state") == "sent"),
            "usage_pending": sum(1 for row in records if row.get("state") == "pending"),
            "usage_rejected": sum(1 for row in records if row.get("state") == "rejected")
            + (rejected_at_ingest or {}).get(tenant, 0),
        }
        subscription_id = account.get("subscription_id")
        if subscription_id and seat_prices:
            subscription = client.v1.subscriptions.retrieve(str(subscription_id)).to_dict(recursive=True)
            quantities = [
                int(item.get("quantity") or 0)
                for item in (subscription.get("items") or {}).get("data") or []
                if {item["price"].get("lookup_key"), item["price"].get("id")} & seat_prices
            ]
            summary["seat_quantity"] = sum(quantities) if quantities else None
        customer_id = account.get("customer_id")
        for event_name, meter_id in meter_ids.items():
            total = None
            if customer_id:
                listing = client.v1.billing.meters.event_summaries.list(
                    meter_id,
                    params={"customer": str(customer_id), "start_time": start_time, "end_time": end_time},
                )
                total = sum(float(item["aggregated_value"]) for item in _all(listing))
            summary[f"meter:{event_name}"] = total
        summaries.append(summary)
    return summaries


def rejected_at_ingest(invocations: Sequence[Invocation]) -> dict[str, int]:
    """Per tenant, the usage records its ingest events carried that were rejected before being stored."""
    counts: dict[str, int] = {}
    for invocation in invocations:
        outcome = invocation.outcome or {}
        if outcome.get("operation") == "ingest_usage" and isinstance(outcome.get("rejected"), list):
            tenant = str(outcome.get("tenant_id"))
            counts[tenant] = counts.get(tenant, 0) + len(outcome["rejected"])
    return counts


def _table(title: str, rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    lines = [f"{title} ({len(rows)})"]
    if not rows:
        return lines[0] + "\n    (none)"
    for row in rows:
        lines.append("    " + "  ".join(f"{column}={_short(row.get(column))}" for column in columns))
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def render(
    invocations: list[Invocation],
    published: list[dict[str, Any]],
    state: dict[str, list[dict[str, Any]]],
    account_rows: list[dict[str, Any]],
    stripe_backend: str,
    tenants: list[dict[str, Any]] | None = None,
    skipped: Sequence[str] = (),
) -> str:
    out = [f"== Events -> functions -> outcomes (Stripe: {stripe_backend})"]
    out += [invocation.line() for invocation in invocations]
    if skipped:
        out.append(f"(skipped, for `sam local invoke`: {', '.join(skipped)})")
    out.append("")
    out.append(f"== Published to the SBT bus ({len(published)})")
    for event in published:
        detail = event.get("detail") or {}
        reason = detail.get("reason") or detail.get("message")
        out.append(
            f"    {event.get('detail-type')} from {event.get('source')}: tenantId={detail.get('tenantId')}"
            + (f" reason={_short(reason)}" if reason else "")
        )
    out.append("")
    out.append("== Stripe")
    out.append(_table("customers", state["customers"], ["id", "tenantId", "name", "offboarded", "deleted"]))
    out.append(_table("subscriptions", state["subscriptions"], ["id", "customer", "status", "price", "tier"]))
    out.append(
        _table("invoices", state["invoices"], ["id", "customer", "status", "amount_due", "billing_reason"])
    )
    out.append("")
    out.append("== DynamoDB accounts table")
    present = {key for row in account_rows for key in row}
    columns = [column for column in ACCOUNT_COLUMNS if column in present]
    out.append(_table("accounts (all attributes in summary.json)", account_rows, columns))
    if tenants is not None:
        out.append("")
        out.append("== Seats and usage per tenant")
        if not tenants:
            out.append("    (none)")
        for tenant in tenants:
            meters = "  ".join(
                f"{key.removeprefix('meter:')}={_number(value)}"
                for key, value in tenant.items()
                if key.startswith("meter:")
            )
            out.append(
                f"    {tenant['tenantId']}\n"
                f"        seats: users={tenant['users']} seat_quantity={tenant['seat_quantity']}\n"
                f"        usage: sent={tenant['usage_sent']} pending={tenant['usage_pending']}"
                f" rejected={tenant['usage_rejected']}" + (f"  meter totals: {meters}" if meters else "")
            )
    return "\n".join(out)


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- Main -----------------------------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/local-run", description=__doc__.split("\n\n")[0])
    parser.add_argument("events", nargs="*", help="event files (default: every events/*.json, by name)")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter override, e.g. CollectionMode=trial (repeatable)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show the functions' logs and metrics instead of writing them to a file",
    )
    parser.add_argument(
        "--output", type=Path, default=OUTPUT_DIR, help="where summary.json is written (default: %(default)s)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        overrides = dict(item.split("=", 1) for item in arguments.param)
        real_key = stripe_key_from_environment(os.environ)
        files = event_files(arguments.events)
        if not files:
            raise LocalRunError(f"no event files in {EVENTS_DIR}")
    except (LocalRunError, ValueError) as error:
        print(f"local-run: {error}", file=sys.stderr)
        return 2

    with ExitStack() as stack:
        moto = stack.enter_context(MotoServer())
        if real_key is None:
            from stripe_emulator import StripeEmulator  # only needed without real Stripe

            emulator = stack.enter_context(StripeEmulator())
            api_key, api_base, backend = (
                f"sk_test_local_{uuid.uuid4().hex[:16]}",
                str(emulator.url),
                "emulator",
            )
        else:
            api_key, api_base, backend = real_key, None, "Stripe test mode"

        resources: LocalResources = create_resources(moto.endpoint, stripe_api_key=api_key, suffix="-local")
        clients = AwsClients(moto.endpoint, resources.region)
        capture = EventCapture(clients, resources.event_bus_name)
        parameters = {**resources.parameter_overrides(), **LOCAL_PARAMETERS, **overrides}
        handlers = function_handlers(parameters, resources.resource_names())
        routes = event_routes(parameters)

        environment: dict[str, str] = {**moto.environment(resources.region)}
        for handler in handlers.values():
            if handler.unresolved:
                raise SystemExit(
                    f"local-run: cannot resolve {sorted(handler.unresolved)} of {handler.logical_id}"
                )
            environment.update(handler.environment)
        environment["STRIPE_API_KEY"] = api_key
        if api_base:
            environment["STRIPE_API_BASE"] = api_base
        elif "STRIPE_API_BASE" in os.environ:
            del os.environ["STRIPE_API_BASE"]  # real Stripe: never a leftover base address

        catalogue = json.loads(environment["TIER_CATALOGUE"])
        meters = json.loads(environment.get("USAGE_METERS") or "{}")
        client = stripe_client(api_key, api_base)
        seed_catalogue(client, catalogue)
        meter_ids = seed_meters(client, meters)

        code_dirs = {str((ROOT / handler.code_uri).resolve()) for handler in handlers.values()}
        sys.path[:0] = sorted(code_dirs)
        arguments.output.mkdir(parents=True, exist_ok=True)
        log_path = arguments.output / "handlers.log"
        with environment_applied(environment), ExitStack() as logs:
            if not arguments.verbose:  # the functions' JSON logs and metrics go to a file
                logs.enter_context(redirect_stdout(logs.enter_context(log_path.open("w", encoding="utf-8"))))
            now = datetime.now(UTC)
            skipped: list[str] = []
            invocations = run_events(files, routes, handlers, skipped, now)
            if "SeatSyncFunction" in handlers and "SeatSyncQueue" in resources.queues:
                invocations += drain_seat_syncs(
                    clients, resources.queues["SeatSyncQueue"], handlers["SeatSyncFunction"]
                )
            if "UsageFlushFunction" in handlers:
                invocations.append(run_flush(handlers["UsageFlushFunction"], now))
            if "ReconcileFunction" in handlers:
                invocations.append(run_reconcile(handlers["ReconcileFunction"], now))
        published = capture.drain()

        account_rows = accounts(clients, resources.tables["AccountsTable"])
        tenant_ids = {str(row.get("tenantId")) for row in account_rows}
        state = stripe_state(client, catalogue, tenant_ids if real_key else None)
        usage_rows = (
            accounts(clients, resources.tables["UsageTable"]) if "UsageTable" in resources.tables else []
        )
        tenants = seats_and_usage(
            account_rows, usage_rows, client, catalogue, meter_ids, now, rejected_at_ingest(invocations)
        )
        print(render(invocations, published, state, account_rows, backend, tenants, skipped))

        summary = {
            "stripe": backend,
            "invocations": [invocation.__dict__ for invocation in invocations],
            "published": published,
            "stripe_state": state,
            "accounts": account_rows,
            "seats_and_usage": tenants,
            "skipped": skipped,
        }
        (arguments.output / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        print(f"\n(summary written to {arguments.output / 'summary.json'}", end="")
        print(")" if arguments.verbose else f", the functions' logs to {log_path})")
        raised = [invocation for invocation in invocations if invocation.error is not None]
        return 1 if raised else 0
    return 0  # pragma: no cover - the with block always returns


if __name__ == "__main__":
    sys.exit(main())
