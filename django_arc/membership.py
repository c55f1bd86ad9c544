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

import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast

from django.core.cache import caches

from . import redis_alias
from .cache_keys import key_part

logger = logging.getLogger("django_arc.membership")

Resolver = Callable[[Any, str], Iterable[str] | None]


class CachedResolver(Protocol):
    """What :func:`cached_resolver` returns: a resolver, and its ``invalidate``."""

    def __call__(self, user: Any, org_id: str) -> list[str] | None: ...

    def invalidate(self, user_id: Any, org_id: Any) -> None: ...


def _key(prefix: str, user_id: Any, org_id: Any) -> str:
    return f"{prefix}:{key_part(user_id)}:{key_part(org_id)}"


#: how long a user's generation (see :func:`cached_resolver`) is kept: its expiry only turns
#: the user's cached answers into misses
GENERATION_SECONDS = 86400


def cached_resolver(
    resolver: Resolver, *, ttl: int = 60, alias: str = "default", prefix: str = "arc:membership"
) -> CachedResolver:
    """Wrap ``resolver`` (``(user, org_id) -> roles | None``) with a Django cache.

    "Not a member" is cached too. A cache outage degrades to calling ``resolver`` directly:
    never an error, never a wrong answer.

    Answers are cached per organization id *as the header spelled it*, and a resolver may
    read several spellings as one organization (the ORM reads ``"01"`` as ``1``, a UUID in
    capitals as the UUID): ``invalidate(user_id, org_id)`` cannot name them all. So every
    answer is stored with the user's *generation*, a random token read in the same round
    trip, and ``invalidate`` gives the user a new one: whatever was cached for any spelling
    of any of the user's organizations is a miss from then on. A generation evicted or
    expired is replaced by a new one the same way, so losing it only costs misses.
    """

    def resolve(user: Any, org_id: str) -> list[str] | None:
        user_id = getattr(user, "pk", None)
        if user_id is None:
            return as_roles(resolver(user, org_id), resolver)
        key, generation_key = _key(prefix, user_id, org_id), _generation_key(prefix, user_id)
        try:
            cache = caches[alias]
            found = cache.get_many([key, generation_key])
            generation = found.get(generation_key)
            if generation is None:
                # none yet, or evicted: a new one, which no cached answer carries (unless
                # another request added one meanwhile: then that one)
                cache.add(generation_key, uuid.uuid4().hex, GENERATION_SECONDS)
                generation = cache.get(generation_key)
        except Exception:  # noqa: BLE001 - a cache outage must not deny or grant access
            _warn_unavailable(alias)
            return as_roles(resolver(user, org_id), resolver)
        cached = found.get(key)
        if (
            generation is not None
            and isinstance(cached, (tuple, list))  # a JSON serializer gives lists
            and len(cached) == 2
            and cached[0] == generation
        ):
            return None if cached[1] is None else list(cached[1])
        roles = as_roles(resolver(user, org_id), resolver)
        if generation is not None:
            try:
                cache.set(key, (generation, roles), ttl)
            except Exception:  # noqa: BLE001
                _warn_unavailable(alias)
        return roles

    def invalidate(user_id: Any, org_id: Any) -> None:
        """Forget the cached answers for ``user_id`` — for ``org_id`` under every spelling,
        and for the user's other organizations too (they are asked again once)."""
        try:
            caches[alias].set(
                _generation_key(prefix, user_id), uuid.uuid4().hex, GENERATION_SECONDS
            )
        except Exception:  # noqa: BLE001
            logger.warning("membership cache %r unavailable", alias, exc_info=True)

    resolve.invalidate = invalidate  # type: ignore[attr-defined]
    resolve.__wrapped__ = resolver  # type: ignore[attr-defined]
    resolve.__doc__ = resolver.__doc__
    return cast(CachedResolver, resolve)


def _warn_unavailable(alias: str) -> None:
    """A request resolved its roles without the cache: logged once per interval, not once
    per request (every request resolves its membership, and an outage would flood the log
    with a traceback apiece). A failed ``invalidate`` is logged every time: a revoked member
    keeps the cached roles up to ``ttl``."""
    if redis_alias.warning_due(f"membership cache {alias!r}"):
        logger.warning(
            "membership cache %r unavailable; roles are resolved without it "
            "(next warning in %d s at most)",
            alias,
            redis_alias.WARNING_INTERVAL_SECONDS,
            exc_info=True,
        )


def _generation_key(prefix: str, user_id: Any) -> str:
    # not ``{prefix}:…``, where the answers are: no user id and organization make it
    return f"{prefix}.g:{key_part(user_id)}"


class ResolverAnswerError(TypeError):
    """A ``MEMBERSHIP_RESOLVER`` answered neither ``None`` nor a list of role names: the
    project's bug. A ``TypeError`` of its own, so the scope, which reads a resolver raising
    ``TypeError`` on a malformed id as "not a member", lets this one through (a 500 naming
    the setting) even when :func:`cached_resolver` raised it from inside the resolver call."""


def as_roles(result: Any, resolver: Any = None) -> list[str] | None:
    """A resolver's answer as a list of role names, or ``None`` (not a member).

    Anything else is the resolver's bug, raised with its name rather than guessed at: a
    bare ``"admin"`` iterated would be the roles ``a``, ``d``, ``m``…, ``""`` a member
    without roles, and that list would then be cached as the answer."""
    if result is None:
        return None
    if isinstance(result, (str, bytes)) or not isinstance(result, Iterable):
        raise ResolverAnswerError(
            f"ARC['MEMBERSHIP_RESOLVER'] {resolver!r} returned {result!r}; it must return "
            "a list of role names (empty for a member without roles) or None (not a member)"
        )
    return [str(role) for role in result]
