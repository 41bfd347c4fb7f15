"""The billing API as BillingApiFunction serves it (API Gateway REST, IAM-authorised):

    GET   /tenants/{tenantId}/billing          the full view: the account, then Stripe (reads.py)
    PATCH /tenants/{tenantId}/billing          a change of tier or details (changes.py)
    GET   /tenants/{tenantId}/billing/preview  what a tier change costs (changes.py)
    POST  /tenants/{tenantId}/billing/portal-session, .../checkout-session  Stripe's hosted pages
                                               (self_service.py)
    GET   /billing/openapi.json                this API's OpenAPI document, generated from the models

and the gate, GET /tenants/{tenantId}/billing/status (gate.py), which BillingGateFunction serves alone:
declared here too, so that the document describes the whole API.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from sbt_billing.bootstrap.api import (
    apply_change,
    billing_services,
    preview_change,
    self_service,
)
from sbt_billing.bootstrap.clients import cached
from sbt_billing.bootstrap.gate import gate_policy
from sbt_billing.bootstrap.lifecycle import catalogue
from sbt_billing.domain.billing_view import BillingServices
from sbt_billing.domain.errors import ConfigurationError
from sbt_billing.domain.gate import Gate
from sbt_billing.domain.self_service import SelfService
from sbt_billing.entrypoints.api.changes import ChangeServices, add_change_routes
from sbt_billing.entrypoints.api.gate import add_gate_route
from sbt_billing.entrypoints.api.idempotency_keys import once
from sbt_billing.entrypoints.api.reads import add_read_route
from sbt_billing.entrypoints.api.resolver import new_resolver, openapi_metadata
from sbt_billing.entrypoints.api.self_service import add_self_service_routes

OPENAPI_PATH = "/billing/openapi.json"


def make_resolver(
    services: Callable[[], BillingServices],
    metrics: Metrics | None = None,
    changes: Callable[[], ChangeServices] | None = None,
    pages: Callable[[], SelfService] | None = None,
) -> APIGatewayRestResolver:
    """The API's routes over `services`, `changes` and `pages` (called per request; the caller caches)."""
    app = new_resolver(metrics)

    def gate() -> Gate:
        current = services()
        return Gate(current.store, current.gate)

    add_gate_route(app, gate)
    add_read_route(app, services)
    add_change_routes(app, changes or _no_changes)
    add_self_service_routes(app, pages or _no_pages)

    @app.get(OPENAPI_PATH, summary="This API's OpenAPI document", tags=["meta"], include_in_schema=False)
    def get_openapi() -> Response[str]:
        return Response(
            status_code=HTTPStatus.OK,
            content_type=content_types.APPLICATION_JSON,
            body=openapi_document(app),
        )

    return app


def openapi_document(app: APIGatewayRestResolver) -> str:
    return app.get_openapi_json_schema(**openapi_metadata())


def _no_changes() -> ChangeServices:
    raise ConfigurationError("the billing API was built without its change services")


def _no_pages() -> SelfService:
    raise ConfigurationError("the billing API was built without its self-service pages")


def billing_api(metrics: Metrics) -> APIGatewayRestResolver:
    """BillingApiFunction's resolver, over the composition root's services."""
    return make_resolver(billing_services, metrics, change_services, self_service)


@cached
def change_services() -> ChangeServices:
    return ChangeServices(
        catalogue=catalogue(),
        gate=gate_policy(),
        apply=apply_change,
        preview=preview_change,
        once=once,
    )
