"""The tenant admin page's doors to Stripe's hosted pages:

    POST /tenants/{tenantId}/billing/portal-session    the customer portal (plan, card, invoices)
    POST /tenants/{tenantId}/billing/checkout-session  Checkout in setup mode (give a payment method)

Each answers a short-lived URL to redirect the tenant's browser to. What the tenant does there comes back
through Stripe's webhook (the account, the gate and the SBT bus follow)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from sbt_billing.domain.errors import NotBillable, PermanentBillingError, UnknownTenant
from sbt_billing.domain.self_service import FlowNotOffered, HostedSession, Offboarded, PortalFlow, SelfService
from sbt_billing.entrypoints.api.gate import tenant_not_found
from sbt_billing.entrypoints.api.wire import ERRORS, ApiError, ErrorOut, Model, TenantId

# Where the browser goes back to: an absolute http(s) URL without spaces (Stripe checks it too).
Url = Annotated[str, StringConstraints(min_length=10, max_length=2048, pattern=r"^https?://[^\s]+$")]


class RequestModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True)


class PortalSessionIn(RequestModel):
    return_url: Url = Field(description="Where the portal sends the tenant back (the admin page).")
    flow: PortalFlow | None = Field(
        default=None,
        description="A deep link into one flow: payment_method_update, subscription_update or "
        "subscription_cancel (only where the deployment's portal offers cancellation). Without it, the "
        "portal's home page.",
    )


class CheckoutSessionIn(RequestModel):
    success_url: Url = Field(description="Where Checkout sends the tenant once the card is saved.")
    cancel_url: Url = Field(description="Where Checkout sends the tenant if it goes back.")


class HostedSessionOut(Model):
    tenant_id: str
    url: str = Field(description="Redirect the tenant's browser here; it is short-lived and single-use.")
    session_id: str
    expires_at: datetime | None = Field(default=None, description="Checkout: when the session expires.")
    flow: PortalFlow | None = None

    @classmethod
    def of(cls, tenant_id: str, session: HostedSession, flow: PortalFlow | None = None) -> HostedSessionOut:
        return cls(
            tenant_id=tenant_id,
            url=session.url,
            session_id=session.session_id,
            expires_at=session.expires_at,
            flow=flow,
        )


def _answers() -> dict[int, OpenAPIResponse]:
    return {
        status: {"description": description, "content": {"application/json": {"model": ErrorOut}}}
        for status, description in (
            (409, "account_not_open (no Stripe customer or subscription yet) or tenant_offboarded."),
            (502, "stripe_refused: Stripe refused the session."),
        )
    }


def add_self_service_routes(app: APIGatewayRestResolver, service: Callable[[], SelfService]) -> None:
    @app.post(
        "/tenants/<tenantId>/billing/portal-session",
        summary="A customer portal session for the tenant: change plan, update the card, see invoices",
        description="The portal offers the catalogue's tiers, prorated and scheduled as the deployment "
        "says; its changes come back through the Stripe webhook.",
        responses={200: {"description": "The portal session's URL."}, **ERRORS, **_answers()},
        tags=["self-service"],
    )
    def post_portal_session(
        tenantId: TenantId,  # noqa: N803 - the path's own name
        request: Annotated[PortalSessionIn, Body(description="Where to come back, and an optional flow.")],
    ) -> HostedSessionOut:
        session = _opened(lambda: service().open_portal(tenantId, request.return_url, request.flow))
        return HostedSessionOut.of(tenantId, session, request.flow)

    @app.post(
        "/tenants/<tenantId>/billing/checkout-session",
        summary="A Checkout Session in setup mode: the tenant gives a payment method for its invoices",
        description="Once completed, the card becomes the customer's default and the subscription is "
        "charged automatically; with RequirePaymentMethod the gate allows the tenant from then on.",
        responses={200: {"description": "The Checkout Session's URL."}, **ERRORS, **_answers()},
        tags=["self-service"],
    )
    def post_checkout_session(
        tenantId: TenantId,  # noqa: N803 - the path's own name
        request: Annotated[CheckoutSessionIn, Body(description="Where Checkout sends the tenant back.")],
    ) -> HostedSessionOut:
        session = _opened(lambda: service().open_checkout(tenantId, request.success_url, request.cancel_url))
        return HostedSessionOut.of(tenantId, session)


def _opened(open_session: Callable[[], HostedSession]) -> HostedSession:
    try:
        return open_session()
    except UnknownTenant:
        raise tenant_not_found() from None
    except FlowNotOffered as error:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_request",
            f"flow: {error}",
            details=[{"loc": ["body", "flow"], "type": "flow_not_offered"}],
        ) from None
    except Offboarded:
        raise ApiError(HTTPStatus.CONFLICT, "tenant_offboarded", "The tenant is offboarded.") from None
    except NotBillable as error:
        raise ApiError(HTTPStatus.CONFLICT, "account_not_open", f"{error}.") from None
    except PermanentBillingError:
        raise ApiError(HTTPStatus.BAD_GATEWAY, "stripe_refused", "Stripe refused the session.") from None
