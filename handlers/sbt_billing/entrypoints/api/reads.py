"""GET /tenants/{tenantId}/billing, the full read: the account, then Stripe (customer, subscription, next
invoice, a page of invoices, seats and this period's usage), and its wire models."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import Field

from sbt_billing.domain.billing_view import BillingServices, InvoicePage, TenantBilling, read_billing
from sbt_billing.domain.errors import PermanentBillingError, ResourceMissing
from sbt_billing.entrypoints.api.gate import tenant_not_found
from sbt_billing.entrypoints.api.wire import (
    ERRORS,
    AddressOut,
    ApiError,
    CustomerOut,
    GateStatus,
    InvoiceOut,
    Model,
    ScheduledChangeOut,
    TenantId,
)

INVOICE_CURSOR_PATTERN = r"^in_[A-Za-z0-9]{1,255}$"


def add_read_route(app: APIGatewayRestResolver, services: Callable[[], BillingServices]) -> None:
    @app.get(
        "/tenants/<tenantId>/billing",
        summary="The tenant's billing: customer, plan, subscription, next invoice, invoices",
        responses={200: {"description": "The tenant's billing as Stripe holds it now."}, **ERRORS},
        tags=["billing"],
    )
    def get_billing(
        tenantId: TenantId,  # noqa: N803 - the path's own name
        limit: Annotated[int, Query(ge=1, le=100, description="Invoices per page.")] = 10,
        startingAfter: Annotated[  # noqa: N803 - the query's own name
            str | None,
            Query(pattern=INVOICE_CURSOR_PATTERN, description="The nextCursor of the previous page."),
        ] = None,
    ) -> TenantBillingOut:
        current = services()
        account = current.store.get(tenantId)
        if account is None:
            raise tenant_not_found()
        try:
            billing = read_billing(
                account,
                current.reader(),
                current.catalogue,
                current.gate,
                limit,
                startingAfter,
                seat_count=current.seat_count,
                meters=current.meters,
            )
        except ResourceMissing:
            if startingAfter is not None:
                raise ApiError(
                    HTTPStatus.BAD_REQUEST, "invalid_cursor", "startingAfter names no invoice"
                ) from None
            raise ApiError(HTTPStatus.BAD_GATEWAY, "stripe_refused", "Stripe refused the read") from None
        except PermanentBillingError:
            raise ApiError(HTTPStatus.BAD_GATEWAY, "stripe_refused", "Stripe refused the read") from None
        return TenantBillingOut.of(billing)


# -- the answer (camelCase on the wire) ---------------------------------------------------------------


class PlanOut(Model):
    tier: str | None = Field(description="The catalogue's tier for the price (null: a price outside it).")
    price_id: str | None = None
    lookup_key: str | None = None
    amount: int | None = Field(default=None, description="Unit amount in the currency's smallest unit.")
    currency: str | None = None
    interval: str | None = None
    interval_count: int | None = None
    quantity: int | None = None


class SubscriptionOut(Model):
    id: str
    status: str
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False


class NextInvoiceOut(Model):
    amount_due: int
    currency: str
    period_end: datetime | None = None


class InvoicesOut(Model):
    data: list[InvoiceOut]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as startingAfter to read the next page.")


class SeatsOut(Model):
    users: int = Field(description="The tenant's users, from SBT's user events.")
    quantity: int | None = Field(description="The per-seat item's quantity in Stripe (null: no seat price).")


class UsageOut(Model):
    usage_name: str
    event_name: str = Field(description="The Stripe Billing Meter's event name.")
    total: float = Field(description="The meter's aggregate for this tenant since the period started.")
    since: datetime


class PaymentActionOut(Model):
    invoice_id: str
    hosted_invoice_url: str | None = Field(
        default=None, description="Send the tenant here to authenticate the payment (3-D Secure)."
    )


class TenantBillingOut(Model):
    tenant_id: str
    status: GateStatus
    customer: CustomerOut | None
    plan: PlanOut | None
    subscription: SubscriptionOut | None
    next_invoice: NextInvoiceOut | None
    invoices: InvoicesOut
    seats: SeatsOut | None = None
    usage: list[UsageOut] = Field(default_factory=list, description="This period's usage per meter.")
    has_payment_method: bool = Field(
        default=False, description="Whether the tenant has given a payment method (Checkout, the portal)."
    )
    payment_action_required: PaymentActionOut | None = Field(
        default=None, description="The latest payment needs the tenant's action: its hosted invoice page."
    )
    scheduled_change: ScheduledChangeOut | None = Field(
        default=None, description="A tier change waiting for the period's end (a downgrade), if any."
    )

    @classmethod
    def of(cls, billing: TenantBilling) -> TenantBillingOut:
        customer = billing.customer
        plan = billing.plan
        subscription = billing.subscription
        return cls(
            tenant_id=billing.tenant_id,
            status=GateStatus.of(billing.tenant_id, billing.gate),
            customer=CustomerOut(
                id=customer.customer_id,
                name=customer.name,
                email=customer.email,
                address=AddressOut(**customer.address.model_dump()) if customer.address else None,
            )
            if customer
            else None,
            plan=PlanOut(
                tier=plan.tier,
                price_id=plan.price.price_id if plan.price else None,
                lookup_key=plan.price.lookup_key if plan.price else None,
                amount=plan.price.amount if plan.price else None,
                currency=plan.price.currency if plan.price else None,
                interval=plan.price.interval if plan.price else None,
                interval_count=plan.price.interval_count if plan.price else None,
                quantity=plan.quantity,
            )
            if plan
            else None,
            subscription=SubscriptionOut(
                id=subscription.subscription_id,
                status=subscription.status,
                current_period_start=subscription.current_period_start,
                current_period_end=subscription.current_period_end,
                cancel_at_period_end=subscription.cancel_at_period_end,
            )
            if subscription
            else None,
            next_invoice=NextInvoiceOut(**billing.next_invoice.model_dump())
            if billing.next_invoice
            else None,
            invoices=_invoices(billing.invoices),
            seats=SeatsOut(**billing.seats.model_dump()) if billing.seats else None,
            usage=[UsageOut(**usage.model_dump()) for usage in billing.usage],
            has_payment_method=billing.has_payment_method,
            payment_action_required=PaymentActionOut(**billing.payment_action_required.model_dump())
            if billing.payment_action_required
            else None,
            scheduled_change=ScheduledChangeOut.of(billing.scheduled_change),
        )


def _invoices(page: InvoicePage) -> InvoicesOut:
    return InvoicesOut(
        data=[InvoiceOut.of(invoice) for invoice in page.invoices],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )
