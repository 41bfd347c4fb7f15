"""The internal billing API (API Gateway REST, IAM-authorised): the resolver and its read routes.

    GET   /tenants/{tenantId}/billing/status   the gate: one strongly-consistent read, no Stripe call
    GET   /tenants/{tenantId}/billing          the full view: the account, then Stripe (customer,
                                               subscription, next invoice, a page of invoices)
    PATCH /tenants/{tenantId}/billing          a change of tier or details (billing_changes.py)
    GET   /tenants/{tenantId}/billing/preview  what a tier change costs (billing_changes.py)
    GET   /billing/openapi.json                this API's OpenAPI document, generated from the models

Errors are `{"error": {"code", "message", "details"?}}` with 400 (bad path, query or body), 403 (the
request did not come through API Gateway's IAM authorisation), 404 (unknown tenant or route),
502/503 (Stripe refused or is unreachable), and the changes' own (see billing_changes.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit

from . import bounded_json
from .api_models import (
    ERRORS,
    ApiError,
    GateStatus,
    TenantBillingOut,
    TenantId,
    error_response,
)
from .billing_changes import ChangeServices, add_change_routes
from .billing_state import BillingServices, decide, read_billing
from .errors import ConfigurationError, PermanentBillingError, TransientBillingError
from .models import Account

TITLE = "SBT Stripe billing API"
VERSION = "1.0.0"
OPENAPI_PATH = "/billing/openapi.json"
INVOICE_CURSOR_PATTERN = r"^in_[A-Za-z0-9]{1,255}$"


def make_resolver(
    services: Callable[[], BillingServices],
    metrics: Metrics | None = None,
    changes: Callable[[], ChangeServices] | None = None,
) -> APIGatewayRestResolver:
    """The API's routes over `services` and `changes` (called per request; the caller caches). With
    `metrics`, one metric per answer: `Answered2xx`, `Answered4xx`, `Answered5xx`."""
    app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=_json_body)
    app.configure_openapi(
        **_openapi_metadata(),
        servers=[Server(url="/", description="The API's stage URL")],
    )

    def answered(response: Response[Any]) -> Response[Any]:
        if metrics is not None:
            metrics.add_metric(
                name=f"Answered{response.status_code // 100}xx", unit=MetricUnit.Count, value=1
            )
        return response

    def count(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
        # Errors raised in a route are answered (and counted) by the exception handlers below.
        return answered(next_middleware(app))

    app.use(middlewares=[count, _require_iam_caller])

    @app.get(
        "/tenants/<tenantId>/billing/status",
        summary="The tenant's billing gate",
        description="From one strongly-consistent read of the account table; never calls Stripe.",
        responses={200: {"description": "The gate's answer."}, **ERRORS},
        tags=["billing"],
    )
    def get_status(tenantId: TenantId) -> GateStatus:  # noqa: N803 - the path's own name
        current = services()
        return GateStatus.of(tenantId, decide(_account(current, tenantId), current.gate))

    @app.get(
        "/tenants/<tenantId>/billing",
        summary="The tenant's billing: customer, plan, subscription, next invoice, invoices",
        responses={200: {"description": "The tenant's billing as Stripe holds it now."}, **ERRORS},
        tags=["billing"],
    )
    def get_billing(
        tenantId: TenantId,  # noqa: N803 - the path's own name
        limit: Annotated[int, Query(ge=1, le=100, description="Invoices per page.")] = 10,
        startingAfter: Annotated[  # noqa: N803 - the query's own name
            str | None,
            Query(pattern=INVOICE_CURSOR_PATTERN, description="The nextCursor of the previous page."),
        ] = None,
    ) -> TenantBillingOut:
        current = services()
        account = _account(current, tenantId)
        try:
            billing = read_billing(
                account,
                current.reader(),
                current.catalogue,
                current.gate,
                limit,
                startingAfter,
                seat_count=current.seat_count,
                meters=current.meters,
            )
        except PermanentBillingError as error:
            if startingAfter is not None and "resource_missing" in str(error):
                raise ApiError(
                    HTTPStatus.BAD_REQUEST, "invalid_cursor", "startingAfter names no invoice"
                ) from None
            raise ApiError(HTTPStatus.BAD_GATEWAY, "stripe_refused", "Stripe refused the read") from None
        return TenantBillingOut.of(billing)

    add_change_routes(app, changes or _no_changes)

    @app.get(OPENAPI_PATH, summary="This API's OpenAPI document", tags=["meta"], include_in_schema=False)
    def get_openapi() -> Response[str]:
        return Response(
            status_code=HTTPStatus.OK,
            content_type=content_types.APPLICATION_JSON,
            body=openapi_document(app),
        )

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def invalid_request(error: RequestValidationError) -> Response[dict[str, Any]]:
        errors = error.errors()
        details = [{"loc": list(e["loc"]), "type": e["type"]} for e in errors]
        # Pydantic's messages name the rule broken, never the value sent.
        named = "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in errors[:3])
        return answered(
            error_response(HTTPStatus.BAD_REQUEST, "invalid_request", f"Invalid request: {named}", details)
        )

    @app.exception_handler(ApiError)  # type: ignore[untyped-decorator]
    def api_error(error: ApiError) -> Response[dict[str, Any]]:
        return answered(
            error_response(error.status, error.code, error.message, error.details, headers=error.headers)
        )

    @app.exception_handler(TransientBillingError)  # type: ignore[untyped-decorator]
    def unavailable(error: TransientBillingError) -> Response[dict[str, Any]]:
        return answered(
            error_response(
                HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "A dependency is unavailable; retry."
            )
        )

    @app.exception_handler(ConfigurationError)  # type: ignore[untyped-decorator]
    def misconfigured(error: ConfigurationError) -> Response[dict[str, Any]]:
        return answered(
            error_response(
                HTTPStatus.INTERNAL_SERVER_ERROR, "misconfigured", "The billing service is misconfigured."
            )
        )

    @app.not_found
    def not_found(error: NotFoundError) -> Response[dict[str, Any]]:
        return answered(error_response(HTTPStatus.NOT_FOUND, "not_found", "No such route."))

    return app


def openapi_document(app: APIGatewayRestResolver) -> str:
    return app.get_openapi_json_schema(**_openapi_metadata())


def _openapi_metadata() -> dict[str, Any]:
    """What the served document and docs/openapi.json say about the API, in one place."""
    return {
        "title": TITLE,
        "version": VERSION,
        "description": "Internal, IAM-authorised billing API of the SBT Stripe billing provider.",
        "security_schemes": {
            "sigv4": APIKey(
                name="Authorization",
                in_=APIKeyIn.header,
                description="AWS Signature Version 4 for service execute-api (IAM authorisation).",
            )
        },
        "security": [{"sigv4": []}],
    }


def _require_iam_caller(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Defence in depth: API Gateway's AWS_IAM authoriser fills the caller's identity; a request
    without one did not pass it (a misconfigured stage, a direct invocation) and is refused."""
    identity = app.current_event.request_context.identity
    if not (identity.user_arn or identity.caller):
        return error_response(HTTPStatus.FORBIDDEN, "forbidden", "The request is not IAM-authenticated.")
    return next_middleware(app)


def _json_body(body: str) -> Any:
    """The request's JSON body; nested deeper than bounded_json.MAX_DEPTH, a 400 before json.loads
    recurses into it (its RecursionError would escape every handler as a 502)."""
    if bounded_json.text_depth(body) > bounded_json.MAX_DEPTH:
        raise RequestValidationError(
            [{"type": "json_too_deep", "loc": ("body",), "msg": bounded_json.TOO_DEEP, "input": {}}]
        )
    return json.loads(body)


def _no_changes() -> ChangeServices:
    raise ConfigurationError("the billing API was built without its change services")


def _account(services: BillingServices, tenant_id: str) -> Account:
    """The tenant's account item, or 404."""
    account = services.store.get(tenant_id)
    if account is None:
        raise ApiError(HTTPStatus.NOT_FOUND, "tenant_not_found", "No billing account for this tenant.")
    return account
