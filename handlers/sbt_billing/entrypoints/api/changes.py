"""The billing API's changes: PATCH /tenants/{tenantId}/billing and GET /tenants/{tenantId}/billing/preview.

A PATCH is a fact about the tenant (tier, tenantName, email, address), stamped with the request's
time (API Gateway's `requestTimeEpoch`), applied through the same lifecycle as `sbt_aws_tenantUpdated`:
the same per-field last-writer-wins registers (so a PATCH and an event for the same field order by
their times), the same lease, the same deterministic Stripe idempotency keys, the same
`sbt_aws_billingSuccess`. It answers once Stripe has it:

    200  applied (or nothing to change, or recorded on an account not opened yet): the new state,
         built from the account as written and the change's own answer from Stripe (no extra read)
    402  payment_required: the change is invoiced at once, the payment failed, Stripe keeps the change
         pending until the invoice (its hosted link in the answer) is paid; the plan is unchanged
    409  tenant_busy (Retry-After): another invocation is applying this tenant's changes; this one is
         recorded and that invocation applies it too, so a retry (or a GET) shows the result
    409  tenant_offboarded, idempotency_in_progress (Retry-After)
    422  idempotency_key_reused: the Idempotency-Key came with another body before

With an `Idempotency-Key` header, a retry returns the first answer (200, 402 and 502 are kept for
IDEMPOTENCY_EXPIRY_SECONDS; 4xx before Stripe was asked and 409/5xx are not, as Stripe's own API does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from sbt_billing.domain.catalogue import TierPlan, tier_plan
from sbt_billing.domain.errors import (
    InvalidEvent,
    NotBillable,
    PermanentBillingError,
    TenantBusy,
    UnknownTenant,
)
from sbt_billing.domain.gate import GatePolicy, decide
from sbt_billing.domain.models import AccountStatus, Address, Lease, Outcome, TenantFacts
from sbt_billing.domain.results import Result
from sbt_billing.domain.values import InvoiceAmount, PlanPreview
from sbt_billing.entrypoints.api.gate import tenant_not_found
from sbt_billing.entrypoints.api.wire import (
    ERRORS,
    AddressOut,
    ApiError,
    CustomerOut,
    ErrorDetail,
    ErrorOut,
    GateStatus,
    InvoiceOut,
    Model,
    ScheduledChangeOut,
    TenantId,
)
from sbt_billing.entrypoints.customer_fields import Country, CustomerName, Email

IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"  # printable ASCII, at most 255 characters, as Stripe's
PRORATION_DATE_MAX_AGE = timedelta(hours=1)  # how long a preview's prorationDate stays usable
CLOCK_SKEW = timedelta(minutes=5)
BUSY_RETRY_AFTER_SECONDS = 1  # a lease holder is usually done within a second

Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
TierName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


# -- requests (camelCase, unknown fields refused) ----------------------------------------------------


class ChangeModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True)


class AddressIn(ChangeModel):
    line1: Line | None = None
    line2: Line | None = None
    city: Line | None = None
    state: Line | None = None
    postal_code: Line | None = None
    country: Annotated[Country | None, Field(description="ISO 3166-1 alpha-2.")] = None

    def to_domain(self) -> Address:
        return Address(
            line1=self.line1,
            line2=self.line2,
            city=self.city,
            state=self.state,
            postal_code=self.postal_code,
            country=self.country,
        )


class BillingChangeIn(ChangeModel):
    """Any of tier, tenantName, email, address (an absent field stays as it is)."""

    tier: TierName | None = Field(default=None, description="A tier of the deployment's TierCatalogue.")
    tenant_name: CustomerName | None = None
    email: Email | None = None
    address: AddressIn | None = Field(
        default=None, description="The billing address, as sbt_aws_tenantUpdated carries it."
    )
    proration_date: int | None = Field(
        default=None,
        ge=0,
        description="With tier: prorate as of this time (epoch seconds), the prorationDate a preview "
        "answered, so that the invoice matches it to the cent. At most an hour old.",
    )

    @model_validator(mode="after")
    def _names_a_change(self) -> BillingChangeIn:
        if all(value is None for value in (self.tier, self.tenant_name, self.email, self.address)):
            raise ValueError("names none of tier, tenantName, email, address: nothing to change")
        if self.proration_date is not None and self.tier is None:
            raise ValueError("prorationDate goes with tier")
        return self

    def facts(self, tenant_id: str, at: datetime) -> TenantFacts:
        return TenantFacts(
            tenant_id=tenant_id,
            name=self.tenant_name,
            email=self.email,
            tier=self.tier,
            address=self.address.to_domain() if self.address else None,
            proration_date=_epoch(self.proration_date) if self.proration_date is not None else None,
            occurred_at=at,
        )


# -- answers -----------------------------------------------------------------------------------------


class SubscriptionStatusOut(Model):
    id: str
    status: str | None


class BillingChangeOut(Model):
    """The tenant's billing after the change, from the account as written and Stripe's answer to the
    change itself: no read beyond what the change costs (GET /billing has the full view)."""

    tenant_id: str
    result: Literal["applied", "scheduled", "unchanged", "recorded"] = Field(
        description="applied: Stripe has it; scheduled: a downgrade Stripe applies when the period ends "
        "(DowngradeAt period_end, see scheduledChange); unchanged: nothing to change (or an older fact); "
        "recorded: the account is not open yet and opens with it."
    )
    status: GateStatus
    tier: str | None = Field(description="The tier Stripe bills now (recorded: the tier it opens with).")
    customer: CustomerOut
    subscription: SubscriptionStatusOut | None
    invoiced_now: InvoiceOut | None = Field(
        default=None,
        description="The invoice the change made at once (ProrationBehavior always_invoice), else null.",
    )
    scheduled_change: ScheduledChangeOut | None = Field(
        default=None, description="The tier change waiting for the period's end, if any."
    )


class AmountOut(Model):
    amount_due: int = Field(description="In the currency's smallest unit.")
    currency: str
    period_end: datetime | None = None

    @classmethod
    def of(cls, amount: InvoiceAmount | None) -> AmountOut | None:
        return cls(**amount.model_dump()) if amount else None


class PlanPreviewOut(Model):
    tenant_id: str
    tier: str
    current_tier: str | None
    proration_date: int = Field(description="Epoch seconds: pass it to PATCH to be invoiced exactly this.")
    proration_behavior: str
    due_now: AmountOut | None = Field(
        description="What the change invoices at once (ProrationBehavior always_invoice), else null."
    )
    next_invoice: AmountOut | None = Field(
        description="The next regular invoice after the change (with its prorations, if they wait for it)."
    )


class ChangeAnswer(BaseModel):
    """A PATCH's answer as the idempotency record keeps it."""

    status: int
    body: dict[str, Any]


class IdempotentChange(BaseModel):
    """What an Idempotency-Key stands for: the tenant and key (the record's key) and the body (checked)."""

    tenant_id: str
    key: str
    body: dict[str, Any]


@dataclass(frozen=True)
class ChangeServices:
    """What the change routes need (the API function's entry assembles it from the composition root)."""

    catalogue: Mapping[str, TierPlan]
    gate: GatePolicy
    # Lifecycle.update_account(facts, must_exist=True) within the invocation's remaining seconds.
    apply: Callable[[TenantFacts, float], Outcome]
    # Lifecycle.preview_plan_change(tenant, tier, proration date) within the remaining seconds.
    preview: Callable[[str, str, datetime, float], PlanPreview]
    # Runs the change once per (tenant, Idempotency-Key); raises ApiError for a reused or busy key.
    once: Callable[[IdempotentChange, Callable[[], ChangeAnswer]], ChangeAnswer]


def _answers(*statuses: tuple[int, str]) -> dict[int, OpenAPIResponse]:
    return {
        status: {"description": description, "content": {"application/json": {"model": ErrorOut}}}
        for status, description in statuses
    }


# -- the routes --------------------------------------------------------------------------------------


def add_change_routes(app: APIGatewayRestResolver, changes: Callable[[], ChangeServices]) -> None:
    @app.patch(
        "/tenants/<tenantId>/billing",
        summary="Change the tenant's tier or details, answered once Stripe has the change",
        description="Any of tier, tenantName, email, address. Ordered with sbt_aws_tenantUpdated by time.",
        responses={
            200: {
                "description": "The change is applied (or recorded on an account not opened yet).",
                "content": {"application/json": {"model": BillingChangeOut}},
            },
            **ERRORS,
            **_answers(
                (402, "payment_required: the change waits for its invoice (error.invoice) to be paid."),
                (409, "tenant_busy or idempotency_in_progress (Retry-After), or tenant_offboarded."),
                (422, "idempotency_key_reused: the Idempotency-Key came with another body."),
                (502, "stripe_refused: Stripe refused the change."),
            ),
        },
        tags=["billing"],
    )
    def patch_billing(
        tenantId: TenantId,  # noqa: N803 - the path's own name
        change: Annotated[BillingChangeIn, Body(description="The fields to change.")],
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                pattern=IDEMPOTENCY_KEY_PATTERN,
                description="A retry with the same key returns the first answer (24 hours by default).",
            ),
        ] = None,
    ) -> Response[dict[str, Any]]:
        current = changes()
        if change.tier is not None:
            _known_tier(current.catalogue, change.tier, ("body", "tier"))
        at = _request_time(app)
        if change.proration_date is not None:
            _usable_proration_date(_epoch(change.proration_date), at, ("body", "prorationDate"))
        facts = change.facts(tenantId, at)
        seconds_left = _seconds_left(app)

        def run() -> ChangeAnswer:
            # Raised, not answered: an idempotency record keeps no 404 and no 409 (a retry may succeed).
            try:
                outcome = current.apply(facts, seconds_left)
            except TenantBusy as error:
                raise tenant_busy(error.retry_after) from None
            except UnknownTenant:
                raise tenant_not_found() from None
            return _answer(outcome, current.gate)

        if idempotency_key is None:
            answer = run()
        else:
            body = change.model_dump(mode="json", by_alias=True, exclude_none=True)
            answer = current.once(IdempotentChange(tenant_id=tenantId, key=idempotency_key, body=body), run)
        return Response(
            status_code=answer.status, content_type=content_types.APPLICATION_JSON, body=answer.body
        )

    @app.get(
        "/tenants/<tenantId>/billing/preview",
        summary="What changing the tenant's tier would cost, now and on the next invoice",
        description="Stripe's invoice preview of the very update a PATCH makes; changes nothing.",
        responses={
            200: {"description": "The preview."},
            **ERRORS,
            **_answers(
                (409, "account_not_open: the tenant has no subscription to change yet."),
                (502, "stripe_refused: Stripe refused the preview."),
            ),
        },
        tags=["billing"],
    )
    def get_preview(
        tenantId: TenantId,  # noqa: N803 - the path's own name
        tier: Annotated[str, Query(min_length=1, max_length=64, description="The tier to change to.")],
        prorationDate: Annotated[  # noqa: N803 - the query's own name
            int | None, Query(ge=0, description="Epoch seconds; default: now.")
        ] = None,
    ) -> PlanPreviewOut:
        current = changes()
        _known_tier(current.catalogue, tier, ("query", "tier"))
        now = _request_time(app)
        at = now.replace(microsecond=0) if prorationDate is None else _epoch(prorationDate)
        _usable_proration_date(at, now, ("query", "prorationDate"))
        try:
            preview = current.preview(tenantId, tier, at, _seconds_left(app))
        except UnknownTenant:
            raise tenant_not_found() from None
        except NotBillable:
            raise ApiError(
                HTTPStatus.CONFLICT, "account_not_open", "The tenant has no subscription to change yet."
            ) from None
        except PermanentBillingError:
            raise ApiError(HTTPStatus.BAD_GATEWAY, "stripe_refused", "Stripe refused the preview.") from None
        return PlanPreviewOut(
            tenant_id=tenantId,
            tier=tier,
            current_tier=preview.from_tier,
            proration_date=int(preview.proration_date.timestamp()),
            proration_behavior=preview.proration_behavior,
            due_now=AmountOut.of(preview.due_now),
            next_invoice=AmountOut.of(preview.next_invoice),
        )


