"""Metered usage: SBT's usage records become Stripe Billing Meter events, each exactly once.

Every record gets a deterministic identifier (from the tenant, the usage name and the record's own
id, or its time and value when it has none) and is kept in the usage outbox before anything is sent.
Sending takes the tenant's pending records in batches of up to 100 (Stripe's meter event stream
limit); a record is marked sent only after Stripe accepted its batch, and Stripe ignores an
identifier it has already seen, so a retry counts nothing twice. Records that cannot be sent yet (no
Stripe customer, Stripe unavailable) stay pending: the scheduled flush retries them. A record outside
Stripe's window (35 days back, 5 minutes ahead) is refused with a clear reason, never dropped quietly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from .errors import InvalidEvent
from .lifecycle import BILLING_FAILURE
from .models import Account, AccountStatus, Frozen, digest_of
from .ports import AccountStore, BillingGateway, Clock, EventPublisher, MeterEvent, UsageOutbox, UsageRecord
from .settings import UsageMeter

STRIPE_BATCH = 100
PAST_WINDOW = timedelta(days=35)
FUTURE_WINDOW = timedelta(minutes=5)


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
    ) -> None:
        self._outbox = outbox
        self._accounts = accounts
        self._billing = billing
        self._publisher = publisher
        self._clock = clock
        self._meters = meters

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

    def flush_all(self) -> int:
        return sum(self.flush(tenant_id) for tenant_id in self._outbox.pending_tenants())

    def _record(self, tenant_id: str, raw: RawUsage, now: datetime) -> UsageRecord:
        meter = self._meters.get(raw.name)
        if meter is None:
            known = ", ".join(sorted(self._meters)) or "none"
            raise InvalidEvent("name", f"unknown usage name {raw.name!r}; the configured meters are {known}")
        if raw.value < 0 or not raw.value.is_finite():
            raise InvalidEvent("value", "must be a finite number of at least 0")
        if raw.timestamp.tzinfo is None:
            raise InvalidEvent("timestamp", "has no time zone")
        if raw.timestamp < now - PAST_WINDOW:
            raise InvalidEvent("timestamp", "is older than Stripe's 35-day window for meter events")
        if raw.timestamp > now + FUTURE_WINDOW:
            raise InvalidEvent("timestamp", "is more than 5 minutes in the future")
        identity = raw.record_id or f"{raw.timestamp.isoformat()}|{_number(raw.value)}"
        return UsageRecord(
            tenant_id=tenant_id,
            identifier="sbt-" + digest_of([tenant_id, raw.name, identity]),
            usage_name=raw.name,
            event_name=meter.event_name,
            value=_number(raw.value),
            timestamp=raw.timestamp,
        )

    def _reject(self, records: Sequence[UsageRecord], reason: str) -> None:
        """Keeps the records as rejected, with the reason, and reports them once on the bus."""
        if not records:
            return
        for record in records:
            self._outbox.mark_rejected(record, reason)
        first = records[0]
        more = f" (and {len(records) - 1} more records)" if len(records) > 1 else ""
        self._fail(first.tenant_id, f"usage {first.identifier} ({first.usage_name}){more}: {reason}")

    def _fail(self, tenant_id: str, reason: str) -> None:
        self._publisher.publish(
            BILLING_FAILURE, {"tenantId": tenant_id, "operation": "ingest_usage", "reason": reason}
        )


def _number(value: Decimal) -> str:
    try:
        normal = value.normalize()
    except InvalidOperation:
        return str(value)
    return format(normal, "f")
