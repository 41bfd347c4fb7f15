"""The base of the domain's values: immutable pydantic models that refuse unknown fields (a module of its
own, so that a value needs no more of the domain than its own fields)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
