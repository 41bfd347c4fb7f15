"""The deployment's billing choices: how a tenant without a payment method is billed, how a tier change
and an offboarding are charged, what becomes of the Stripe customer, when billing starts and when a
downgrade applies; and the billing states the gate may allow. Plain enums: the settings read them
without loading pydantic."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CollectionMode(StrEnum):
    """How a tenant without a payment method is billed from day one."""

    SEND_INVOICE = "send_invoice"  # Stripe emails an invoice payable within DAYS_UNTIL_DUE days
    TRIAL = "trial"  # charge automatically after TRIAL_DAYS; pause if no payment method by then


class ProrationBehavior(StrEnum):
    CREATE_PRORATIONS = "create_prorations"
    ALWAYS_INVOICE = "always_invoice"
    NONE = "none"


class CancellationMode(StrEnum):
    IMMEDIATELY = "immediately"  # cancel now, prorate, and invoice what is owed at once
    PERIOD_END = "period_end"  # keep the service paid for until the period ends


class CustomerOnDelete(StrEnum):
    MARK_OFFBOARDED = "mark_offboarded"  # keep the customer (and its invoices), metadata offboarded=true
    DELETE = "delete"


class BillingState(StrEnum):
    """A tenant's billing state as the gate reports it (see billing_state.py for the derivation)."""

    ACTIVE = "active"
    TRIALING = "trialing"
    PAST_DUE = "past_due"
    UNPAID = "unpaid"
    CANCELED = "canceled"
    OFFBOARDED = "offboarded"
    UNKNOWN = "unknown"


class OpenOn(StrEnum):
    """When billing starts for a tenant SBT onboards."""

    PROVISION_SUCCESS = "provisionSuccess"  # once its resources exist
    ONBOARDING_REQUEST = "onboardingRequest"  # at registration (SBT's own billing default)


class DowngradeAt(StrEnum):
    IMMEDIATELY = "immediately"  # a cheaper tier applies at once, prorated like any change
    PERIOD_END = "period_end"  # a cheaper tier starts when the current period ends


@dataclass(frozen=True)
class BillingPolicy:
    """The deployment's choices that shape Stripe requests (from the settings)."""

    collection_mode: CollectionMode
    days_until_due: int
    trial_days: int
    proration_behavior: ProrationBehavior
    cancellation_mode: CancellationMode
    customer_on_delete: CustomerOnDelete
