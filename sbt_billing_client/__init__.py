"""A typed client of the SBT Stripe billing API for callers in the application plane.

Requests are signed with the caller's IAM credentials (SigV4, service `execute-api`), so the caller's
role needs `execute-api:Invoke` on the API's GET methods. Needs botocore (on Lambda's Python runtime
and in every boto3 install); nothing else beyond the standard library.

    from sbt_billing_client import BillingClient

    billing = BillingClient("https://abc123.execute-api.us-east-1.amazonaws.com/prod")
    gate = billing.status(tenant_id)
    if not gate.allowed:
        raise RuntimeError(f"billing says {gate.state}: {', '.join(gate.reasons)}")
"""

from .client import BillingClient
from .errors import AccessDenied, BillingApiError, InvalidRequest, ServiceUnavailable, TenantNotFound
from .models import (
    Address,
    BillingStatus,
    Customer,
    Invoice,
    InvoicePage,
    NextInvoice,
    Plan,
    Subscription,
    TenantBilling,
)

__all__ = [
    "AccessDenied",
    "Address",
    "BillingApiError",
    "BillingClient",
    "BillingStatus",
    "Customer",
    "InvalidRequest",
    "Invoice",
    "InvoicePage",
    "NextInvoice",
    "Plan",
    "ServiceUnavailable",
    "Subscription",
    "TenantBilling",
    "TenantNotFound",
]
