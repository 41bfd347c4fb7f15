"""The domain's errors. Adapters translate their SDKs' errors into these, once, at the seam."""

from __future__ import annotations


class BillingError(Exception):
    """Base of the errors the domain knows how to treat."""


class InvalidEvent(BillingError):
    """The event cannot be processed as it is: retrying it changes nothing."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class TransientBillingError(BillingError):
    """A dependency failed in a way that a later attempt may not (throttling, 5xx, network).
    The invocation fails so that the platform retries, and at last dead-letters, the event."""


class TenantBusy(TransientBillingError):
    """Another invocation holds the tenant's lease and Stripe lags behind the recorded facts: retry
    after `retry_after` seconds (the lease's remaining time), when the holder is done or its lease over."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("another invocation holds the tenant's lease; retry later")
        self.retry_after = retry_after


class UnknownTenant(BillingError):
    """No billing account exists for the tenant (and the caller asked not to create one)."""


class NotBillable(BillingError):
    """The account has no subscription to change yet (pending, opening) or no longer (closed)."""


class PermanentBillingError(BillingError):
    """Stripe refused the request for good (invalid request, missing resource): a retry would fail the same."""


class ResourceMissing(PermanentBillingError):
    """Stripe has no such object (its `resource_missing` error): translated once, at the Stripe seam, so
    that callers that expect it (an item removed by a tier change, a deleted customer, a cursor naming
    no invoice) tell it apart from other refusals by its type."""


class ConfigurationError(BillingError):
    """The deployment cannot reach Stripe as configured (no key, a revoked key): the event is kept for
    redrive after the fix by failing the invocation."""


class SettingsError(ConfigurationError):
    """The function's settings (its environment) are invalid: no event can be processed until they are
    fixed. A ConfigurationError, so that every entry point treats it as one (retried, or a 500)."""


class RevisionConflict(BillingError):
    """Someone else wrote the account since it was read. Carries the account as it now is (None: absent)."""

    def __init__(self, current: object) -> None:
        super().__init__("the account changed since it was read")
        self.current = current
