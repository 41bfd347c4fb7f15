"""The stack's own messages to the lifecycle, parsed at the boundary: a payment method the tenant gave
(Checkout, the portal), which the webhook hands to the tenant update function's queue."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import Field, StringConstraints

from sbt_billing.domain.models import TenantFacts
from sbt_billing.entrypoints.sbt_inbound import Inbound, TenantId

PaymentMethodId = Annotated[str, StringConstraints(pattern=r"^pm_[A-Za-z0-9_]{1,200}$")]


class PaymentMethodGivenDetail(Inbound):
    tenant_id: Annotated[TenantId, Field(alias="tenantId")]
    payment_method: Annotated[PaymentMethodId, Field(alias="paymentMethod")]
    stripe_event_id: Annotated[str | None, Field(alias="stripeEventId")] = None


class PaymentMethodGivenEvent(EventBridgeModel):
    detail: PaymentMethodGivenDetail


def payment_method_facts(event: PaymentMethodGivenEvent) -> TenantFacts:
    """The fact, at the time Stripe reported it: a later card given wins over an earlier one."""
    return TenantFacts(
        tenant_id=event.detail.tenant_id, payment_method=event.detail.payment_method, occurred_at=event.time
    )
