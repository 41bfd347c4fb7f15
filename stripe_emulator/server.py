"""The emulator application (protocol pipeline) and its HTTP server.

Pipeline for a ``/v1`` request: auth -> route -> rate limit -> global latency (if set, with
no lock held) -> fault (before endpoint) -> decode params -> idempotency -> endpoint (under
the state lock; unknown params rejected, ``expand`` applied) -> fault (after endpoint) -> log.
``/_emulator/...`` is the admin API (no auth, JSON) implemented in :mod:`stripe_emulator.admin`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import socket
import string
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from . import (
    admin,
    billing_portal,
    catalogue,
    checkout,
    customers,
    events,
    invoices,
    meters,
    payment_methods,
    portal_actions,
    schedules,
    setup_intents,
    subscriptions,
    thin_events,
    webhooks,
)
from .clock import Clock
from .due import DueIndex
from .errors import StripeError, api_error, lock_timeout, rate_limited, redact_key
from .faults import Fault, Faults
from .formdecode import decode
from .idempotency import IdempotencyStore
from .params import Params
from .router import Route, Router
from .store import API_VERSION, Store

_REQ_ALPHABET = string.ascii_letters + string.digits
VALID_KEY_PREFIXES = ("sk_test_", "rk_test_")


@dataclass
class Request:
    """What an endpoint handler gets."""

    emulator: Emulator
    method: str
    path: str
    route: Route
    path_params: dict[str, str]
    params: Params
    api_key: str
    idempotency_key: str | None
    request_id: str

    @property
    def store(self) -> Store:
        return self.emulator.store

    @property
    def now(self) -> int:
        return self.emulator.clock.now()

    def id(self, name: str = "id") -> str:
        return self.path_params[name]


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


@dataclass
class Settings:
    """Tunable behaviour, set via ``POST /_emulator/settings``."""

    payment_retry_attempts: int = 4  # failed attempts before the final outcome
    payment_retry_interval_days: int = 3
    payment_failure_outcome: str = "unpaid"  # unpaid | canceled | past_due
    subscription_quantity_updates_per_hour: int = 200  # per subscription, rolling hour
    meter_error_samples: int = 10  # sample errors per code in a meter error report

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _json_bytes(body: Any) -> bytes:
    return json.dumps(body, indent=2).encode()


class Emulator:
    """Transport-independent emulator: state, pipeline, admin operations."""

    def __init__(self, rate_limit: float | None = None) -> None:
        self.clock = Clock()
        self.store = Store(self.clock)
        self.router: Router = Router()
        self.idempotency = IdempotencyStore()
        self.faults = Faults()
        self.settings = Settings()
        self.log_lock = threading.Lock()
        self.request_log: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}  # reached the API (past faults and rate limit)
        self.executed: dict[str, int] = {}  # endpoint ran (not a replay)
        self.totals: dict[str, int] = {}  # every routed request, including faults
        # Per-path authentication other than API keys (the v2 meter event stream's session tokens).
        self.authenticators: dict[str, Callable[[str | None], str]] = {}
        self.default_rate_limit = rate_limit
        self.due = DueIndex(self)
        self.store.event_hooks.append(self.due.on_event)
        for module in (
            customers,
            catalogue,
            subscriptions,
            invoices,
            events,
            webhooks,
            meters,
            thin_events,
            payment_methods,
            setup_intents,
            checkout,
            schedules,
            billing_portal,
            portal_actions,
        ):
            module.register(self)
        self.faults.set_rate_limit(rate_limit)

    # admin-level operations ---------------------------------------------------
    def reset(self) -> None:
        with self.store.lock:
            self.store.reset()
            self.due.reset()
            self.idempotency.reset()
            self.faults.reset()
            self.faults.set_rate_limit(self.default_rate_limit)
            self.clock.reset()
            self.settings = Settings()
            with self.log_lock:
                self.request_log.clear()
                self.counts.clear()
                self.executed.clear()
                self.totals.clear()

    def tick(self) -> None:
        """Apply everything that became due by the emulator clock (renewals, trial ends...)."""
        with self.store.lock:
            self.due.run()

    # pipeline -----------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Response:
        request_id = "req_" + "".join(secrets.choice(_REQ_ALPHABET) for _ in range(14))
        split = urlsplit(raw_path)
        path = split.path.rstrip("/") or "/"
        if path.startswith("/_emulator"):
            status, payload = admin.dispatch(self, method, path, split.query, body)
            return Response(status, _json_bytes(payload), {"Request-Id": request_id})
        base_headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
        try:
            return self._handle_api(method, path, split.query, headers, body, request_id, base_headers)
        except StripeError as err:
            return Response(err.status, _json_bytes(err.body(request_id)), {**base_headers, **err.headers})

    def _log(self, entry: dict[str, Any]) -> None:
        with self.log_lock:
            self.request_log.append(entry)

    def _bump(self, table: dict[str, int], key: str) -> None:
        with self.log_lock:
            table[key] = table.get(key, 0) + 1

    def _handle_api(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        request_id: str,
        base_headers: dict[str, str],
    ) -> Response:
        lower = {k.lower(): v for k, v in headers.items()}
        idem_key = lower.get("idempotency-key") if method in ("POST", "DELETE") else None
        entry: dict[str, Any] = {
            "request_id": request_id,
            "method": method,
            "path": path,
            "route": None,
            "idempotency_key": idem_key,
            "status": None,
            "replayed": False,
            "fault": None,
            "timestamp": self.clock.now(),
            "real_time": time.time(),
        }

        def finish(resp: Response, **extra: Any) -> Response:
            entry.update(extra)
            entry["status"] = None if resp.drop else resp.status
            self._log(entry)
            return resp

        def error(err: StripeError, **extra: Any) -> Response:
            resp = Response(err.status, _json_bytes(err.body(request_id)), {**base_headers, **err.headers})
            return finish(resp, **extra)

        # 1. authentication
        try:
            api_key = self.authenticators.get(path, self._authenticate)(lower.get("authorization"))
        except StripeError as err:
            return error(err)

        # 2. routing
        found = self.router.match(method, path)
        if found is None:
            return error(
                StripeError(
                    404,
                    f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we "
                    "can help at https://support.stripe.com/.",
                )
            )
        route, path_params = found
        entry["route"] = route.key
        self._bump(self.totals, route.key)

        # 3. rate limit (a real rate limit: no Stripe-Should-Retry, so the SDK does not retry it),
        # then the global latency (after the limiter, so it does not change what the limiter counts),
        # 4. infrastructure faults
        if self.faults.rate_limited():
            return error(rate_limited(), fault="rate_limit")
        self.faults.wait_latency()
        fault = self.faults.take(route.key, f"{method} {path}")
        if fault is not None and fault.stage == "before_endpoint":
            resp = self._fault_response(fault, request_id, base_headers)
            if resp is not None:
                return finish(resp, fault=fault.kind + (":drop" if resp.drop else f":{resp.status}"))
            fault = None  # pure latency: carry on
        self._bump(self.counts, route.key)

        # 5. params
        try:
            raw_params = self._params(method, query, lower, body, json_body=path.startswith("/v2/"))
        except StripeError as err:
            return error(err)

        # 6. idempotency
        use_idem = idem_key is not None and route.idempotent_writes
        if use_idem:
            assert idem_key is not None
            try:
                saved = self.idempotency.begin(
                    api_key, idem_key, f"{method} {path}", raw_params, self.clock.now_float(), request_id
                )
            except StripeError as err:
                return error(err)
            if saved is not None:
                replay_headers = {
                    **saved.headers,
                    **base_headers,
                    "Idempotent-Replayed": "true",
                    "Original-Request": saved.request_id,
                }
                return finish(Response(saved.status, saved.body, replay_headers), replayed=True)

        # 7. the endpoint
        req = Request(
            self, method, path, route, path_params, Params(raw_params), api_key, idem_key, request_id
        )
        save = True
        if fault is not None and fault.stage == "endpoint":
            if fault.delay_ms:
                time.sleep(fault.delay_ms / 1000)
            if fault.status is not None:
                failure = StripeError(fault.status, "An unknown error occurred", type="api_error")
                resp = Response(failure.status, _json_bytes(failure.body(request_id)), dict(base_headers))
            else:
                resp, save = self._execute(req, base_headers)
        else:
            resp, save = self._execute(req, base_headers)
        if idem_key is not None:
            resp.headers["Idempotency-Key"] = idem_key
        if use_idem:
            assert idem_key is not None
            if save:
                self.idempotency.save(api_key, idem_key, resp.status, resp.body, resp.headers)
            else:
                self.idempotency.abandon(api_key, idem_key)
        self._bump(self.executed, route.key)

        # 8. faults after the endpoint (the response is lost or replaced)
        if fault is not None and fault.stage == "after_endpoint":
            faulted = self._fault_response(fault, request_id, base_headers)
            if faulted is not None:
                return finish(faulted, fault=fault.kind + (":drop" if faulted.drop else f":{faulted.status}"))
        return finish(resp)

    def _authenticate(self, header: str | None) -> str:
        if not header:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization "
                "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
                "https://stripe.com/docs/api#authentication for details, or we can help at "
                "https://support.stripe.com/.",
            )
        scheme, _, value = header.partition(" ")
        key = value.strip()
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(key).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        elif scheme.lower() != "bearer":
            key = ""
        if not key.startswith(VALID_KEY_PREFIXES):
            raise StripeError(401, f"Invalid API Key provided: {redact_key(key)}")
        return key

    def _params(
        self, method: str, query: str, headers: dict[str, str], body: bytes, json_body: bool = False
    ) -> dict[str, Any]:
        params = decode(query) if query else {}
        if body:
            ctype = headers.get("content-type", "application/x-www-form-urlencoded")
            if json_body:  # API v2 takes JSON bodies
                try:
                    data = json.loads(body)
                except (ValueError, UnicodeDecodeError):
                    raise StripeError(400, "Invalid request: the body is not valid JSON.") from None
                if not isinstance(data, dict):
                    raise StripeError(400, "Invalid request: the JSON body must be an object.")
                params.update(data)
                return params
            if "json" in ctype:
                raise StripeError(
                    400,
                    "Invalid request: the v1 API expects application/x-www-form-urlencoded bodies.",
                )
            try:
                text = body.decode()
            except UnicodeDecodeError:
                raise StripeError(400, "Invalid request body: not UTF-8") from None
            params.update(decode(text))
        return params

    def _execute(self, req: Request, base_headers: dict[str, str]) -> tuple[Response, bool]:
        """Run the endpoint. Returns the response and whether idempotency should save it."""
        with self.store.lock:
            self.store.current_request = {"id": req.request_id, "idempotency_key": req.idempotency_key}
            try:
                self.due.run()
                req.params.check(req.route.allowed)
                result = req.route.handler(req)
                status, payload = result if isinstance(result, tuple) else (200, result)
                self.due.run()  # what the request made due at once (e.g. a trial ending within 3 days)
                expand = req.params.expand()
                if expand:
                    payload = self.store.expand(payload, expand)
                return Response(status, _json_bytes(payload), dict(base_headers)), True
            except StripeError as err:
                resp = Response(
                    err.status, _json_bytes(err.body(req.request_id)), {**base_headers, **err.headers}
                )
                # Validation failures are not saved; errors the endpoint produced (5xx) are.
                return resp, err.status >= 500
            except Exception:
                traceback.print_exc()
                crash = api_error()
                return Response(500, _json_bytes(crash.body(req.request_id)), dict(base_headers)), True
            finally:
                self.store.current_request = {"id": None, "idempotency_key": None}

    def _fault_response(self, fault: Fault, request_id: str, base_headers: dict[str, str]) -> Response | None:
        if fault.delay_ms:
            time.sleep(fault.delay_ms / 1000)
        if fault.drop_connection:
            return Response(0, b"", {}, drop=True)
        if fault.status is None:
            return None
        if fault.status == 429:
            err = lock_timeout() if fault.code == "lock_timeout" else rate_limited(fault.should_retry)
        elif fault.status >= 500:
            err = StripeError(fault.status, "An unknown error occurred", type="api_error")
        else:
            err = StripeError(fault.status, "Injected error")
        headers = {**base_headers, **err.headers}
        if fault.should_retry is not None:
            headers["Stripe-Should-Retry"] = "true" if fault.should_retry else "false"
        return Response(err.status, _json_bytes(err.body(request_id)), headers)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = -1  # one buffered write per response (flushed by handle_one_request)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        resp = self.server.emulator.handle(self.command, self.path, dict(self.headers.items()), body)
        if resp.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(resp.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(resp.body)))
        for key, value in resp.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(resp.body)

    do_GET = _serve  # noqa: N815
    do_POST = _serve  # noqa: N815
    do_DELETE = _serve  # noqa: N815
    do_PUT = _serve  # noqa: N815
    do_PATCH = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator


class StripeEmulator:
    """Run the emulator in a background thread: ``with StripeEmulator() as emu: emu.url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, rate_limit: float | None = None) -> None:
        self.emulator = Emulator(rate_limit=rate_limit)
        self._server = _Server((host, port), self.emulator)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def state(self) -> Store:
        return self.emulator.store

    @property
    def clock(self) -> Clock:
        return self.emulator.clock

    def start(self) -> StripeEmulator:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="stripe-emulator", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def shutdown(self) -> None:
        self._server.shutdown()

    def reset(self) -> None:
        self.emulator.reset()

    def __enter__(self) -> StripeEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
