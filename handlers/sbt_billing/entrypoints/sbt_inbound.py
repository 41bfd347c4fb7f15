"""What every SBT event this product consumes shares: the envelope's parsing (a bad field named by its
JSON path), the id pattern, and the inbound models' tolerance of unknown fields (SBT adds fields over
time and callers add their own)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from sbt_billing.domain.errors import InvalidEvent
from sbt_billing.entrypoints import bounded_json

# SBT's tenant and registration ids are UUIDs; an id is ours to put into keys and Stripe's headers, so it
# is held to the billing API's pattern (no spaces, no control characters, nothing outside ASCII).
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}$"
TenantId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=ID_PATTERN)]
RegistrationId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=ID_PATTERN)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]


class Inbound(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


def parse[M: EventBridgeModel](model: type[M], event: Mapping[str, Any]) -> M:
    """The event as `model`, or InvalidEvent naming the first offending field by its JSON path."""
    if not isinstance(event, Mapping):
        raise InvalidEvent("event", "is not a JSON object")
    # pydantic recurses into what it validates: a deeper event is refused before it does.
    bounded_json.check_depth(event, "event")
    try:
        parsed = model.model_validate(event)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "event"
        problem = "is required" if first["type"] == "missing" else first["msg"]
        raise InvalidEvent(location, problem) from None
    if parsed.time.tzinfo is None:
        # Facts are ordered by time: a time without a zone cannot be placed among the others.
        raise InvalidEvent("time", "has no time zone")
    return parsed
