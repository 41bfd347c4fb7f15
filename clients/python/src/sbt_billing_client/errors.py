"""What can go wrong, by HTTP status: each error carries the API's code and message."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Invoice


class BillingApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class InvalidRequest(BillingApiError):
    """400: a malformed tenant id, limit or cursor."""


class AccessDenied(BillingApiError):
    """403: the request was not signed, or the caller may not invoke the API."""


class TenantNotFound(BillingApiError):
    """404: no billing account for this tenant."""


class ServiceUnavailable(BillingApiError):
    """5xx: Stripe or AWS is unavailable; retrying later may succeed."""


class PaymentRequired(BillingApiError):
    """402 payment_required: the change is invoiced at once and the payment failed. The plan is
    unchanged; Stripe applies the change once `invoice` is paid (`invoice.hosted_invoice_url`)."""

    def __init__(self, status: int, code: str, message: str, invoice: Invoice | None = None) -> None:
        super().__init__(status, code, message)
        self.invoice = invoice


class Conflict(BillingApiError):
    """409: tenant_offboarded (final), or Busy (retry after `retry_after` seconds)."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(status, code, message)
        self.retry_after = retry_after


class Busy(Conflict):
    """409 tenant_busy or idempotency_in_progress: another change of the tenant (or this very request)
    is being applied. The change is recorded and applied with it: retry after `retry_after` seconds,
    with the same Idempotency-Key, to read the result."""


class IdempotencyKeyReused(BillingApiError):
    """422 idempotency_key_reused: the Idempotency-Key was used before with another request."""


BUSY_CODES = frozenset({"tenant_busy", "idempotency_in_progress"})


def error_for(
    status: int,
    code: str,
    message: str,
    retry_after: float | None = None,
    invoice: Invoice | None = None,
) -> BillingApiError:
    if status == 402:
        return PaymentRequired(status, code, message, invoice)
    if status == 409:
        return (Busy if code in BUSY_CODES else Conflict)(status, code, message, retry_after)
    kind: type[BillingApiError] = BillingApiError
    if status == 400:
        kind = InvalidRequest
    elif status == 403:
        kind = AccessDenied
    elif status == 404:
        kind = TenantNotFound
    elif status == 422:
        kind = IdempotencyKeyReused
    elif status >= 500:
        kind = ServiceUnavailable
    return kind(status, code, message)
