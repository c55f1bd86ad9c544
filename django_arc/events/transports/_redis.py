"""What both Redis transports need: a client from a URL, and text out of redis-py replies."""

from __future__ import annotations

from typing import Any


def redis_client(url: str | None, client: Any) -> Any:
    """``client`` when given, else ``redis.Redis.from_url(url)`` (imported here: Redis is an
    optional dependency, only needed by projects that configure a Redis transport)."""
    if client is not None:
        return client
    if not url:
        raise ValueError("a Redis url (or client) is required")
    import redis

    return redis.Redis.from_url(url)


def text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
