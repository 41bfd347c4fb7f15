"""What can go wrong, by HTTP status: each error carries the API's code and message."""

from __future__ import annotations


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


def error_for(status: int, code: str, message: str) -> BillingApiError:
    kind: type[BillingApiError] = BillingApiError
    if status == 400:
        kind = InvalidRequest
    elif status == 403:
        kind = AccessDenied
    elif status == 404:
        kind = TenantNotFound
    elif status >= 500:
        kind = ServiceUnavailable
    return kind(status, code, message)
