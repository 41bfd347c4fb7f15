"""What every route of the billing API shares on the wire (camelCase JSON): the gate's answer, the error
answer, the tenant id parameter. The full read's models are in reads.py, the changes' in changes.py."""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from sbt_billing.domain.billing_policy import BillingState
from sbt_billing.domain.gate import GateDecision
from sbt_billing.domain.models import InvoiceFact, ScheduledChange

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


class ScheduledChangeOut(Model):
    """A tier change that waits for the current period's end."""

    tier: str
    at: datetime = Field(description="When it takes effect (the current period's end).")

    @classmethod
    def of(cls, change: ScheduledChange | None) -> ScheduledChangeOut | None:
        return cls(tier=change.tier, at=change.at) if change is not None else None


class GateStatus(Model):
    """Whether the tenant may provision or create resources now."""

    tenant_id: str
    state: BillingState
    allowed: bool
    reasons: list[str] = Field(description="Short codes explaining the state, e.g. subscription_past_due.")
    scheduled_change: ScheduledChangeOut | None = Field(
        default=None, description="A tier change waiting for the period's end (a downgrade), if any."
    )

    @classmethod
    def of(cls, tenant_id: str, decision: GateDecision) -> GateStatus:
        return cls(
            tenant_id=tenant_id,
            state=decision.state,
            allowed=decision.allowed,
            reasons=list(decision.reasons),
            scheduled_change=ScheduledChangeOut.of(decision.scheduled_change),
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
