"""DynamoDB's errors, translated once for every table adapter: a failed condition is the caller's to
read, anything else is transient (the platform retries)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from sbt_billing.domain.errors import TransientBillingError


def condition_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def transient_error(operation: str, error: Exception) -> TransientBillingError:
    code = (
        error.response.get("Error", {}).get("Code", "unknown")
        if isinstance(error, ClientError)
        else type(error).__name__
    )
    return TransientBillingError(f"DynamoDB {operation} failed: {code}")
