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
    """``value`` (a reply's bytes) as text; bytes that are not UTF-8 as their Python escapes
    (``\\xff``). What comes back from Redis is another producer's (an entry's field names, a
    channel): read strictly, one such name raised out of a consumer, which neither
    acknowledged nor dead-lettered the entry, and met it again on every reclaim."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)
