"""Metered usage: SBT's usage records become Stripe Billing Meter events, each exactly once.

Every record gets a deterministic identifier (from the tenant, the usage name and the record's own
id, or its time and value when it has none) and is kept in the usage outbox before anything is sent.
Sending takes the tenant's pending records in batches of up to 100 (Stripe's meter event stream
limit); a record is marked sent only after Stripe accepted its batch, and Stripe ignores an
identifier it has already seen, so a retry counts nothing twice. Records that cannot be sent yet (no
Stripe customer, Stripe unavailable, a meter Stripe does not have or has deactivated) stay pending:
the scheduled flush retries them. A record outside Stripe's window (35 days back, 5 minutes ahead), or
whose value Stripe would drop (more than 15 digits) or the meter's bounds refuse, is refused with a
clear reason, never dropped quietly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from sbt_billing.domain.catalogue import UsageMeter
from sbt_billing.domain.errors import InvalidEvent
from sbt_billing.domain.frozen import Frozen
from sbt_billing.domain.models import Account, AccountStatus, digest_of
from sbt_billing.domain.ports import (
    AccountStore,
    BillingGateway,
    Clock,
    EventPublisher,
    MeterDirectory,
    UsageOutbox,
)
from sbt_billing.domain.published import BILLING_FAILURE
from sbt_billing.domain.usage_values import MeterEvent, MeterStatus, UsageRecord

STRIPE_BATCH = 100
PAST_WINDOW = timedelta(days=35)
FUTURE_WINDOW = timedelta(minutes=5)
MAX_DIGITS = 15  # Stripe rejects meter event values with more significant digits (API 2026-04-22)


class RawUsage(Frozen):
    """One usage record as SBT reported it."""

    name: str
    value: Decimal
    timestamp: datetime
    record_id: str | None = None


class Rejection(Frozen):
    index: int
    reason: str


class UsageOutcome(Frozen):
    tenant_id: str
    accepted: int = 0
    new: int = 0
    sent: int = 0
    rejected: tuple[Rejection, ...] = ()

    def as_response(self) -> dict[str, object]:
        return self.model_dump(mode="json")


class Usage:
    def __init__(
        self,
        outbox: UsageOutbox,
        accounts: AccountStore,
        billing: BillingGateway,
        publisher: EventPublisher,
        clock: Clock,
        meters: Mapping[str, UsageMeter],
        directory: MeterDirectory,
    ) -> None:
        self._outbox = outbox
        self._accounts = accounts
        self._billing = billing
        self._publisher = publisher
        self._clock = clock
        self._meters = meters
        self._directory = directory
        self.unavailable: dict[str, MeterStatus] = {}  # meters that held records back, for the metrics

    def ingest(self, tenant_id: str, records: Sequence[RawUsage]) -> UsageOutcome:
        now = self._clock.now()
        accepted: list[UsageRecord] = []
        rejected: list[Rejection] = []
        for index, raw in enumerate(records):
            try:
                accepted.append(self._record(tenant_id, raw, now))
            except InvalidEvent as error:
                rejected.append(
                    Rejection(index=index, reason=f"usage[{index}].{error.field}: {error.problem}")
                )
        new = self._outbox.add(accepted) if accepted else []
        for rejection in rejected:
            self._fail(tenant_id, rejection.reason)
        sent = self.flush(tenant_id, fresh=new)
        return UsageOutcome(
            tenant_id=tenant_id, accepted=len(accepted), new=len(new), sent=sent, rejected=tuple(rejected)
        )

    def flush(self, tenant_id: str, account: Account | None = None, fresh: Sequence[UsageRecord] = ()) -> int:
        """Sends the tenant's pending usage; returns how many records Stripe took. `fresh` are records
        just added, which the pending index (eventually consistent) may not list yet."""
        pending = {record.identifier: record for record in fresh}
        pending |= {record.identifier: record for record in self._outbox.pending(tenant_id)}
        if not pending:
            return 0
        account = account or self._accounts.get(tenant_id)
        if account is not None and account.status is AccountStatus.CLOSED:
            self._reject(
                list(pending.values()), "the tenant was offboarded before this usage could be billed"
            )
            return 0
        if account is None or account.customer_id is None:
            return 0  # kept until the tenant's customer exists
        now = self._clock.now()
        ready = [
            record
            for record in pending.values()
            if now - PAST_WINDOW <= record.timestamp <= now + FUTURE_WINDOW
        ]
        self._reject(
            [record for record in pending.values() if record.timestamp < now - PAST_WINDOW],
            "is older than Stripe's 35-day window for meter events",
        )
        ready = self._sendable(tenant_id, ready)
        for start in range(0, len(ready), STRIPE_BATCH):
            batch = ready[start : start + STRIPE_BATCH]
            self._billing.send_meter_events(
                [
                    MeterEvent(
                        event_name=record.event_name,
                        identifier=record.identifier,
                        customer_id=account.customer_id,
                        value=record.value,
                        timestamp=record.timestamp,
                    )
                    for record in batch
                ]
            )
            self._outbox.mark_sent(batch)
        return len(ready)

    def _sendable(self, tenant_id: str, ready: list[UsageRecord]) -> list[UsageRecord]:
        """The records whose meter Stripe has, active and shaped for our events. The others stay pending
        (Stripe would accept them, then drop them) and the configuration error is reported."""
        if not ready:
            return ready
        states = self._directory.meter_states(sorted({record.event_name for record in ready}))
        broken = {name: state for name, state in states.items() if state is not MeterStatus.ACTIVE}
        broken |= {r.event_name: MeterStatus.MISSING for r in ready if r.event_name not in states}
        if not broken:
            return ready
        self.unavailable |= broken
        held = [record for record in ready if record.event_name in broken]
        meters = ", ".join(f"{name} ({state.value})" for name, state in sorted(broken.items()))
        self._fail(
            tenant_id,
            f"{len(held)} usage records kept pending: Stripe has no usable meter for {meters}; "
            "fix the meter (or UsageMeters) and the scheduled flush sends them",
        )
        return [record for record in ready if record.event_name not in broken]

    def flush_all(self) -> int:
        return sum(self.flush(tenant_id) for tenant_id in self._outbox.pending_tenants())

    def _record(self, tenant_id: str, raw: RawUsage, now: datetime) -> UsageRecord:
        meter = self._meters.get(raw.name)
        if meter is None:
            known = ", ".join(sorted(self._meters)) or "none"
            raise InvalidEvent("name", f"unknown usage name {raw.name!r}; the configured meters are {known}")
        value = _bounded(raw.value, meter)
        if raw.timestamp.tzinfo is None:
            raise InvalidEvent("timestamp", "has no time zone")
        if raw.timestamp < now - PAST_WINDOW:
            raise InvalidEvent("timestamp", "is older than Stripe's 35-day window for meter events")
        if raw.timestamp > now + FUTURE_WINDOW:
            raise InvalidEvent("timestamp", "is more than 5 minutes in the future")
        # One instant is one record however its offset is written (04:27:33Z = 06:27:33+02:00).
        instant = raw.timestamp.astimezone(UTC)
        identity = raw.record_id or f"{instant.isoformat()}|{value}"
        return UsageRecord(
            tenant_id=tenant_id,
            identifier="sbt-" + digest_of([tenant_id, raw.name, identity]),
            usage_name=raw.name,
            event_name=meter.event_name,
            value=value,
            timestamp=raw.timestamp,
        )

    def _reject(self, records: Sequence[UsageRecord], reason: str) -> None:
        """Keeps the records as rejected, with the reason, and reports them once on the bus."""
        if not records:
            return
        for record in records:
            self._outbox.mark_rejected(record, reason)
        self._fail(records[0].tenant_id, failure_reason(records, reason))

    def _fail(self, tenant_id: str, reason: str) -> None:
        self._publisher.publish(
            BILLING_FAILURE, {"tenantId": tenant_id, "operation": "ingest_usage", "reason": reason}
        )


def failure_reason(records: Sequence[UsageRecord], reason: str) -> str:
    """A billingFailure reason naming the first record (identifier and usage name only) and how many more."""
    first = records[0]
    more = f" (and {len(records) - 1} more records)" if len(records) > 1 else ""
    return f"usage {first.identifier} ({first.usage_name}){more}: {reason}"


def _bounded(value: Decimal, meter: UsageMeter) -> str:
    """The value as sent to Stripe, once it is known to be one Stripe keeps and the meter allows."""
    if not value.is_finite():
        raise InvalidEvent("value", "must be a finite number")
    if value < 0:
        raise InvalidEvent("value", "must be at least 0")
    if meter.max_value is not None and value > meter.max_value:
        raise InvalidEvent("value", f"is above this meter's maximum of {_number(meter.max_value)}")
    if meter.integer and value != value.to_integral_value():
        raise InvalidEvent("value", "must be a whole number for this meter")
    if _written_digits(value) > MAX_DIGITS:
        raise InvalidEvent("value", f"has more than the {MAX_DIGITS} digits Stripe's meter events keep")
    return _number(value)


def _written_digits(value: Decimal) -> int:
    """How many digits the value has written out in full (1e400: 401; 0.001: 3), without writing it."""
    normal = value.normalize()
    if normal.is_zero():
        return 1
    _, digits, exponent = normal.as_tuple()
    assert isinstance(exponent, int)
    if exponent >= 0:
        return len(digits) + exponent
    return max(len(digits) + exponent, 0) - exponent


def _number(value: Decimal) -> str:
    try:
        normal = value.normalize()
    except InvalidOperation:
        return str(value)
    return format(abs(normal) if normal.is_zero() else normal, "f")
