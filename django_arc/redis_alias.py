"""The Redis server behind a django-redis cache alias, and what happens when it is away.

The query cache and the idempotency ``cache`` store both name a Django ``CACHES`` alias
rather than a Redis URL, so one place configures the server (URL, key prefix, timeouts,
pool) and ``KEY_PREFIX``/``VERSION`` separate projects sharing it. They need commands the
cache API does not offer (``SET NX`` with a lock value, ``MGET`` of entries and versions in
one round trip, compare-and-set scripts), so they talk to django-redis's own client.

An outage must cost one log line per interval, not one per request: :func:`warn_outage`
rate-limits the warnings of each feature.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache import caches

try:  # redis is an optional dependency (the ``redis`` extra)
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover - without it no alias can be django-redis
    RedisError = OSError  # type: ignore[misc,assignment]

logger = logging.getLogger("django_arc.redis")

#: What a Redis call may raise when the server is down, slow or refusing (OOM): every
#: feature treats these as an outage.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)

#: At most one outage warning per feature in this many seconds.
WARNING_INTERVAL_SECONDS = 60.0

_warned_at: dict[str, float] = {}
_warn_lock = threading.Lock()


def is_django_redis(alias: str) -> bool:
    """Whether ``CACHES[alias]`` exists and is a django-redis backend."""
    config = getattr(settings, "CACHES", {}).get(alias)
    backend = (config or {}).get("BACKEND", "")
    return isinstance(backend, str) and backend.startswith("django_redis.")


def client(alias: str) -> Any:
    """The redis-py client of ``alias`` (django-redis keeps one pool per alias)."""
    return Alias(alias).client()


def make_key(alias: str, key: str) -> str:
    """``key`` with the alias's ``KEY_PREFIX`` and ``VERSION``, as its cache API would."""
    return str(caches[alias].make_key(key))


class Alias:
    """One alias, looked up once: its redis-py client and its key function (a request
    that needs several keys and a client pays for ``caches[alias]`` once)."""

    __slots__ = ("_cache",)

    def __init__(self, alias: str) -> None:
        self._cache = caches[alias]

    def client(self) -> Any:
        return self._cache.client.get_client(write=True)

    def key(self, key: str) -> str:
        return str(self._cache.make_key(key))


def warn_outage(feature: str, exc: BaseException) -> None:
    """Log that ``feature`` could not reach Redis, at most once per
    :data:`WARNING_INTERVAL_SECONDS`."""
    now = time.monotonic()
    with _warn_lock:
        last = _warned_at.get(feature)
        if last is not None and now - last < WARNING_INTERVAL_SECONDS:
            return
        _warned_at[feature] = now
    logger.warning(
        "%s: Redis unavailable (%s: %s); continuing without it (next warning in %d s at most)",
        feature,
        type(exc).__name__,
        exc,
        WARNING_INTERVAL_SECONDS,
    )


def reset_outage_warnings() -> None:
    """Forget when each feature last warned (tests, and a deliberate reconfiguration)."""
    with _warn_lock:
        _warned_at.clear()
