"""A Stripe event as the domain reads it: one fact about one of Stripe's objects, stamped with its
`created` time and id. Inbound, so unknown fields are tolerated; the webhook's entry point parses the
delivery's body into it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from sbt_billing.domain.models import StripeStamp

OUR_KEYS = "sbt-billing:"  # the prefix of every idempotency key the lifecycle sends


class _Inbound(BaseModel):
    model_config = ConfigDict(extra="allow")


class EventRequest(_Inbound):
    id: str | None = None
    idempotency_key: str | None = None


class EventData(_Inbound):
    object: dict[str, Any]


class StripeEvent(_Inbound):
    id: Annotated[str, Field(min_length=1, max_length=255)]
    type: Annotated[str, Field(min_length=1)]
    created: Annotated[int, Field(gt=0)]
    livemode: bool = False
    account: str | None = None  # set on events of connected accounts (Stripe Connect)
    data: EventData
    request: EventRequest | None = None

    @property
    def object(self) -> dict[str, Any]:
        return self.data.object

    def stamp(self) -> StripeStamp:
        return StripeStamp(at=datetime.fromtimestamp(self.created, UTC), event_id=self.id)

    def is_echo(self) -> bool:
        """Caused by one of the lifecycle's own requests to Stripe."""
        key = self.request.idempotency_key if self.request else None
        return bool(key and key.startswith(OUR_KEYS))