def _answer(outcome: Outcome, gate: GatePolicy) -> ChangeAnswer:
    """The lifecycle's outcome as the API answers it; raises for the answers a retry must not replay."""
    account = outcome.account
    result = outcome.result
    if result in (Result.RECORDED, Result.IN_FLIGHT) and (
        account is None or account.status is not AccountStatus.PENDING
    ):
        raise tenant_busy(_retry_after(account.lease if account else None, datetime.now(UTC)))
    if result is Result.IGNORED:
        raise ApiError(HTTPStatus.CONFLICT, "tenant_offboarded", "The tenant is offboarded.")
    if result is Result.PAYMENT_REQUIRED:
        body = ErrorOut(
            error=ErrorDetail(
                code="payment_required",
                message="The change is invoiced at once and the payment failed: the plan is unchanged "
                "until the invoice is paid.",
                invoice=InvoiceOut.of(outcome.invoice) if outcome.invoice else None,
            )
        )
        return ChangeAnswer(status=HTTPStatus.PAYMENT_REQUIRED, body=_json(body, exclude_none=True))
    if result is Result.FAILED or account is None:
        # Stripe's own words may repeat what the request carried: only the kind of refusal is echoed.
        kind = (outcome.reason or "").split(":", 1)[0]
        body = ErrorOut(
            error=ErrorDetail(code="stripe_refused", message=f"Stripe refused the change ({kind}).")
        )
        return ChangeAnswer(status=HTTPStatus.BAD_GATEWAY, body=_json(body, exclude_none=True))
    details = account.desired.details()
    answer = BillingChangeOut(
        tenant_id=account.tenant_id,
        result="applied"
        if result is Result.APPLIED
        else "scheduled"
        if result is Result.SCHEDULED
        else "unchanged"
        if result is Result.UNCHANGED
        else "recorded",
        status=GateStatus.of(account.tenant_id, decide(account, gate)),
        tier=account.applied_tier
        or (account.desired.tier_value if account.status is AccountStatus.PENDING else None),
        customer=CustomerOut(
            id=account.customer_id,
            name=details.name,
            email=details.email,
            address=AddressOut(**details.address.model_dump()) if details.address else None,
        ),
        subscription=SubscriptionStatusOut(id=account.subscription_id, status=account.subscription_status)
        if account.subscription_id
        else None,
        invoiced_now=InvoiceOut.of(outcome.invoice) if outcome.invoice else None,
        scheduled_change=ScheduledChangeOut.of(account.scheduled_change),
    )
    return ChangeAnswer(status=HTTPStatus.OK, body=_json(answer))


