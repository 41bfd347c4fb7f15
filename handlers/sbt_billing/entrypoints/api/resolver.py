"""What every billing API function's resolver shares: API Gateway's REST resolver with validation, the
IAM check, one metric per answer, the error answers and the OpenAPI metadata.

Errors are `{"error": {"code", "message", "details"?}}` with 400 (bad path, query or body), 403 (the
request did not come through API Gateway's IAM authorisation), 404 (unknown tenant or route),
502/503 (Stripe refused or is unreachable), and the changes' own (see changes.py).
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server
from aws_lambda_powertools.metrics import MetricUnit

from sbt_billing.domain.errors import ConfigurationError, TransientBillingError
from sbt_billing.entrypoints import bounded_json
from sbt_billing.entrypoints.api.wire import ApiError, error_response

TITLE = "SBT Stripe billing API"
VERSION = "1.0.0"


def new_resolver(metrics: Metrics | None = None) -> APIGatewayRestResolver:
    """A resolver with no route yet. With `metrics`, one metric per answer: `Answered2xx`,
    `Answered4xx`, `Answered5xx`."""
    app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=_json_body)
    app.configure_openapi(
        **openapi_metadata(),
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


def openapi_metadata() -> dict[str, Any]:
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


def _json_body(body: str) -> Any:
    """The request's JSON body; nested deeper than bounded_json.MAX_DEPTH, a 400 before json.loads
    recurses into it (its RecursionError would escape every handler as a 502)."""
    if bounded_json.text_depth(body) > bounded_json.MAX_DEPTH:
        raise RequestValidationError(
            [{"type": "json_too_deep", "loc": ("body",), "msg": bounded_json.TOO_DEEP, "input": {}}]
        )
    return json.loads(body)


def _require_iam_caller(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Defence in depth: API Gateway's AWS_IAM authoriser fills the caller's identity; a request
    without one did not pass it (a misconfigured stage, a direct invocation) and is refused."""
    identity = app.current_event.request_context.identity
    if not (identity.user_arn or identity.caller):
        return error_response(HTTPStatus.FORBIDDEN, "forbidden", "The request is not IAM-authenticated.")
    return next_middleware(app)
