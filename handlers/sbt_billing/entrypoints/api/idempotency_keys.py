"""PATCH's Idempotency-Key: the first answer for (tenant, key) is kept (Powertools idempotency, on the
IdempotencyTable) and returned to a retry; a key reused with another body, or still in progress, is
answered as such. What the change raises (a busy tenant, an unknown one, Stripe or DynamoDB
unavailable) is not kept, so that a retry runs again."""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from aws_lambda_powertools.utilities.typing import LambdaContext

from sbt_billing.bootstrap.api import change_idempotency_config, change_idempotency_store
from sbt_billing.bootstrap.clients import cached
from sbt_billing.domain.errors import TransientBillingError
from sbt_billing.entrypoints.api.changes import (
    ChangeAnswer,
    IdempotentChange,
    idempotency_in_progress,
    idempotency_key_reused,
)


def register_lambda_context(context: LambdaContext) -> None:
    """Lets a record in progress expire with the invocation (called per invocation)."""
    change_idempotency_config().register_lambda_context(context)


def _run_change(request: IdempotentChange, run: Callable[[], ChangeAnswer]) -> ChangeAnswer:
    return run()


@cached
def _idempotent_change() -> Callable[..., ChangeAnswer]:
    wrapped: Callable[..., ChangeAnswer] = idempotent_function(
        _run_change,
        data_keyword_argument="request",
        persistence_store=change_idempotency_store(),
        config=change_idempotency_config(),
        output_serializer=PydanticSerializer(model=ChangeAnswer),
        key_prefix="sbt-billing-api-change",
    )
    return wrapped


def once(request: IdempotentChange, run: Callable[[], ChangeAnswer]) -> ChangeAnswer:
    """The first answer for (tenant, Idempotency-Key)."""
    try:
        return _idempotent_change()(request=request, run=run)
    except IdempotencyValidationError:
        raise idempotency_key_reused() from None
    except IdempotencyAlreadyInProgressError:
        raise idempotency_in_progress() from None
    except IdempotencyPersistenceLayerError:
        raise TransientBillingError("the idempotency table is unavailable") from None
