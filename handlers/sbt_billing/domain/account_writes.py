"""The one way an account is changed: read, merge, write with the revision read, and on a conflict merge
again into the account as it now is. The lifecycle's facts and Stripe's reports both go through it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sbt_billing.domain.errors import RevisionConflict
from sbt_billing.domain.models import Account
from sbt_billing.domain.ports import AccountStore


@dataclass(frozen=True)
class Again:
    """The answer after a write: run the step again, from `current` (the work the write led to found
    newer facts it must start over with)."""

    current: Account | None


@dataclass(frozen=True)
class Write[T]:
    """Write `account` (revision-checked against the account the step was given); `then` makes the
    answer from the account as written (or says to go Again)."""

    account: Account
    then: Callable[[Account], T | Again]


def write_merged[T](
    store: AccountStore, current: Account | None, step: Callable[[Account | None], T | Write[T]]
) -> T:
    """Runs `step` on the account as last read (`current`; None: there is none) until it answers without
    a write, or its write lands. A write that lost a race (RevisionConflict) is merged again, into the
    account that won it: no fact is lost, none is applied twice."""
    while True:
        decision = step(current)
        if not isinstance(decision, Write):
            return decision
        try:
            written = store.save(decision.account, expected_revision=current.revision if current else None)
        except RevisionConflict as conflict:
            current = account_or_none(conflict.current)
            continue
        answer = decision.then(written)
        if isinstance(answer, Again):
            current = answer.current
            continue
        return answer


def account_or_none(value: object) -> Account | None:
    return value if isinstance(value, Account) else None
