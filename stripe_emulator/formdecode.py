"""Decode Stripe's form encoding (``a[b][0][c]=v``) into nested dicts and lists.

Values stay strings; endpoints coerce them with :class:`stripe_emulator.params.Params`.
Dicts whose keys are all decimal indexes become lists, except under ``metadata``
(metadata keys are free-form strings and may look like numbers).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from .errors import invalid

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART_RE = re.compile(r"\[([^\[\]]*)\]")

_APPEND = object()


def split_key(key: str) -> list[str]:
    m = _KEY_RE.match(key)
    if not m:
        raise invalid(f"Invalid parameter name: {key}", param=key)
    return [m.group(1), *_PART_RE.findall(m.group(2))]


def decode(body: str) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True, strict_parsing=False):
        parts = split_key(key)
        node: dict[str, Any] = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            name = part
            if part == "":  # a[]=x : append
                name = str(sum(1 for k in node if k.isdigit()))
            if last:
                if name in node and isinstance(node[name], dict):
                    raise invalid(f"Invalid parameter: {key} is given both as a value and a hash", param=key)
                node[name] = value
            else:
                child = node.get(name)
                if child is None:
                    child = {}
                    node[name] = child
                elif not isinstance(child, dict):
                    raise invalid(f"Invalid parameter: {key} is given both as a value and a hash", param=key)
                node = child
    result = _listify(root, parent="")
    assert isinstance(result, dict)
    return result


def _listify(value: Any, parent: str) -> Any:
    if not isinstance(value, dict):
        return value
    if parent != "metadata" and value and all(k.isdigit() for k in value):
        return [_listify(value[k], "") for k in sorted(value, key=int)]
    return {k: _listify(v, k) for k, v in value.items()}
