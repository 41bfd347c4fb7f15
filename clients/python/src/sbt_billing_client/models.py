"""The API's answers as frozen dataclasses (the wire is camelCase JSON; see docs/API.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


@dataclass(frozen=True)
class ScheduledChange:
    """A tier change waiting for the current period's end (a downgrade with DowngradeAt period_end)."""

    tier: str
    at: datetime

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ScheduledChange | None:
        if not data:
            return None
        at = _time(data.get("at"))
        return cls(tier=str(data["tier"]), at=at) if at is not None else None


@dataclass(frozen=True)
class BillingStatus:
    tenant_id: str
    state: str  # active, trialing, past_due, unpaid, canceled, offboarded, unknown
    allowed: bool
    reasons: tuple[str, ...]  # e.g. payment_method_required, payment_action_required
    scheduled_change: ScheduledChange | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BillingStatus:
        return cls(
            tenant_id=str(data["tenantId"]),
            state=str(data["state"]),
            allowed=bool(data["allowed"]),
            reasons=tuple(str(reason) for reason in data.get("reasons") or ()),
            scheduled_change=ScheduledChange.from_json(data.get("scheduledChange")),
        )


@dataclass(frozen=True)
class Address:
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Address | None:
        if not data:
            return None
        return cls(
            line1=data.get("line1"),
            line2=data.get("line2"),
            city=data.get("city"),
            state=data.get("state"),
            postal_code=data.get("postalCode"),
            country=data.get("country"),
        )


@dataclass(frozen=True)
class Customer:
    id: str | None
    name: str | None
    email: str | None
    address: Address | None

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Customer | None:
        if data is None:
            return None
        return cls(
            id=data.get("id"),
            name=data.get("name"),
            email=data.get("email"),
            address=Address.from_json(data.get("address")),
        )


@dataclass(frozen=True)
class Plan:
    tier: str | None
    price_id: str | None
    lookup_key: str | None
    amount: int | None  # in the currency's smallest unit
    currency: str | None
    interval: str | None
    interval_count: int | None
    quantity: int | None

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Plan | None:
        if data is None:
            return None
        return cls(
            tier=data.get("tier"),
            price_id=data.get("priceId"),
            lookup_key=data.get("lookupKey"),
            amount=data.get("amount"),
            currency=data.get("currency"),
            interval=data.get("interval"),
            interval_count=data.get("intervalCount"),
            quantity=data.get("quantity"),
        )


@dataclass(frozen=True)
class Subscription:
    id: str
    status: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Subscription | None:
        if data is None:
            return None
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            current_period_start=_time(data.get("currentPeriodStart")),
            current_period_end=_time(data.get("currentPeriodEnd")),
            cancel_at_period_end=bool(data.get("cancelAtPeriodEnd")),
        )


@dataclass(frozen=True)
class Amount:
    """An amount due: the next invoice's, or what a plan change invoices at once (PlanPreview.due_now)."""

    amount_due: int  # in the currency's smallest unit
    currency: str
    period_end: datetime | None

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Amount | None:
        if data is None:
            return None
        return cls(
            amount_due=int(data["amountDue"]),
            currency=str(data["currency"]),
            period_end=_time(data.get("periodEnd")),
        )


NextInvoice = Amount  # the same shape on the wire (the billing read's nextInvoice)


@dataclass(frozen=True)
class Invoice:
    id: str
    number: str | None
    status: str | None
    amount_due: int
    amount_paid: int
    currency: str | None
    due_date: datetime | None
    hosted_invoice_url: str | None
    created: datetime | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Invoice:
        return cls(
            id=str(data["id"]),
            number=data.get("number"),
            status=data.get("status"),
            amount_due=int(data.get("amountDue") or 0),
            amount_paid=int(data.get("amountPaid") or 0),
            currency=data.get("currency"),
            due_date=_time(data.get("dueDate")),
            hosted_invoice_url=data.get("hostedInvoiceUrl"),
            created=_time(data.get("created")),
        )


@dataclass(frozen=True)
class InvoicePage:
    invoices: tuple[Invoice, ...]
    has_more: bool
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InvoicePage:
        return cls(
            invoices=tuple(Invoice.from_json(item) for item in data.get("data") or ()),
            has_more=bool(data.get("hasMore")),
            next_cursor=data.get("nextCursor"),
        )


