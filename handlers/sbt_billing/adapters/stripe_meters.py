"""Stripe's meters as the usage functions see them: which meters exist and whether each is usable. A
mixin of StripeBillingGateway (the same client, the same seam)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import stripe

from sbt_billing.domain.usage_values import MeterStatus

T = TypeVar("T")

METER_CACHE_SECONDS = 300.0
# What our meter events carry (stripe_billing.send_meter_events): a meter must read these keys.
EVENT_PAYLOAD_KEYS = ("stripe_customer_id", "value")


class StripeMeters:
    _client: stripe.StripeClient
    _meters: tuple[dict[str, str], float] | None = None
    _meter_check: tuple[dict[str, MeterStatus], float] | None = None

    def _call(self, request: Callable[[], T]) -> T:  # the gateway's seam
        raise NotImplementedError

    def _meter_ids(self) -> dict[str, str]:
        """Active meters by event name, cached for a few minutes per container."""
        now = time.monotonic()
        if self._meters is None or now - self._meters[1] > METER_CACHE_SECONDS:
            listed = self._call(
                lambda: self._client.v1.billing.meters.list(params={"status": "active", "limit": 100})
            )
            self._meters = ({meter.event_name: meter.id for meter in listed.data}, now)
        return self._meters[0]

    # -- MeterDirectory ---------------------------------------------------------------------------

    def meter_states(self, event_names: Sequence[str]) -> dict[str, MeterStatus]:
        """Each event name's meter: one list call per container while every meter checked is usable;
        a broken one is looked at again after a few minutes, so that a fix is seen without a deploy."""
        now = time.monotonic()
        check = self._meter_check
        stale = check is None or any(
            check[0].get(name, MeterStatus.MISSING) is not MeterStatus.ACTIVE for name in event_names
        )
        if check is None or (stale and now - check[1] > METER_CACHE_SECONDS):
            states: dict[str, MeterStatus] = {}
            for meter in self._call(lambda: self._client.v1.billing.meters.list(params={"limit": 100})).data:
                state = _meter_state(meter)
                if states.get(meter.event_name) is not MeterStatus.ACTIVE:  # an active one wins
                    states[meter.event_name] = state
            check = self._meter_check = (states, now)
        return {name: check[0].get(name, MeterStatus.MISSING) for name in event_names}


def _meter_state(meter: stripe.billing.Meter) -> MeterStatus:
    if meter.status != "active":
        return MeterStatus.INACTIVE
    keys = (meter.customer_mapping.event_payload_key, meter.value_settings.event_payload_key)
    return MeterStatus.ACTIVE if keys == EVENT_PAYLOAD_KEYS else MeterStatus.MISCONFIGURED
