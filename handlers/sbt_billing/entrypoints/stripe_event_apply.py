"""One Stripe event applied once, whoever brings it: the webhook's delivery or a reconcile run's replay.
The event's id is the idempotency key (Powertools idempotency records, one key prefix for both), so an
event the webhook applied is not applied again by a replay, nor one a replay applied by the webhook's
late delivery; the processor's own ordering rules stand behind that for records that have expired."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from aws_lambda_powertools.utilities.typing import LambdaContext

from sbt_billing.bootstrap.clients import cached
from sbt_billing.bootstrap.webhook import webhook_idempotency_config, webhook_idempotency_store
from sbt_billing.domain.frozen import Frozen
from sbt_billing.domain.stripe_events import StripeEvent
from sbt_billing.domain.stripe_reports import WebhookOutcome, WebhookProcessor

KEY_PREFIX = "sbt-billing-webhook"

_processed_here: ContextVar[bool] = ContextVar("processed_here", default=False)


class WebhookRequest(Frozen):
    """A Stripe event is one fact: its id is the idempotency key, whichever delivery brings it."""

    stripe_event_id: str


def _apply(
    request: WebhookRequest, event: StripeEvent, processor: Callable[[], WebhookProcessor]
) -> WebhookOutcome:
    _processed_here.set(True)
    return processor().apply(event)


@cached
def _idempotent_apply() -> Callable[..., WebhookOutcome]:
    wrapped: Callable[..., WebhookOutcome] = idempotent_function(
        _apply,
        data_keyword_argument="request",
        persistence_store=webhook_idempotency_store(),
        config=webhook_idempotency_config(),
        output_serializer=PydanticSerializer(model=WebhookOutcome),
        key_prefix=KEY_PREFIX,
    )
    return wrapped


def prepare() -> None:
    """Builds the idempotent path now (its table and settings read), rather than at the first event."""
    _idempotent_apply()


def apply_once(
    event: StripeEvent, processor: Callable[[], WebhookProcessor], context: LambdaContext
) -> tuple[WebhookOutcome, bool]:
    """The event applied by the processor unless its idempotency record says it was already: (the
    outcome, first recorded or now; whether it was processed now). Raises the idempotency utility's
    IdempotencyAlreadyInProgressError while another invocation is applying it."""
    webhook_idempotency_config().register_lambda_context(context)
    token = _processed_here.set(False)
    try:
        outcome = _idempotent_apply()(
            request=WebhookRequest(stripe_event_id=event.id), event=event, processor=processor
        )
        return outcome, _processed_here.get()
    finally:
        _processed_here.reset(token)
