"""The internal billing API (API Gateway REST, IAM-authorised): routes, request and response models.

    GET /tenants/{tenantId}/billing/status   the gate: one strongly-consistent read, no Stripe call
    GET /tenants/{tenantId}/billing          the full view: the account, then Stripe (customer,
                                             subscription, next invoice, a page of invoices)
    GET /billing/openapi.json                this API's OpenAPI document, generated from the models

Errors are `{"error": {"code", "message", "details"?}}` with 400 (bad path or query), 403 (the
request did not come through API Gateway's IAM authorisation), 404 (unknown tenant or route),
502/503 (Stripe refused or is unreachable).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .billing_state import (
    BillingServices,
    GateDecision,
    InvoicePage,
    TenantBilling,
    decide,
    read_billing,
)
from .errors import ConfigurationError, PermanentBillingError, TransientBillingError
from .models import Account, BillingState

TITLE = "SBT Stripe billing API"
VERSION = "1.0.0"
OPENAPI_PATH = "/billing/openapi.json"
TENANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}$"
INVOICE_CURSOR_PATTERN = r"^in_[A-Za-z0-9]{1,255}$"


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


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
        data=[
            InvoiceOut(id=invoice.invoice_id, **invoice.model_dump(exclude={"invoice_id"}))
            for invoice in page.invoices
        ],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


class ErrorDetail(Model):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorOut(Model):
    error: ErrorDetail


# -- the resolver -------------------------------------------------------------------------------------

TenantId = Annotated[str, Path(pattern=TENANT_ID_PATTERN, description="The SBT tenant id.")]
ERRORS: dict[int, OpenAPIResponse] = {
    status: {"description": description, "content": {"application/json": {"model": ErrorOut}}}
    for status, description in (
        (400, "The path or query is invalid."),
        (403, "The caller is not authenticated with IAM (SigV4)."),
        (404, "No such tenant."),
    )
}


def make_resolver(
    services: Callable[[], BillingServices], metrics: Metrics | None = None
) -> APIGatewayRestResolver:
    """The API's routes over `services` (called per request; the caller caches). With `metrics`, one
    metric per answer: `Answered2xx`, `Answered4xx`, `Answered5xx`."""
    app = APIGatewayRestResolver(enable_validation=True)
    app.configure_openapi(
        **_openapi_metadata(),
        servers=[Server(url="/", description="The API's stage URL")],
    )

    def answered(response: Response[Any]) -> Response[Any]:
        if metrics is not None:
            metrics.add_metric(
                name=f"Answered{response.status_code // 100}xx", unit=MetricUnit.Count, value=1
            )
        return response

    def count(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
        # Errors raised in a route are answered (and counted) by the exception handlers below.
        return answered(next_middleware(app))

    app.use(middlewares=[count, _require_iam_caller])

    @app.get(
        "/tenants/<tenantId>/billing/status",
        summary="The tenant's billing gate",
        description="From one strongly-consistent read of the account table; never calls Stripe.",
        responses={200: {"description": "The gate's answer."}, **ERRORS},
        tags=["billing"],
    )
    def get_status(tenantId: TenantId) -> GateStatus:  # noqa: N803 - the path's own name
        current = services()
        return GateStatus.of(tenantId, decide(_account(current, tenantId), current.gate))

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
        account = _account(current, tenantId)
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
        except PermanentBillingError as error:
            if startingAfter is not None and "resource_missing" in str(error):
                raise ApiError(
                    HTTPStatus.BAD_REQUEST, "invalid_cursor", "startingAfter names no invoice"
                ) from None
            raise ApiError(HTTPStatus.BAD_GATEWAY, "stripe_refused", "Stripe refused the read") from None
        return TenantBillingOut.of(billing)

    @app.get(OPENAPI_PATH, summary="This API's OpenAPI document", tags=["meta"], include_in_schema=False)
    def get_openapi() -> Response[str]:
        return Response(
            status_code=HTTPStatus.OK,
            content_type=content_types.APPLICATION_JSON,
            body=openapi_document(app),
        )

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def invalid_request(error: RequestValidationError) -> Response[dict[str, Any]]:
        details = [{"loc": list(e["loc"]), "type": e["type"]} for e in error.errors()]
        return answered(
            _error(HTTPStatus.BAD_REQUEST, "invalid_request", "The path or query is invalid.", details)
        )

    @app.exception_handler(ApiError)  # type: ignore[untyped-decorator]
    def api_error(error: ApiError) -> Response[dict[str, Any]]:
        return answered(_error(error.status, error.code, error.message))

    @app.exception_handler(TransientBillingError)  # type: ignore[untyped-decorator]
    def unavailable(error: TransientBillingError) -> Response[dict[str, Any]]:
        return answered(
            _error(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "A dependency is unavailable; retry.")
        )

    @app.exception_handler(ConfigurationError)  # type: ignore[untyped-decorator]
    def misconfigured(error: ConfigurationError) -> Response[dict[str, Any]]:
        return answered(
            _error(HTTPStatus.INTERNAL_SERVER_ERROR, "misconfigured", "The billing service is misconfigured.")
        )

    @app.not_found
    def not_found(error: NotFoundError) -> Response[dict[str, Any]]:
        return answered(_error(HTTPStatus.NOT_FOUND, "not_found", "No such route."))

    return app


def openapi_document(app: APIGatewayRestResolver) -> str:
    return app.get_openapi_json_schema(**_openapi_metadata())


def _openapi_metadata() -> dict[str, Any]:
    """What the served document and docs/openapi.json say about the API, in one place."""
    return {
        "title": TITLE,
        "version": VERSION,
        "description": "Internal, IAM-authorised billing API of the SBT Stripe billing provider.",
        "security_schemes": {
            "sigv4": APIKey(
                name="Authorization",
                in_=APIKeyIn.header,
                description="AWS Signature Version 4 for service execute-api (IAM authorisation).",
            )
        },
        "security": [{"sigv4": []}],
    }


def _require_iam_caller(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Defence in depth: API Gateway's AWS_IAM authoriser fills the caller's identity; a request
    without one did not pass it (a misconfigured stage, a direct invocation) and is refused."""
    identity = app.current_event.request_context.identity
    if not (identity.user_arn or identity.caller):
        return _error(HTTPStatus.FORBIDDEN, "forbidden", "The request is not IAM-authenticated.")
    return next_middleware(app)


def _account(services: BillingServices, tenant_id: str) -> Account:
    """The tenant's account item, or 404."""
    account = services.store.get(tenant_id)
    if account is None:
        raise ApiError(HTTPStatus.NOT_FOUND, "tenant_not_found", "No billing account for this tenant.")
    return account


def _error(
    status: HTTPStatus, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> Response[dict[str, Any]]:
    body = ErrorOut(error=ErrorDetail(code=code, message=message, details=details))
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump(mode="json", by_alias=True, exclude_none=True),
    )
