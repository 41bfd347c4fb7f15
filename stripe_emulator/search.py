"""A subset of Stripe's Search Query Language.

Supported: ``field:'value'`` (exact, case-insensitive for email), ``field~'value'``
(substring, at least 3 characters), ``-field:'value'`` (negation), ``metadata['key']:'value'``,
``field:null``, numeric ``created>123`` / ``>=`` / ``<`` / ``<=``, and clauses joined with
either ``AND`` or ``OR`` (not mixed, as in Stripe). Unlike Stripe, results are immediately
consistent (Stripe's search index can lag writes by up to a minute).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import invalid
from .params import Params
from .store import Obj, Store

_CLAUSE = re.compile(
    r"""\s*(?P<neg>-)?(?P<field>metadata\[(?:'[^']*'|"[^"]*")\]|[a-z_.]+)\s*
        (?P<op>:|~|>=|<=|>|<)\s*
        (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|null|-?\d+)\s*""",
    re.X,
)


@dataclass
class Clause:
    negate: bool
    field: str
    op: str
    value: str | int | None


def parse(query: str, fields: set[str]) -> tuple[list[Clause], str]:
    clauses: list[Clause] = []
    joiners: set[str] = set()
    pos = 0
    while True:
        m = _CLAUSE.match(query, pos)
        if not m:
            raise invalid(
                f"Invalid query: could not parse the query at position {pos}: {query!r}", param="query"
            )
        field = m.group("field")
        if field.startswith("metadata["):
            field = "metadata." + field[10:-2]
        elif field not in fields:
            raise invalid(f"Field `{field}` is an unsupported search field for this resource.", param="query")
        raw = m.group("value")
        value: str | int | None
        if raw == "null":
            value = None
        elif raw[0] in "'\"":
            value = re.sub(r"\\(.)", r"\1", raw[1:-1])
        else:
            value = int(raw)
        if m.group("op") == "~" and (not isinstance(value, str) or len(value) < 3):
            raise invalid("Substring (~) queries need a string of at least 3 characters.", param="query")
        clauses.append(Clause(bool(m.group("neg")), field, m.group("op"), value))
        pos = m.end()
        if pos >= len(query):
            break
        j = re.match(r"\s*(AND|OR)\s+", query[pos:])
        if not j:
            raise invalid(f"Invalid query: expected AND or OR at position {pos}: {query!r}", param="query")
        joiners.add(j.group(1))
        pos += j.end()
    if len(joiners) > 1:
        raise invalid("Queries cannot mix AND and OR.", param="query")
    return clauses, joiners.pop() if joiners else "AND"


def _value(obj: Obj, field: str) -> Any:
    if field.startswith("metadata."):
        return obj.get("metadata", {}).get(field[len("metadata.") :])
    node: Any = obj
    for part in field.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _match(obj: Obj, c: Clause) -> bool:
    actual = _value(obj, c.field)
    if c.op == ":":
        if c.value is None:
            ok = actual is None
        elif isinstance(actual, str) and isinstance(c.value, str):
            ok = actual.lower() == c.value.lower() if c.field == "email" else actual == c.value
        else:
            ok = actual == c.value
    elif c.op == "~":
        ok = isinstance(actual, str) and str(c.value).lower() in actual.lower()
    else:
        if not isinstance(actual, int) or not isinstance(c.value, int):
            ok = False
        else:
            ok = {
                ">": actual > c.value,
                "<": actual < c.value,
                ">=": actual >= c.value,
                "<=": actual <= c.value,
            }[c.op]
    return ok != c.negate


def search(store: Store, objs: list[Obj], params: Params, url: str, fields: set[str]) -> Obj:
    query = params.str("query", required=True)
    assert query is not None
    clauses, joiner = parse(query, fields)
    combine: Callable[[Any], bool] = all if joiner == "AND" else any
    hits = [o for o in objs if combine(_match(o, c) for c in clauses)]
    limit = params.int("limit")
    limit = 10 if limit is None else limit
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100", param="limit")
    page = params.str("page")
    offset = 0
    if page is not None:
        try:
            offset = int(base64.urlsafe_b64decode(page.encode()).decode())
        except ValueError:
            raise invalid("Invalid page token.", param="page") from None
    chunk = hits[offset : offset + limit]
    more = offset + limit < len(hits)
    return {
        "object": "search_result",
        "data": [store.render(o) for o in chunk],
        "has_more": more,
        "next_page": base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if more else None,
        "url": url,
    }
