"""Idempotency keys, as Stripe documents them for API v1.

* Keyed by (API key, Idempotency-Key); POST and DELETE only (GET ignores the header).
* The first response is saved once the endpoint has started executing, including 500s
  the endpoint itself produced; a replay returns the same status and body with
  ``Idempotent-Replayed: true`` and has no side effects.
* Requests that fail validation (4xx raised by the endpoint), and infrastructure faults
  injected before the endpoint, are not saved: retrying them with the key runs afresh.
* Reusing a key with different params, or for a different endpoint -> 400 ``idempotency_error``.
* A request whose key's first request is still executing -> 409 (the SDK retries 409s).
* Keys are pruned 24 hours after first use, by the emulator clock.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from .errors import StripeError

EXPIRY_SECONDS = 24 * 60 * 60


@dataclass
class Saved:
    endpoint: str  # "POST /v1/customers"
    fingerprint: str
    first_used: float
    request_id: str
    in_flight: bool = True
    status: int = 0
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def fingerprint(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


class IdempotencyStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._saved: dict[tuple[str, str], Saved] = {}

    def reset(self) -> None:
        with self._lock:
            self._saved.clear()

    def begin(
        self, api_key: str, key: str, endpoint: str, params: dict[str, Any], now: float, request_id: str
    ) -> Saved | None:
        """Claim ``key``: returns a saved response to replay, or None to execute (now in flight)."""
        fp = fingerprint(params)
        with self._lock:
            entry = self._saved.get((api_key, key))
            if entry is not None and now - entry.first_used >= EXPIRY_SECONDS and not entry.in_flight:
                del self._saved[(api_key, key)]
                entry = None
            if entry is None:
                self._saved[(api_key, key)] = Saved(endpoint, fp, now, request_id)
                return None
            if entry.endpoint != endpoint:
                raise StripeError(
                    400,
                    "Keys for idempotent requests can only be used for the same endpoint they were first "
                    f"used for ('{entry.endpoint}' vs '{endpoint}'). Try using a key other than '{key}' "
                    "if you meant to execute a different request.",
                    type="idempotency_error",
                )
            if entry.in_flight:
                raise StripeError(
                    409,
                    "There is currently another in-progress request using this Idempotent Key (that "
                    "probably means you submitted twice, and the other request is still going through): "
                    f"{key}. Please try again later.",
                    type="idempotency_error",
                    code="idempotency_key_in_use",
                )
            if entry.fingerprint != fp:
                raise StripeError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they were first "
                    f"used with. Try using a key other than '{key}' if you meant to execute a different "
                    "request.",
                    type="idempotency_error",
                )
            return entry

    def save(self, api_key: str, key: str, status: int, body: bytes, headers: dict[str, str]) -> None:
        with self._lock:
            entry = self._saved.get((api_key, key))
            if entry is not None:
                entry.in_flight = False
                entry.status = status
                entry.body = body
                entry.headers = dict(headers)

    def abandon(self, api_key: str, key: str) -> None:
        with self._lock:
            self._saved.pop((api_key, key), None)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "idempotency_key": k[1],
                    "endpoint": v.endpoint,
                    "first_used": int(v.first_used),
                    "in_flight": v.in_flight,
                    "status": v.status,
                }
                for k, v in self._saved.items()
            ]
