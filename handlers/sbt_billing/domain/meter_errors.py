"""Usage Stripe rejected after accepting it: its meter error reports, applied to the usage records.

The meter event stream validates asynchronously: it answers before it has looked at the events, so
a record is marked sent even when Stripe then drops its event (an archived meter, a meter whose
payload keys are not ours, a value it cannot keep). Stripe reports such events in the thin event
`v1.billing.meter.error_report_triggered` (or `v1.billing.meter.no_meter_found`), delivered to an
event destination, whose full data (fetched from `/v2/core/events/{id}`) counts the errors per code
and names a sample of them by the meter event's identifier, which is the record's identifier.

Each sampled record is marked rejected (once: a report delivered twice changes nothing the second
time) and its tenant gets one `sbt_aws_billingFailure` (`operation: ingest_usage`) naming the first
record and how many more. Errors the report counts but does not name cannot be traced to a record:
the outcome counts them (`unidentified`) for the metric and the log.
"""

from __future__ import annotations

from collections import defaultdict

from sbt_billing.domain.frozen import Frozen
from sbt_billing.domain.ports import EventPublisher, UsageOutbox
from sbt_billing.domain.published import BILLING_FAILURE
from sbt_billing.domain.usage import failure_reason
from sbt_billing.domain.usage_values import UsageRecord

ERROR_REPORT = "v1.billing.meter.error_report_triggered"
NO_METER_FOUND = "v1.billing.meter.no_meter_found"
METER_ERROR_TYPES = frozenset({ERROR_REPORT, NO_METER_FOUND})


class MeterErrorSample(Frozen):
    code: str
    identifier: str


class MeterErrorReport(Frozen):
    event_id: str
    meter_id: str | None
    error_count: int  # every error in the report's window, sampled or not
    samples: tuple[MeterErrorSample, ...]


class MeterErrorOutcome(Frozen):
    event_id: str
    rejected: int = 0  # records marked rejected now
    already: int = 0  # records this report (or an earlier one) had already rejected
    unknown: int = 0  # sampled identifiers that are not ours
    unidentified: int = 0  # errors the report counts but names no identifier for
    tenants: tuple[str, ...] = ()

    def as_response(self) -> dict[str, object]:
        return {"received": "true", "eventId": self.event_id, **self.model_dump(exclude={"event_id"})}


class MeterErrors:
    def __init__(self, outbox: UsageOutbox, publisher: EventPublisher) -> None:
        self._outbox = outbox
        self._publisher = publisher

    def apply(self, report: MeterErrorReport) -> MeterErrorOutcome:
        rejected: dict[str, list[UsageRecord]] = defaultdict(list)
        codes: dict[str, set[str]] = defaultdict(set)
        already = unknown = 0
        for sample in report.samples:
            record = self._outbox.find(sample.identifier)
            if record is None:
                unknown += 1
            elif self._outbox.mark_rejected(record, _reason(sample.code)):
                rejected[record.tenant_id].append(record)
                codes[record.tenant_id].add(sample.code)
            else:
                already += 1
        for tenant_id, records in rejected.items():
            reason = _reason(", ".join(sorted(codes[tenant_id])))
            self._publisher.publish(
                BILLING_FAILURE,
                {
                    "tenantId": tenant_id,
                    "operation": "ingest_usage",
                    "reason": failure_reason(records, reason),
                },
            )
        return MeterErrorOutcome(
            event_id=report.event_id,
            rejected=sum(len(records) for records in rejected.values()),
            already=already,
            unknown=unknown,
            unidentified=max(0, report.error_count - len(report.samples)),
            tenants=tuple(sorted(rejected)),
        )


def _reason(codes: str) -> str:
    return f"Stripe dropped the meter event after accepting it ({codes})"
