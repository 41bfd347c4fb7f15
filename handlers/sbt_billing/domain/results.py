"""What an operation is and what it did: the vocabulary every outcome uses."""

from __future__ import annotations

from enum import StrEnum


class Operation(StrEnum):
    OPEN_ACCOUNT = "open_account"
    UPDATE_ACCOUNT = "update_account"
    CLOSE_ACCOUNT = "close_account"
    RECONCILE_ACCOUNT = "reconcile_account"  # a reconcile run found Stripe off the recorded facts


class Result(StrEnum):
    APPLIED = "applied"  # Stripe now holds what the facts describe
    UNCHANGED = "unchanged"  # nothing new: a duplicate or an older fact
    RECORDED = "recorded"  # kept for later (no account yet) or handed to the worker holding the lease
    IGNORED = "ignored"  # the account is closed: offboarding is terminal
    IN_FLIGHT = "in_flight"  # the same fact is being processed by another invocation
    SCHEDULED = "scheduled"  # Stripe holds the change for the period's end (a subscription schedule)
    PAYMENT_REQUIRED = "payment_required"  # the tier change waits for its invoice to be paid (pending update)
    REJECTED = "rejected"  # bad input: nothing was written anywhere
    FAILED = "failed"  # Stripe refused for good: reported on the bus
