"""GET /tenants/{tenantId}/billing/status, the billing gate: one strongly-consistent read of the account,
no Stripe call. BillingGateFunction serves it alone (it never loads stripe); the full API's resolver
declares it too, so that its OpenAPI document describes the whole API."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from sbt_billing.domain.gate import Gate
from sbt_billing.entrypoints.api.resolver import new_resolver
from sbt_billing.entrypoints.api.wire import ERRORS, ApiError, GateStatus, TenantId


def add_gate_route(app: APIGatewayRestResolver, gate: Callable[[], Gate]) -> None:
    @app.get(
        "/tenants/<tenantId>/billing/status",
        summary="The tenant's billing gate",
        description="From one strongly-consistent read of the account table; never calls Stripe.",
        responses={200: {"description": "The gate's answer."}, **ERRORS},
        tags=["billing"],
    )
    def get_status(tenantId: TenantId) -> GateStatus:  # noqa: N803 - the path's own name
        decision = gate().check(tenantId)
        if decision is None:
            raise tenant_not_found()
        return GateStatus.of(tenantId, decision)


def make_gate_resolver(gate: Callable[[], Gate], metrics: Metrics | None = None) -> APIGatewayRestResolver:
    """The gate function's resolver: the gate's route alone."""
    app = new_resolver(metrics)
    add_gate_route(app, gate)
    return app


def tenant_not_found() -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, "tenant_not_found", "No billing account for this tenant.")
