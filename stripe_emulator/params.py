"""Typed access to decoded request params, raising Stripe's validation errors.

Every value on the wire is a string; each endpoint says which params it takes and
their types. Params an endpoint does not take are rejected with ``parameter_unknown``
(Stripe does the same, which is what catches misspelled params).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Any

from .errors import empty_param, invalid, missing_param, unknown_param

_TRUE = {"true"}
_FALSE = {"false"}


class Params:
    """A view over one level of decoded params; ``prefix`` names it in error messages."""

    def __init__(self, data: dict[builtins.str, Any], prefix: builtins.str = "") -> None:
        self.data = data
        self.prefix = prefix

    def path(self, name: builtins.str) -> builtins.str:
        return f"{self.prefix}[{name}]" if self.prefix else name

    def check(self, allowed: Iterable[builtins.str]) -> None:
        allowed_set = set(allowed)
        for key in self.data:
            if key not in allowed_set:
                raise unknown_param(self.path(key))

    def has(self, name: builtins.str) -> builtins.bool:
        return name in self.data

    def raw(self, name: builtins.str) -> Any:
        return self.data.get(name)

    def str(
        self, name: builtins.str, *, required: builtins.bool = False, nullable: builtins.bool = False
    ) -> builtins.str | None:
        """A string param. ``""`` means unset: allowed (-> None) only when ``nullable``."""
        if name not in self.data:
            if required:
                raise missing_param(self.path(name))
            return None
        value = self.data[name]
        if not isinstance(value, str):
            raise invalid(f"Invalid string: {self.path(name)} must be a string", param=self.path(name))
        if value == "":
            if nullable and not required:
                return None
            raise empty_param(self.path(name))
        return value

    def int(
        self, name: builtins.str, *, required: builtins.bool = False, minimum: builtins.int | None = None
    ) -> builtins.int | None:
        value = self.str(name, required=required)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            raise invalid(
                f"Invalid integer: {value}", param=self.path(name), code="parameter_invalid_integer"
            ) from None
        if minimum is not None and number < minimum:
            raise invalid(
                f"Invalid {self.path(name)}: must be greater than or equal to {minimum}",
                param=self.path(name),
            )
        return number

    def bool(self, name: builtins.str, *, required: builtins.bool = False) -> builtins.bool | None:
        value = self.str(name, required=required)
        if value is None:
            return None
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise invalid(f"Invalid boolean: {value}", param=self.path(name))

    def enum(
        self, name: builtins.str, choices: Iterable[builtins.str], *, required: builtins.bool = False
    ) -> builtins.str | None:
        value = self.str(name, required=required)
        options = list(choices)
        if value is not None and value not in options:
            raise invalid(
                f"Invalid {self.path(name)}: must be one of {', '.join(options)}",
                param=self.path(name),
            )
        return value

    def sub(self, name: builtins.str, *, required: builtins.bool = False) -> Params | None:
        if name not in self.data:
            if required:
                raise missing_param(self.path(name))
            return None
        value = self.data[name]
        if value == "":
            return None
        if not isinstance(value, dict):
            raise invalid(f"Invalid hash: {self.path(name)}", param=self.path(name))
        return Params(value, self.path(name))

    def items(self, name: builtins.str) -> list[Params]:
        """A list of hashes, e.g. ``items[0][price]``."""
        if name not in self.data or self.data[name] == "":
            return []
        value = self.data[name]
        if isinstance(value, dict):  # sparse indexes come through as a dict
            value = [value[k] for k in sorted(value, key=lambda k: int(k) if k.isdigit() else 0)]
        if not isinstance(value, list):
            raise invalid(f"Invalid array: {self.path(name)}", param=self.path(name))
        out = []
        for i, entry in enumerate(value):
            if not isinstance(entry, dict):
                raise invalid(f"Invalid hash: {self.path(name)}[{i}]", param=f"{self.path(name)}[{i}]")
            out.append(Params(entry, f"{self.path(name)}[{i}]"))
        return out

    def str_list(self, name: builtins.str) -> list[builtins.str] | None:
        if name not in self.data:
            return None
        value = self.data[name]
        if isinstance(value, str):
            return [value] if value else []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid(f"Invalid array: {self.path(name)}", param=self.path(name))
        return list(value)

    def metadata(self, name: builtins.str = "metadata") -> dict[builtins.str, builtins.str] | None:
        """Metadata updates: ``None`` when absent, ``{}`` with clear=True when ``metadata=""``."""
        if name not in self.data:
            return None
        value = self.data[name]
        if value == "":
            return {"": ""}  # marker: clear everything
        if not isinstance(value, dict):
            raise invalid(f"Invalid hash: {self.path(name)}", param=self.path(name))
        for key, val in value.items():
            if not isinstance(val, str):
                raise invalid(
                    f"Invalid value for {self.path(name)}[{key}]", param=f"{self.path(name)}[{key}]"
                )
            if len(key) > 40:
                raise invalid(
                    f"Metadata keys can have up to 40 characters. The key {key!r} is too long.",
                    param=f"{self.path(name)}[{key}]",
                )
            if len(val) > 500:
                raise invalid(
                    f"Metadata values can have up to 500 characters, but you passed in a value that is "
                    f"{len(val)} characters. Invalid value: {val[:20]}...",
                    param=f"{self.path(name)}[{key}]",
                )
        return dict(value)

    def expand(self) -> list[builtins.str]:
        return self.str_list("expand") or []


def apply_metadata(current: dict[str, str], updates: dict[str, str] | None) -> dict[str, str]:
    """Stripe merges metadata; ``""`` as a value removes that key; ``metadata=""`` clears all."""
    if updates is None:
        return dict(current)
    if updates == {"": ""}:
        return {}
    merged = dict(current)
    for key, value in updates.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > 50:
        raise invalid("You can specify up to 50 keys in metadata.", param="metadata")
    return merged


# Request options the SDK handles client-side; never on the wire, listed for clarity.
COMMON = frozenset({"expand"})
