"""Lambda SnapStart's runtime hooks (the template's SnapStart parameter): what a snapshot may hold, and
what a restored environment must not share with the others restored from the same snapshot.

Before the snapshot (once per published version): the handler's imports are done already; the settings
are validated and the AWS clients the settings name are built (no network call, no secret read), so
that a restored environment starts with them. After each restore: Stripe's clients and the cached
secrets are dropped (a key read before a rotation, an HTTP connection opened by another environment),
and the random generator is reseeded (Python's `random` state is in the snapshot: jitter and anything
else drawn from it would repeat across environments; uuid4 and idempotency keys read os.urandom).

`snapshot_restore_py` is in Lambda's Python runtime (3.12 and later), not in the project's environment:
without it (tests, local runs, a function without SnapStart) nothing is registered, and the functions
run as before.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from sbt_billing.bootstrap.clients import aws_client, forget_after_restore
from sbt_billing.bootstrap.settings import Settings, settings

try:
    from snapshot_restore_py import (  # type: ignore[import-not-found, unused-ignore]
        register_after_restore,
        register_before_snapshot,
    )
except ImportError:  # not Lambda's runtime: no snapshot is ever taken
    register_after_restore = register_before_snapshot = None


def services_named(config: Settings) -> list[str]:
    """The AWS services whose resources the function's settings name (so its code calls them)."""
    services = []
    if (
        config.accounts_table
        or config.usage_table
        or config.registrations_table
        or config.idempotency_table
        or config.reconcile_table
    ):
        services.append("dynamodb")
    if config.event_bus_name:
        services.append("events")
    if config.seat_sync_queue_url or config.tenant_updated_queue_url:
        services.append("sqs")
    if config.stripe_secret_name or config.stripe_read_secret_name or config.webhook_secret_name:
        services.append("secretsmanager")
    return services


def before_snapshot() -> None:
    for service in services_named(settings()):
        aws_client(service)


def after_restore() -> None:
    forget_after_restore()
    random.seed()  # from os.urandom: each restored environment draws its own numbers


def register(
    before: Callable[..., Any] | None = register_before_snapshot,
    after: Callable[..., Any] | None = register_after_restore,
) -> bool:
    """Registers the hooks where the runtime offers them; False where it does not."""
    if before is None or after is None:
        return False
    before(before_snapshot)
    after(after_restore)
    return True


REGISTERED = register()