# -- errors the Idempotency-Key handling raises too ----------------------------------------------------------------------


def tenant_busy(retry_after: float) -> ApiError:
    return ApiError(
        HTTPStatus.CONFLICT,
        "tenant_busy",
        "Another change of this tenant is being applied; this one is recorded and applied with it. "
        "Retry to read the result.",
        headers={"Retry-After": str(max(1, round(retry_after)))},
    )


def idempotency_in_progress() -> ApiError:
    return ApiError(
        HTTPStatus.CONFLICT,
        "idempotency_in_progress",
        "A request with this Idempotency-Key is in progress; retry to read its answer.",
        headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
    )


def idempotency_key_reused() -> ApiError:
    return ApiError(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "This Idempotency-Key was used with another request body.",
    )


# -- helpers -----------------------------------------------------------------------------------------


def _retry_after(lease: Lease | None, now: datetime) -> float:
    """A second while the lease holder's invocation runs (it applies the recorded fact before it
    releases); the lease's remaining time when that invocation ended without releasing it."""
    if lease is None or (lease.working_until is not None and lease.working_until > now):
        return BUSY_RETRY_AFTER_SECONDS
    return max((lease.expires_at - now).total_seconds(), BUSY_RETRY_AFTER_SECONDS)


def _known_tier(catalogue: Mapping[str, TierPlan], tier: str, loc: tuple[str, str]) -> None:
    try:
        tier_plan(catalogue, tier)
    except InvalidEvent as error:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_request",
            f"{loc[1]}: {error.problem}",
            details=[{"loc": list(loc), "type": "unknown_tier"}],
        ) from None


def _usable_proration_date(at: datetime, now: datetime, loc: tuple[str, str]) -> None:
    if not now - PRORATION_DATE_MAX_AGE <= at <= now + CLOCK_SKEW:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_request",
            f"{loc[1]}: must be within the last hour (a preview's prorationDate)",
            details=[{"loc": list(loc), "type": "out_of_range"}],
        )


def _request_time(app: APIGatewayRestResolver) -> datetime:
    """When API Gateway received the request (the fact's time), else now (a direct invocation)."""
    epoch_ms = app.current_event.request_context.request_time_epoch
    if isinstance(epoch_ms, int) and epoch_ms > 0:
        return datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return datetime.now(UTC)


def _seconds_left(app: APIGatewayRestResolver) -> float:
    context = app.lambda_context
    return context.get_remaining_time_in_millis() / 1000 if context is not None else 30.0


def _epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _json(model: BaseModel, exclude_none: bool = False) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=exclude_none)
