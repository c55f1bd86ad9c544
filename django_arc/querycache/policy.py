"""Which resources are cached, and for how long: ``Resource.cache`` over ``ARC["CACHE"]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..settings import MAX_SECONDS, arc_settings, on_reload

#: the keys ``Resource.cache`` may hold
OPTION_KEYS = ("stale_seconds", "gc_seconds", "tags")


@dataclass(frozen=True)
class CachePolicy:
    """How one resource's list/get answers are cached.

    Fresh for ``stale_seconds`` (``X-Cache: HIT``), then served as ``STALE`` and refreshed
    once, until ``gc_seconds`` after they were computed, when Redis drops them. ``tags`` are
    invalidation groups shared with other resources: a write to any member invalidates all.
    """

    stale_seconds: float
    gc_seconds: float
    tags: tuple[str, ...]
    alias: str


def policy_for(resource: Any) -> CachePolicy | None:
    """The policy of ``resource``; ``None`` when it is not cached. ``cache = {...}`` (or
    ``True``) turns it on whatever ``ARC["CACHE"]["ENABLED"]`` says, ``cache = False`` off;
    left at ``None`` it follows that setting."""
    option = resource.cache
    settings = arc_settings.CACHE
    if option is False or not isinstance(settings, dict):
        # ARC["CACHE"] that is not a dict is arc.E008's to report; registering a resource
        # (at import) and reloading ARC ask this, and must not crash before check can say so
        return None
    if option is None:
        if not settings.get("ENABLED", False):
            return None
        option = {}
    elif option is True:
        option = {}
    try:
        stale = float(option.get("stale_seconds", settings.get("STALE_SECONDS", 30)))
        gc = float(option.get("gc_seconds", settings.get("GC_SECONDS", 300)))
        tags = option.get("tags", ())
        if not isinstance(tags, (list, tuple)):
            raise TypeError("tags")
        if not (stale <= MAX_SECONDS and gc <= MAX_SECONDS):  # NaN and infinity too
            raise ValueError("a lifetime longer than Redis can be given an expiry for")
    except (AttributeError, TypeError, ValueError):
        return None  # a malformed option is arc.E014's to report; never cache on a guess
    return CachePolicy(
        stale_seconds=stale,
        gc_seconds=max(gc, stale),
        tags=tuple(str(tag) for tag in tags),
        alias=settings.get("ALIAS", "default"),
    )


_policies: dict[Any, tuple[Any, CachePolicy | None]] = {}


def cached_policy_for(resource: Any) -> CachePolicy | None:
    """:func:`policy_for`, worked out once per resource and ``cache`` option (a request
    asks on every list and get). A new ``cache`` value (another object) or a change of
    ``ARC`` is read again; a ``cache`` dict changed in place is not."""
    option = resource.cache
    known = _policies.get(resource)
    if known is not None and known[0] is option:
        return known[1]
    policy = policy_for(resource)
    _policies[resource] = (option, policy)
    return policy


on_reload(_policies.clear)
