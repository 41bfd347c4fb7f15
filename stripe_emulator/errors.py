"""Stripe's error envelope and the exception the endpoints raise to produce it.

Stripe answers every error with ``{"error": {"type", "code", "message", "param", ...}}``.
The stripe SDK picks its exception class from the HTTP status and ``error.type``:
400/404 -> InvalidRequestError (or IdempotencyError when type is ``idempotency_error``),
401 -> AuthenticationError, 429 -> RateLimitError, 409/5xx -> APIError (retried).

The SDK retries a 429 only when the answer says ``Stripe-Should-Retry: true``. Stripe sends that
for a lock timeout (``code: lock_timeout``, another request holds the object) but not for a real
rate limit (``code: rate_limit``, too many requests): Stripe's SDKs leave those to the caller
(stripe/stripe-dotnet#1886, stripe/stripe-node#1110). So :func:`rate_limited` carries no
``Stripe-Should-Retry`` header unless a test asks for one, and :func:`lock_timeout` carries
``true``.
"""

from __future__ import annotations

from typing import Any

DOCS_URL = "https://docs.stripe.com/error-codes"


class StripeError(Exception):
    """An error answered with Stripe's error envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = dict(headers or {})

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        err: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            err["code"] = self.code
            err["doc_url"] = f"{DOCS_URL}#{self.code.replace('_', '-')}"
        if self.param is not None:
            err["param"] = self.param
        if request_id is not None:
            err["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        return {"error": err}


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> StripeError:
    return StripeError(400, message, param=param, code=code)


def missing_param(param: str) -> StripeError:
    return StripeError(400, f"Missing required param: {param}.", code="parameter_missing", param=param)


def unknown_param(param: str) -> StripeError:
    return StripeError(400, f"Received unknown parameter: {param}", code="parameter_unknown", param=param)


def empty_param(param: str) -> StripeError:
    return StripeError(
        400,
        f"You passed an empty string for '{param}'. We assume empty values are an attempt to unset a "
        f"parameter; however '{param}' cannot be unset. You should remove '{param}' from your request "
        "or supply a non-empty value.",
        code="parameter_invalid_empty",
        param=param,
    )


def no_such(kind: str, obj_id: str, param: str = "id") -> StripeError:
    return StripeError(404, f"No such {kind}: '{obj_id}'", code="resource_missing", param=param)


def api_error(message: str = "An unknown error occurred") -> StripeError:
    return StripeError(500, message, type="api_error")


def rate_limited(should_retry: bool | None = None) -> StripeError:
    """Too many requests. No ``Stripe-Should-Retry`` unless given (a fault modelling a retryable 429)."""
    headers = {"Stripe-Rate-Limited-Reason": "global-rate"}
    if should_retry is not None:
        headers["Stripe-Should-Retry"] = "true" if should_retry else "false"
    return StripeError(
        429,
        "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
        code="rate_limit",
        headers=headers,
    )


def lock_timeout() -> StripeError:
    """Another request or Stripe process holds the object: a 429 Stripe tells the SDK to retry."""
    return StripeError(
        429,
        "This object cannot be accessed right now because another API request or Stripe process is "
        "currently accessing it. If you see this error intermittently, retry the request. If you see "
        "this error frequently and are making multiple concurrent requests to a single object, make "
        "your requests serially or at a lower rate.",
        code="lock_timeout",
        headers={"Stripe-Should-Retry": "true"},
    )


def redact_key(key: str) -> str:
    """Stripe shows only the start and the last four characters of a key."""
    if len(key) <= 12:
        return "*" * len(key)
    return f"{key[:8]}{'*' * (len(key) - 12)}{key[-4:]}"
