"""API Gateway on loopback for integration tests: the template's Api routes, its AWS_IAM authorisation
(SigV4 verified against known credentials, as API Gateway would), and proxy events to the functions.

Routes, methods and which routes are public (`Auth: {Authorizer: NONE}`) come from template.yaml; a
request becomes the same REST proxy event API Gateway sends (the shape of events/api_*.json).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devtools.moto_server import DUMMY_CREDENTIALS
from devtools.template import load_template
from tests.support.harness import sample

# The callers the tests sign as: moto's placeholder credentials, which the gateway then accepts.
CREDENTIALS = Credentials(
    DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
    DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
)
STAGE = "v1"
ACCOUNT = "123456789012"
SIGNATURE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<headers>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass(frozen=True)
class ApiRoute:
    function_id: str
    method: str
    resource: str  # e.g. /tenants/{tenantId}/billing
    iam: bool

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.resource)) + "$"
        found = re.match(pattern, path)
        return found.groupdict() if found else None


def api_routes(api_id: str = "BillingApi") -> list[ApiRoute]:
    """Every Api event of every function on `api_id`, with the authorisation API Gateway applies."""
    template = load_template()
    api = template["Resources"][api_id]["Properties"]
    default_iam = api.get("Auth", {}).get("DefaultAuthorizer") == "AWS_IAM"
    routes = []
    for function_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for source in (resource["Properties"].get("Events") or {}).values():
            properties = source.get("Properties", {})
            if source.get("Type") != "Api" or properties.get("RestApiId") != {"Ref": api_id}:
                continue
            authorizer = properties.get("Auth", {}).get("Authorizer")
            iam = authorizer == "AWS_IAM" or (authorizer is None and default_iam)
            routes.append(ApiRoute(function_id, properties["Method"].upper(), properties["Path"], iam))
    return routes


class LocalApiGateway:
    """Serves the routes; `invoke(function_id, event)` runs the function (e.g. Stack.invoke)."""

    def __init__(
        self,
        invoke: Callable[[str, dict[str, Any]], Mapping[str, Any]],
        credentials: Credentials,
        region: str = "us-east-1",
    ) -> None:
        self.routes = api_routes()
        self._invoke = invoke
        self._credentials = credentials
        self._region = region
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gateway._serve(self, "GET")

            def do_POST(self) -> None:
                gateway._serve(self, "POST")

            def do_PATCH(self) -> None:
                gateway._serve(self, "PATCH")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/{STAGE}"

    def __enter__(self) -> LocalApiGateway:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- one request -------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        headers = dict(handler.headers.items())
        path = parts.path.removeprefix(f"/{STAGE}")
        for route in self.routes:
            params = route.match(method, path)
            if params is None:
                continue
            identity: dict[str, Any] = {"sourceIp": "127.0.0.1", "userArn": None, "caller": None}
            if route.iam:
                refusal = self._authenticate(method, handler, headers, body)
                if refusal is not None:
                    self._answer(handler, 403, {"message": refusal})
                    return
                identity.update(
                    {
                        "accessKey": self._credentials.access_key,
                        "accountId": ACCOUNT,
                        "caller": "AIDACALLER",
                        "userArn": f"arn:aws:iam::{ACCOUNT}:user/app-plane",
                    }
                )
            event = self._event(route, method, path, parts.query, params, headers, body, identity)
            response = self._invoke(route.function_id, event)
            headers = {
                name: values[-1]
                for name, values in (response.get("multiValueHeaders") or {}).items()
                if values
            }
            headers.update(response.get("headers") or {})
            self._answer(handler, int(response["statusCode"]), response.get("body") or "", headers)
            return
        self._answer(handler, 403, {"message": "Missing Authentication Token"})  # API Gateway's unknown route

    def _authenticate(
        self, method: str, handler: BaseHTTPRequestHandler, headers: dict[str, str], body: bytes
    ) -> str | None:
        lower = {name.lower(): value for name, value in headers.items()}  # HTTP's names are case-insensitive
        found = SIGNATURE.fullmatch(lower.get("authorization", "").strip())
        amz_date = lower.get("x-amz-date", "")
        if found is None or not amz_date:
            return "Missing Authentication Token"
        if found["key"] != self._credentials.access_key or (
            self._credentials.token and lower.get("x-amz-security-token") != self._credentials.token
        ):
            return "The security token included in the request is invalid."
        if (found["region"], found["service"], found["date"]) != (self._region, "execute-api", amz_date[:8]):
            return "Credential should be scoped to a valid region and service."
        signed_names = found["headers"].split(";")
        request = AWSRequest(
            method=method,
            url=f"http://{lower.get('host', '')}{handler.path}",
            headers={name: lower.get(name, "") for name in signed_names},
            data=body,
        )
        request.context["timestamp"] = amz_date
        auth = SigV4Auth(self._credentials, "execute-api", self._region)
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        if expected != found["signature"]:
            return "The request signature we calculated does not match the signature you provided."
        return None

    @staticmethod
    def _event(
        route: ApiRoute,
        method: str,
        path: str,
        query: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        identity: dict[str, Any],
    ) -> dict[str, Any]:
        event = sample("api_billing_status.json")
        pairs = parse_qsl(query, keep_blank_values=True)
        event.update(
            {
                "resource": route.resource,
                "path": path,
                "httpMethod": method,
                "headers": headers,
                "multiValueHeaders": {name: [value] for name, value in headers.items()},
                "queryStringParameters": dict(pairs) or None,
                "multiValueQueryStringParameters": {
                    key: [v for k, v in pairs if k == key] for key, _ in pairs
                }
                or None,
                "pathParameters": params or None,
                "body": body.decode() if body else None,
                "isBase64Encoded": False,
            }
        )
        context = event["requestContext"]
        context.update(
            {
                "httpMethod": method,
                "path": f"/{STAGE}{path}",
                "resourcePath": route.resource,
                "identity": identity,
                "requestId": str(uuid.uuid4()),
                "requestTimeEpoch": time.time_ns() // 1_000_000,  # when API Gateway received it
            }
        )
        return event

    @staticmethod
    def _answer(
        handler: BaseHTTPRequestHandler, status: int, body: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        raw = (body if isinstance(body, str) else json.dumps(body)).encode()
        handler.send_response(status)
        for name, value in (headers or {}).items():
            if name.lower() not in ("content-type", "content-length"):
                handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)
