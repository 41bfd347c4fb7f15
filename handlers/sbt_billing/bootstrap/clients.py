"""AWS clients and the per-container caches every composition module registers with."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, cast

import boto3
from botocore.config import Config

from sbt_billing.bootstrap.settings import settings

_AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=3, read_timeout=5)

_forgettable: list[Callable[[], None]] = []
_secret_bearing: list[Callable[[], None]] = []


def cached[F: Callable[..., Any]](factory: F) -> F:
    """`functools.cache`, registered so that forget_clients() drops what it made."""
    wrapped = cache(factory)
    _forgettable.append(wrapped.cache_clear)
    return cast(F, wrapped)


def secret_bearing[F: Callable[..., Any]](factory: F) -> F:
    """`cached`, for what holds a secret or an open connection: also dropped after a SnapStart restore."""
    wrapped = cached(factory)
    _secret_bearing.append(wrapped.cache_clear)  # type: ignore[attr-defined]
    return wrapped


def on_restore(drop: Callable[[], None]) -> None:
    """Registers a further cache (not made by `secret_bearing`) to drop after a SnapStart restore."""
    _secret_bearing.append(drop)
    _forgettable.append(drop)


def forget_after_restore() -> None:
    """What a restored environment must not share with the others restored from the same snapshot:
    cached secrets and keys, and the clients holding them (and their connections)."""
    for drop in _secret_bearing:
        drop()


def forget_clients() -> None:
    """Drops every cached setting and client, for a process that changes its environment between
    events (the tests and the local runner) or a snapshot restored into a new environment
    (bootstrap.snapstart). Only the modules this process imported have registered theirs."""
    settings.cache_clear()
    for drop in _forgettable:
        drop()


@cached
def aws_client(service: str) -> Any:
    # boto3 honours AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) by itself.
    return boto3.client(service, config=_AWS_CONFIG)  # type: ignore[call-overload]


def deferred[T](factory: Callable[[], T]) -> T:
    """The adapter `factory` makes, made at its first use: a function that never uses it never reads
    its settings or its secret (nor needs the permissions they lead to)."""
    return cast(T, _Deferred(factory))


class _Deferred:
    def __init__(self, factory: Callable[[], object]) -> None:
        self._factory = factory

    def __getattr__(self, name: str) -> Any:
        return getattr(self._factory(), name)
