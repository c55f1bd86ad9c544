"""Review of cost10 and cost11 (rev-fixes71): the commands ``redis_alias`` packs itself,
over a connection that sends its own way."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import pytest
from django.test import override_settings
from django_redis.pool import ConnectionFactory
from redis.connection import Connection

from django_arc import redis_alias
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory
from tests.helpers import client_for
from tests.redis_support import REDIS_URL, arc_with, caches_with

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"),
    pytest.mark.django_db(transaction=True),
]

CACHED = "/api/cached-products/"

#: the commands a project's connection class saw through its ``send_command``
TRACED: list[str] = []


class TracingConnection(Connection):
    """A project's connection class that traces each command it sends (as an APM does)."""

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        TRACED.append(str(args[0]).upper())
        super().send_command(*args, **kwargs)


@contextmanager
def cached_products_over(pool_kwargs: dict[str, Any]):
    """The query cache on the ``redis`` alias whose pool gets ``pool_kwargs`` (a pool of its
    own: django-redis keeps one per URL for the process, whatever the options)."""
    pools: dict[str, Any] = {}
    with (
        _patched(ConnectionFactory, "_pools", pools),
        _query_cache_with(pool_kwargs),
    ):
        try:
            yield
        finally:
            for pool in pools.values():
                pool.disconnect()


@contextmanager
def _patched(owner: Any, name: str, value: Any):
    saved = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


@contextmanager
def _query_cache_with(pool_kwargs: dict[str, Any]):
    caches = caches_with("redis", REDIS_URL)
    caches["redis"]["OPTIONS"] = {
        **caches["redis"]["OPTIONS"],
        "CONNECTION_POOL_KWARGS": pool_kwargs,
    }
    with override_settings(
        CACHES=caches, ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})
    ):
        redis_alias.reset_outage_warnings()
        yield


def an_editor():
    org = OrganizationFactory()
    ProductFactory(organization=org, name="A0", price=10, cost=3)
    user = MembershipFactory(organization=org, role="editor").user
    return client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))


def test_a_connection_class_of_the_project_still_sends_the_cached_reads_commands():
    """A project's connection class overriding ``send_command`` (tracing, metrics) saw no
    ``MGET`` of a cached read once django-arc packed it itself: it is sent through that
    class's ``send_command`` again, and the read is still a MISS then a HIT."""
    editor = an_editor()
    with cached_products_over({"connection_class": TracingConnection}):
        TRACED.clear()
        first = editor.get(CACHED)
        second = editor.get(CACHED)
    assert (first.status_code, first["X-Cache"]) == (200, "MISS")
    assert (second.status_code, second["X-Cache"]) == (200, "HIT")
    assert second.content == first.content
    assert TRACED.count("MGET") == 2, TRACED


def test_a_cached_read_over_redis_py_client_side_caching_is_answered(monkeypatch):
    """redis-py's client-side caching (``cache_config``, RESP3) hands the pool's
    connections out in a proxy that has no ``encoder`` and keeps its cache in step from
    its ``send_command``: django-arc's own packing of the ``MGET`` was an
    ``AttributeError``, a 500 on every cached read. (redis-py asks for Redis 7.4; the
    suite's 7.0 server tracks keys all the same, so its floor is lowered here.)"""
    from redis.cache import CacheConfig
    from redis.connection import CacheProxyConnection

    monkeypatch.setattr(CacheProxyConnection, "MIN_ALLOWED_VERSION", "6.0.0")
    editor = an_editor()
    with cached_products_over({"protocol": 3, "cache_config": CacheConfig()}):
        first = editor.get(CACHED)
        second = editor.get(CACHED)
    assert (first.status_code, first["X-Cache"]) == (200, "MISS"), first.content
    assert (second.status_code, second["X-Cache"]) == (200, "HIT"), second.content
    assert second.content == first.content
