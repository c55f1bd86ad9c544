"""Caching a ``MEMBERSHIP_RESOLVER`` across requests.

django-arc calls the resolver at most once per request (the answer is cached on the
request). For APIs whose requests are cheap, that one indexed query is still the largest
part of tenancy's cost (see ``docs/benchmarks.md``). :func:`cached_resolver` keeps answers
in a Django cache for ``ttl`` seconds; call ``resolver.invalidate(user_id, org_id)`` when a
membership change commits (``transaction.on_commit`` from ``post_save``/``post_delete`` of
your membership model: cleared before the commit, a request resolving in between caches the
old membership again) so a revoked member loses access at once — with a shared cache (Redis)
for every process.
Without invalidation, a change takes effect within ``ttl``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.core.cache import caches

logger = logging.getLogger("django_arc.membership")

Resolver = Callable[[Any, str], Iterable[str] | None]
_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MISS = object()


def _key(prefix: str, user_id: Any, org_id: Any) -> str:
    org = str(org_id)
    if not _SAFE.match(org):  # headers are client input: keep cache keys portable
        org = "h" + hashlib.sha256(org.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{prefix}:{user_id}:{org}"


def cached_resolver(
    resolver: Resolver, *, ttl: int = 60, alias: str = "default", prefix: str = "arc:membership"
) -> Resolver:
    """Wrap ``resolver`` (``(user, org_id) -> roles | None``) with a Django cache.

    "Not a member" is cached too. A cache outage degrades to calling ``resolver`` directly:
    never an error, never a wrong answer.
    """

    def resolve(user: Any, org_id: str) -> list[str] | None:
        user_id = getattr(user, "pk", None)
        if user_id is None:
            return _as_roles(resolver(user, org_id))
        key = _key(prefix, user_id, org_id)
        try:
            cached = caches[alias].get(key, _MISS)
        except Exception:  # noqa: BLE001 - a cache outage must not deny or grant access
            logger.warning("membership cache %r unavailable", alias, exc_info=True)
            return _as_roles(resolver(user, org_id))
        if cached is not _MISS:
            return None if cached is None else list(cached)
        roles = _as_roles(resolver(user, org_id))
        try:
            caches[alias].set(key, roles, ttl)
        except Exception:  # noqa: BLE001
            logger.warning("membership cache %r unavailable", alias, exc_info=True)
        return roles

    def invalidate(user_id: Any, org_id: Any) -> None:
        """Forget the cached answer for ``(user_id, org_id)``."""
        try:
            caches[alias].delete(_key(prefix, user_id, org_id))
        except Exception:  # noqa: BLE001
            logger.warning("membership cache %r unavailable", alias, exc_info=True)

    resolve.invalidate = invalidate  # type: ignore[attr-defined]
    resolve.__wrapped__ = resolver  # type: ignore[attr-defined]
    resolve.__doc__ = resolver.__doc__
    return resolve


def _as_roles(result: Iterable[str] | None) -> list[str] | None:
    return None if result is None else [str(role) for role in result]