@dataclass(frozen=True)
class PaymentAction:
    """The latest payment needs the tenant (authentication): send it to `hosted_invoice_url`."""

    invoice_id: str
    hosted_invoice_url: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PaymentAction | None:
        if not data:
            return None
        return cls(invoice_id=str(data["invoiceId"]), hosted_invoice_url=data.get("hostedInvoiceUrl"))


@dataclass(frozen=True)
class TenantBilling:
    tenant_id: str
    status: BillingStatus
    customer: Customer | None
    plan: Plan | None
    subscription: Subscription | None
    next_invoice: NextInvoice | None
    invoices: InvoicePage
    has_payment_method: bool = False
    payment_action_required: PaymentAction | None = None
    scheduled_change: ScheduledChange | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TenantBilling:
        return cls(
            tenant_id=str(data["tenantId"]),
            status=BillingStatus.from_json(data["status"]),
            customer=Customer.from_json(data.get("customer")),
            plan=Plan.from_json(data.get("plan")),
            subscription=Subscription.from_json(data.get("subscription")),
            next_invoice=NextInvoice.from_json(data.get("nextInvoice")),
            invoices=InvoicePage.from_json(data.get("invoices") or {}),
            has_payment_method=bool(data.get("hasPaymentMethod")),
            payment_action_required=PaymentAction.from_json(data.get("paymentActionRequired")),
            scheduled_change=ScheduledChange.from_json(data.get("scheduledChange")),
        )


@dataclass(frozen=True)
class BillingChange:
    """The answer to update(): the tenant's billing once Stripe has the change."""

    tenant_id: str
    # applied; scheduled (a downgrade at the period's end: scheduled_change); unchanged; recorded (the
    # account is not open yet and opens with it)
    result: str
    status: BillingStatus
    tier: str | None
    customer: Customer | None
    subscription_id: str | None
    subscription_status: str | None
    invoiced_now: Invoice | None  # what the change invoiced at once (ProrationBehavior always_invoice)
    scheduled_change: ScheduledChange | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BillingChange:
        subscription = data.get("subscription") or {}
        invoiced = data.get("invoicedNow")
        return cls(
            tenant_id=str(data["tenantId"]),
            result=str(data["result"]),
            status=BillingStatus.from_json(data["status"]),
            tier=data.get("tier"),
            customer=Customer.from_json(data.get("customer")),
            subscription_id=subscription.get("id"),
            subscription_status=subscription.get("status"),
            invoiced_now=Invoice.from_json(invoiced) if invoiced else None,
            scheduled_change=ScheduledChange.from_json(data.get("scheduledChange")),
        )


@dataclass(frozen=True)
class PlanPreview:
    """What changing to `tier` costs: `due_now` (invoiced at once, with always_invoice) and the next
    invoice. Pass `proration_date` to update() to be invoiced exactly `due_now`."""

    tenant_id: str
    tier: str
    current_tier: str | None
    proration_date: int  # epoch seconds
    proration_behavior: str
    due_now: Amount | None
    next_invoice: Amount | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanPreview:
        return cls(
            tenant_id=str(data["tenantId"]),
            tier=str(data["tier"]),
            current_tier=data.get("currentTier"),
            proration_date=int(data["prorationDate"]),
            proration_behavior=str(data["prorationBehavior"]),
            due_now=Amount.from_json(data.get("dueNow")),
            next_invoice=Amount.from_json(data.get("nextInvoice")),
        )


@dataclass(frozen=True)
class HostedSession:
    """A Stripe-hosted page for the tenant (the customer portal, or Checkout): redirect its browser to
    `url` (short-lived, single use)."""

    tenant_id: str
    url: str
    session_id: str
    expires_at: datetime | None  # Checkout's; the portal's session is short-lived and says nothing
    flow: str | None  # the portal's deep link, if one was asked for

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostedSession:
        return cls(
            tenant_id=str(data["tenantId"]),
            url=str(data["url"]),
            session_id=str(data["sessionId"]),
            expires_at=_time(data.get("expiresAt")),
            flow=data.get("flow"),
        )
