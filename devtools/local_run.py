"""Runs the billing functions locally on the sample events, end to end, and shows what they did.

AWS is a moto server on loopback (tables from template.yaml, a bus, the Stripe secret); Stripe is the
project's emulator, or real Stripe in test mode when STRIPE_API_KEY holds a test-mode key. Each
event in events/ goes, in process, to the handler(s) whose EventBridge rule in the template matches
it, exactly as the deployed rules would route it.

    scripts/local-run                      # every file in events/, sorted by name
    scripts/local-run events/01_*.json     # chosen files
    scripts/local-run --param CollectionMode=trial
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, redirect_stdout
from dataclasses import dataclass, field
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
            name = f"SBT {tier}" + (" seat" if role == "seat_price" else "")
            product = client.v1.products.create(params={"name": name, "metadata": {"sbtTier": tier}})
            price = client.v1.prices.create(
                params={
                    "product": product.id,
                    "currency": "usd",
                    "unit_amount": {"basic": 1900, "standard": 4900, "premium": 9900}.get(tier, 2900),
                    "recurring": {"interval": "month"},
                    "lookup_key": lookup_key,
                    "metadata": {"sbtTier": tier},
                }
            )
            prices[lookup_key] = price.id
    return prices


# --- Events ---------------------------------------------------------------------------------------------


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
        result = outcome.pop("result", "?")
        details = ", ".join(f"{key}={value}" for key, value in outcome.items() if key != "operation")
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
    files: Sequence[Path], routes: list[EventRoute], handlers: Mapping[str, FunctionHandler]
) -> list[Invocation]:
    invocations: list[Invocation] = []
    for path in files:
        for event in events_in(path):
            file, event_id = path.name, str(event.get("id", ""))
            detail_type = str(event.get("detail-type", ""))
            matched = routes_for(event, routes)
            if not matched:
                invocations.append(Invocation(file, event_id, detail_type, None))
            for route in matched:
                outcome, error = invoke(handlers[route.function_id], event)
                invocations.append(Invocation(file, event_id, detail_type, route.function_id, outcome, error))
    return invocations


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
        tier_of.update({str(value): tier for value in plan.values() if value})
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
                    "tier": ",".join(sorted({tier_of.get(str(key), "?") for key in lookup_keys})),
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
) -> str:
    out = [f"== Events -> functions -> outcomes (Stripe: {stripe_backend})"]
    out += [invocation.line() for invocation in invocations]
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
    return "\n".join(out)


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
        parameters = {**resources.parameter_overrides(), **overrides}
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
        client = stripe_client(api_key, api_base)
        seed_catalogue(client, catalogue)

        code_dirs = {str((ROOT / handler.code_uri).resolve()) for handler in handlers.values()}
        sys.path[:0] = sorted(code_dirs)
        arguments.output.mkdir(parents=True, exist_ok=True)
        log_path = arguments.output / "handlers.log"
        with environment_applied(environment), ExitStack() as logs:
            if not arguments.verbose:  # the functions' JSON logs and metrics go to a file
                logs.enter_context(redirect_stdout(logs.enter_context(log_path.open("w", encoding="utf-8"))))
            invocations = run_events(files, routes, handlers)
        published = capture.drain()

        tenant_ids = {
            str(row.get("tenantId")) for row in accounts(clients, resources.tables["AccountsTable"])
        }
        state = stripe_state(client, catalogue, tenant_ids if real_key else None)
        account_rows = accounts(clients, resources.tables["AccountsTable"])
        print(render(invocations, published, state, account_rows, backend))

        summary = {
            "stripe": backend,
            "invocations": [invocation.__dict__ for invocation in invocations],
            "published": published,
            "stripe_state": state,
            "accounts": account_rows,
        }
        (arguments.output / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        print(f"\n(summary written to {arguments.output / 'summary.json'}", end="")
        print(")" if arguments.verbose else f", the functions' logs to {log_path})")
        raised = [invocation for invocation in invocations if invocation.error is not None]
        return 1 if raised else 0
    return 0  # pragma: no cover - the with block always returns


if __name__ == "__main__":
    sys.exit(main())
