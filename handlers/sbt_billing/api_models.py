"""The billing API's wire models (camelCase JSON), its error answer and its shared parameters."""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .billing_state import GateDecision, InvoicePage, TenantBilling
from .models import BillingState, InvoiceFact

TENANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}$"


class ApiError(Exception):
    """An answer other than 2xx, raised from a route and answered by the resolver's handler."""

    def __init__(
        self,
        status: HTTPStatus,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


# -- response models (camelCase on the wire) ------------------------------------------------------


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class GateStatus(Model):
    """Whether the tenant may provision or create resources now."""

    tenant_id: str
    state: BillingState
    allowed: bool
    reasons: list[str] = Field(description="Short codes explaining the state, e.g. subscription_past_due.")

    @classmethod
    def of(cls, tenant_id: str, decision: GateDecision) -> GateStatus:
        return cls(
            tenant_id=tenant_id,
            state=decision.state,
            allowed=decision.allowed,
            reasons=list(decision.reasons),
        )


class AddressOut(Model):
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None


class CustomerOut(Model):
    id: str | None = Field(description="The Stripe customer id; null while the account is not in Stripe yet.")
    name: str | None = None
    email: str | None = None
    address: AddressOut | None = None


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


class InvoiceOut(Model):
    id: str
    number: str | None = None
    status: str | None = None
    amount_due: int
    amount_paid: int
    currency: str | None = None
    due_date: datetime | None = None
    hosted_invoice_url: str | None = None
    created: datetime | None = None

    @classmethod
    def of(cls, invoice: InvoiceFact) -> InvoiceOut:
        return cls(id=invoice.invoice_id, **invoice.model_dump(exclude={"invoice_id"}))


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
        )


def _invoices(page: InvoicePage) -> InvoicesOut:
    return InvoicesOut(
        data=[InvoiceOut.of(invoice) for invoice in page.invoices],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


class ErrorDetail(Model):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None
    invoice: InvoiceOut | None = Field(
        default=None, description="payment_required: the open invoice to pay (hostedInvoiceUrl)."
    )


class ErrorOut(Model):
    error: ErrorDetail


TenantId = Annotated[str, Path(pattern=TENANT_ID_PATTERN, description="The SBT tenant id.")]
ERRORS: dict[int, OpenAPIResponse] = {
    status: {"description": description, "content": {"application/json": {"model": ErrorOut}}}
    for status, description in (
        (400, "The path, query or body is invalid."),
        (403, "The caller is not authenticated with IAM (SigV4)."),
        (404, "No such tenant."),
    )
}


def error_response(
    status: HTTPStatus,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    invoice: InvoiceOut | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    body = ErrorOut(error=ErrorDetail(code=code, message=message, details=details, invoice=invoice))
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump(mode="json", by_alias=True, exclude_none=True),
        headers=headers,
    )
