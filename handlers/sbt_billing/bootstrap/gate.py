"""The billing gate: the accounts table and the deployment's gate policy (no Stripe)."""

from __future__ import annotations

from sbt_billing.bootstrap.clients import cached
from sbt_billing.bootstrap.settings import settings
from sbt_billing.bootstrap.stores import account_store
from sbt_billing.domain.gate import Gate, GatePolicy


@cached
def gate() -> Gate:
    return Gate(
        account_store(),
        GatePolicy(
            allowed_states=settings().gate_allowed_states,
            require_payment_method=settings().require_payment_method,
        ),
    )
