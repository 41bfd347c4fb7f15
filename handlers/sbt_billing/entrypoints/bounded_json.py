"""JSON as the functions accept it: nested at most MAX_DEPTH levels, checked before anything recurses.

`json.loads` and pydantic recurse into what they read; a body nested some thousands of levels deep
raises RecursionError, which no handler takes for bad input, so it fails the invocation and comes back
until it is dead-lettered (a queue, Stripe's retries, a client's). Every event, webhook and request the
stack accepts nests far less than MAX_DEPTH (a Stripe event about a dozen levels).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from sbt_billing.domain.errors import InvalidEvent

MAX_DEPTH = 64
TOO_DEEP = f"is nested deeper than {MAX_DEPTH} levels"

# JSON strings (whose brackets are text) and runs of anything that is not a bracket or a quote: what is
# left of a document once they are removed are its brackets, in order.
_NOT_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[^\[\]{}"]+', re.DOTALL)


def text_depth(text: str) -> int:
    """How deep the JSON document `text` nests (0 for a scalar); stops counting past MAX_DEPTH."""
    depth = deepest = 0
    for char in _NOT_BRACKETS.sub("", text):
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    break
        elif char in "]}":
            depth -= 1
    return deepest


def value_depth(value: object) -> int:
    """How deep `value` (dicts and lists, as json.loads makes them) nests, without recursion; stops
    counting past MAX_DEPTH."""
    deepest = 0
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                break
        pending.extend((child, depth) for child in children)
    return deepest


def check_depth(value: object, field: str) -> None:
    """InvalidEvent naming `field` when `value` nests deeper than MAX_DEPTH."""
    if value_depth(value) > MAX_DEPTH:
        raise InvalidEvent(field, TOO_DEEP)


def loads(document: str | bytes, field: str = "body") -> Any:
    """The JSON `document`, or InvalidEvent naming `field`: not UTF-8 JSON, or nested too deep (checked
    on the text, before json.loads recurses into it)."""
    try:
        text = document.decode() if isinstance(document, bytes) else document
    except UnicodeDecodeError:
        raise InvalidEvent(field, "is not JSON") from None
    if text_depth(text) > MAX_DEPTH:
        raise InvalidEvent(field, TOO_DEEP)
    try:
        return json.loads(text)
    except ValueError:
        raise InvalidEvent(field, "is not JSON") from None
