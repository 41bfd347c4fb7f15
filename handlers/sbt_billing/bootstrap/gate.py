"""The billing gate: the accounts table and the deployment's gate policy (no Stripe)."""

from __future__ import annotations

from sbt_billing.bootstrap.clients import cached
from sbt_billing.bootstrap.settings import settings
from sbt_billing.bootstrap.stores import account_store
from sbt_billing.domain.gate import Gate, GatePolicy


def gate_policy() -> GatePolicy:
    """The deployment's gate policy: the gate's, the billing API's and the Stripe-report processor's."""
    config = settings()
    return GatePolicy(
        allowed_states=config.gate_allowed_states,
        require_payment_method=config.require_payment_method,
    )


@cached
def gate() -> Gate:
    return Gate(account_store(), gate_policy())
