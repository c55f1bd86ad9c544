"""The ``ARC`` settings dict, read lazily like DRF's ``api_settings``.

Values are looked up on first access and cached; Django's ``setting_changed`` signal
(sent by ``override_settings``) drops the cache, so tests and reloads see new values on the
next request. Validation happens in system checks (:mod:`django_arc.checks`), never here, so
a bad value is reported at start-up rather than in the middle of a request.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

DEFAULTS: dict[str, Any] = {
    "DEFAULT_PAGE_SIZE": 20,
    "MAX_PAGE_SIZE": 100,
    "ORG_HEADER": "X-Organization-Id",
    "MEMBERSHIP_RESOLVER": None,
    "ELEVATION_HEADER": "X-Arc-Scope",
    "ELEVATION_CHECK": "django_arc.scope.is_platform_admin",
    "ON_FIELD_WRITE_DENIED": "reject",
    "EVENTS": {
        "TRANSPORT": "django_arc.events.transports.MemoryTransport",
        "OPTIONS": {},
        "OUTBOX": True,
        "SOURCE": "django-arc",
    },
    "OUTBOX": {
        "BATCH_SIZE": 100,
        "LEASE_SECONDS": 30,
        "MAX_ATTEMPTS": 8,
        "FAILURE_POLICY": "django_arc.outbox.exponential_backoff",
        "DELIVERED_RETENTION_DAYS": 7,
    },
    "IDEMPOTENCY": {
        "ENABLED": False,
        "STORE": "database",
        "TTL_SECONDS": 86400,
        "NAMESPACE": "",
        # how long a claimed key stays locked when its request never finishes (a crash)
        "LOCK_SECONDS": 30,
        # the django-redis cache alias of STORE = "cache"
        "ALIAS": "default",
    },
    "CACHE": {"ENABLED": False, "ALIAS": "default", "STALE_SECONDS": 30, "GC_SECONDS": 300},
}

#: The longest lifetime a duration setting or option may give (idempotency keys and locks,
#: query-cache entries): about a hundred years. Longer ones overflow what the stores compute
#: from them (a ``datetime`` a key expires at, an expiry in milliseconds for Redis).
MAX_SECONDS = 100 * 365 * 86400

#: Settings holding a dotted path; ``arc_settings.import_setting(name)`` resolves them.
IMPORT_STRINGS = {
    "MEMBERSHIP_RESOLVER",
    "ELEVATION_CHECK",
    "EVENTS.TRANSPORT",
    "OUTBOX.FAILURE_POLICY",
}


def _merge(defaults: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(defaults)
    for key, value in user.items():
        if isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


class ArcSettings:
    """Attribute access to the merged ``ARC`` dict: ``arc_settings.MAX_PAGE_SIZE``."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] | None = None
        self._imports: dict[str, Any] = {}
        # changes of ``ARC`` so far: a dict merged from an ``ARC`` read before a change is
        # not stored after it (the stale settings would be served until the next change)
        self._generation = 0
        self._filling = threading.Lock()

    @property
    def user_settings(self) -> dict[str, Any]:
        return getattr(settings, "ARC", None) or {}

    @property
    def merged(self) -> dict[str, Any]:
        # read once: a change of ``ARC`` (another thread's) forgets it between two reads
        merged = self._cache
        if merged is None:
            # the generation before ``ARC``: a change after this read of it counts one more
            generation = self._generation
            user = self.user_settings
            merged = _merge(DEFAULTS, user if isinstance(user, dict) else {})
            with self._filling:  # a miss only, never the read above
                if self._generation == generation:
                    self._cache = merged
        return merged

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.merged[name]
        except KeyError:
            raise AttributeError(f"Invalid ARC setting: {name!r}") from None

    def import_setting(self, dotted_name: str) -> Any:
        """Resolve a dotted-path setting (e.g. ``"EVENTS.TRANSPORT"``) once and cache it.

        Values that are already callables/classes are returned unchanged, so tests may put
        objects straight into ``ARC``.
        """
        # one read of the memo, as of ``merged``: a change of ``ARC`` replaces it meanwhile
        imports = self._imports
        if dotted_name in imports:
            return imports[dotted_name]
        value: Any = self.merged
        for part in dotted_name.split("."):
            value = value[part]
        # told by its type: ``isinstance`` asks a plug's own ``__class__``, which may raise
        if issubclass(type(value), str):
            value = import_string(value)
        imports[dotted_name] = value
        return value

    def reload(self) -> None:
        with self._filling:
            self._generation += 1
            self._cache = None
            self._imports = {}
        for callback in list(_reload_callbacks):
            callback()


_reload_callbacks: list = []


def on_reload(callback):
    """Register ``callback`` to run whenever ``ARC`` changes (drops derived caches)."""
    _reload_callbacks.append(callback)
    return callback


arc_settings = ArcSettings()


def _reload_arc_settings(*, setting: str, **kwargs: Any) -> None:
    if setting == "ARC":
        arc_settings.reload()


setting_changed.connect(_reload_arc_settings)
