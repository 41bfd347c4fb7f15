"""A typed client of the SBT Stripe billing API for callers in the application plane.

Requests are signed with the caller's IAM credentials (SigV4, service `execute-api`), so the caller's
role needs `execute-api:Invoke` on the API's GET methods (reads, previews); to change a tenant's
plan or details with update(), on its PATCH method; to open Stripe's hosted pages with
portal_session() and checkout_session(), on their POST methods. Needs botocore (on Lambda's Python runtime
and in every boto3 install); nothing else beyond the standard library.

    from sbt_billing_client import BillingClient

    billing = BillingClient("https://abc123.execute-api.us-east-1.amazonaws.com/prod")
    gate = billing.status(tenant_id)
    if not gate.allowed:
        raise RuntimeError(f"billing says {gate.state}: {', '.join(gate.reasons)}")
"""

from .client import BillingClient
from .errors import (
    AccessDenied,
    BillingApiError,
    Busy,
    Conflict,
    IdempotencyKeyReused,
    InvalidRequest,
    PaymentRequired,
    ServiceUnavailable,
    TenantNotFound,
)
from .models import (
    Address,
    Amount,
    BillingChange,
    BillingStatus,
    Customer,
    HostedSession,
    Invoice,
    InvoicePage,
    NextInvoice,
    PaymentAction,
    Plan,
    PlanPreview,
    ScheduledChange,
    Subscription,
    TenantBilling,
)

__all__ = [
    "AccessDenied",
    "Address",
    "Amount",
    "BillingApiError",
    "BillingChange",
    "BillingClient",
    "BillingStatus",
    "Busy",
    "Conflict",
    "Customer",
    "HostedSession",
    "IdempotencyKeyReused",
    "InvalidRequest",
    "Invoice",
    "InvoicePage",
    "NextInvoice",
    "PaymentAction",
    "PaymentRequired",
    "Plan",
    "PlanPreview",
    "ScheduledChange",
    "ServiceUnavailable",
    "Subscription",
    "TenantBilling",
    "TenantNotFound",
]
