"""SBT's onboarding, as billing sees it: the onboarding request, then the provisioning job's success or
failure, in whatever order and however often they arrive.

The onboarding request is the one event that names the tenant, its registration and (usually) its
tier together. SBT's provisioning job names only the registration. So the onboarding request links
the registration to the tenant, and a provisioning event finds its tenant through that link; one that
arrives first is kept under the registration and applied when the onboarding request lands.

When billing starts (`OpenOn`): once the tenant's resources exist (provisioning success, the
default), or at the onboarding request (SBT's own billing default, so that a provisioning job can
consult the gate). A provisioning failure closes the account without charging the tenant.
"""

from __future__ import annotations

from sbt_billing.domain.billing_policy import OpenOn
from sbt_billing.domain.lifecycle import Lifecycle
from sbt_billing.domain.models import Facts, Outcome, TenantFacts
from sbt_billing.domain.ports import RegistrationStore
from sbt_billing.domain.results import Operation, Result


class Onboarding:
    def __init__(self, lifecycle: Lifecycle, registrations: RegistrationStore, open_on: OpenOn) -> None:
        self._lifecycle = lifecycle
        self._registrations = registrations
        self._open_on = open_on

    def request(self, facts: TenantFacts, registration_id: str | None) -> Outcome:
        """The onboarding request: the tenant's facts, and the link from its registration (its tier was
        checked against the catalogue when the event was parsed, before anything is written)."""
        kept = self._registrations.link(registration_id, facts.tenant_id) if registration_id else []
        opens = self._open_on is OpenOn.ONBOARDING_REQUEST
        if not kept:
            if opens:
                return self._lifecycle.open_account(facts, registration_id)
            return self._lifecycle.update_account(facts, registration_id)
        # Provisioning came first. Record this request's facts (its tier above all) before applying what
        # was kept, so that a kept success opens with them and a kept failure closes before anything opens.
        outcomes = [self._lifecycle.update_account(facts, registration_id)]
        outcomes += [self._apply(early.about(facts.tenant_id), registration_id) for early in kept]
        if opens:
            outcomes.append(self._lifecycle.open_account(facts, registration_id))
        return min(outcomes, key=lambda outcome: _SIGNIFICANCE.index(outcome.result))

    def report(self, facts: Facts, tenant_id: str | None, registration_id: str | None) -> Outcome:
        """The provisioning job's success (`facts.open_requested`) or failure (`facts.provisioning_failed`)."""
        if tenant_id is None:
            assert registration_id is not None
            tenant_id = self._registrations.park(registration_id, facts)
            if tenant_id is None:
                return Outcome(
                    tenant_id=None,
                    operation=_operation(facts),
                    result=Result.RECORDED,
                    reason="kept until the onboarding request names the registration's tenant",
                )
        return self._apply(facts.about(tenant_id), registration_id)

    def _apply(self, facts: TenantFacts, registration_id: str | None) -> Outcome:
        if facts.provisioning_failed:
            return self._lifecycle.close_account(facts)
        return self._lifecycle.open_account(facts, registration_id)


# Which of several outcomes an event answers with: what it changed or failed to, before what it left.
_SIGNIFICANCE = (
    Result.FAILED,
    Result.APPLIED,
    Result.IN_FLIGHT,
    Result.RECORDED,
    Result.UNCHANGED,
    Result.IGNORED,
    Result.REJECTED,
)


def _operation(facts: Facts) -> Operation:
    return Operation.CLOSE_ACCOUNT if facts.provisioning_failed else Operation.OPEN_ACCOUNT
