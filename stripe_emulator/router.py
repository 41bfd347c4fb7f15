"""A small router: route templates like ``POST /v1/customers/{id}`` to handler functions.

Resource modules register their routes with :meth:`Router.add`; the template string is
also the key used by the request log, counts and fault matching.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Request

Handler = Callable[["Request"], "tuple[int, dict[str, Any]] | dict[str, Any]"]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler
    allowed: frozenset[str]
    idempotent_writes: bool  # POST/DELETE under Idempotency-Key

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, route: str, handler: Handler, allowed: frozenset[str] | set[str] = frozenset()) -> None:
        """Register ``"METHOD /path/{param}"``; ``allowed`` are the top-level params it takes."""
        method, template = route.split(" ", 1)
        regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
        self.routes.append(
            Route(
                method=method,
                template=template,
                pattern=re.compile(regex),
                handler=handler,
                allowed=frozenset(allowed) | {"expand"},
                idempotent_writes=method in ("POST", "DELETE"),
            )
        )
        # Literal segments win over {params}: /v1/customers/search before /v1/customers/{id}.
        self.routes.sort(key=lambda r: r.template.count("{"))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method != method:
                continue
            m = route.pattern.match(path)
            if m:
                return route, m.groupdict()
        return None

    def template_for(self, method: str, path: str) -> str:
        found = self.match(method, path)
        return found[0].key if found else f"{method} {path}"
