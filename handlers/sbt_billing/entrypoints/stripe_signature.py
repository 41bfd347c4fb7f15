"""Is this request a delivery Stripe signed? The stripe SDK's own check, made total: any header or body
is either verified or an InvalidSignature, never another exception.

The SDK (`stripe.WebhookSignature.verify_header`) is tried with each configured secret (two while a
secret is rolled). Around it, what the SDK leaves out or lets escape:

- a header that is not ASCII (a `v1` of other characters makes `hmac.compare_digest` raise
  TypeError inside the SDK) and a body that is not UTF-8 (the SDK decodes it) are refused first;
- any other exception from the SDK is a refusal too;
- the timestamp must be within the tolerance both ways, by the caller's clock (the SDK checks only
  old timestamps, against the wall clock). It is read as the SDK reads it, the header's first `t`,
  once the signature over it has verified.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import stripe

from sbt_billing.domain.errors import BillingError

TOLERANCE_SECONDS = 300


class InvalidSignature(BillingError):
    """The request is not a delivery Stripe signed with our secret within the tolerance."""


def signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    """The `Stripe-Signature` header Stripe would send for `payload` (for tests and the emulator)."""
    header: str = stripe.WebhookSignature.generate_signature_header(payload.decode(), secret, timestamp)
    return header


def verify_signature(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    now: datetime,
    tolerance_seconds: int = TOLERANCE_SECONDS,
) -> None:
    """Raises InvalidSignature unless one of the header's v1 signatures is Stripe's HMAC-SHA256 of
    `{t}.{raw body}` under one of `secrets`, with `t` within `tolerance_seconds` of `now`."""
    if not secrets:
        raise InvalidSignature("no signing secret is configured")
    if not header:
        raise InvalidSignature("no Stripe-Signature header")
    if not header.isascii():
        raise InvalidSignature("the Stripe-Signature header is not ASCII")
    try:
        body = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature("the body is not UTF-8, so Stripe did not sign it") from None
    if not any(_verifies(body, header, secret) for secret in secrets):
        raise InvalidSignature("no signature matches")
    if abs(now.timestamp() - _timestamp(header)) > tolerance_seconds:
        raise InvalidSignature("the signature's timestamp is outside the tolerance")


def _verifies(body: str, header: str, secret: str) -> bool:
    try:
        return bool(stripe.WebhookSignature.verify_header(body, header, secret, tolerance=None))
    except stripe.SignatureVerificationError:
        return False
    except (TypeError, ValueError, IndexError):  # whatever else the SDK's parsing lets escape
        return False


def _timestamp(header: str) -> int:
    """The header's first `t`, read as the SDK reads it (the signature it verified covers this value)."""
    for item in (part.split("=", 2) for part in header.split(",")):
        if item[0] == "t":
            try:
                return int(item[1])
            except (IndexError, ValueError):
                break
    raise InvalidSignature("the Stripe-Signature header has no timestamp")
