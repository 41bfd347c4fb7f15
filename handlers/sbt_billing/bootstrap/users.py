"""The user function: it records users and schedules seat syncs (no account, no Stripe)."""

from __future__ import annotations

from sbt_billing.bootstrap.settings import settings
from sbt_billing.bootstrap.usage_stores import seat_scheduler, tenant_usage
from sbt_billing.domain.seat_recording import SeatRecorder


def seat_recorder() -> SeatRecorder | None:
    """None when the deployment has no seats (no usage table or sync queue)."""
    scheduler = seat_scheduler()
    if scheduler is None:
        return None
    return SeatRecorder(tenant_usage(), scheduler, settings().seat_sync_delay_seconds)


def user_created(detail_type: object) -> bool:
    return detail_type in settings().user_created_detail_types
