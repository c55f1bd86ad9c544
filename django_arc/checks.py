"""System checks: a bad ``ARC`` setting or resource definition is reported by
``manage.py check`` (and at ``runserver``/``migrate`` start-up), naming the resource and key,
instead of surfacing as a 500 at request time.

ids: arc.E001 unknown field in ``fields``/``read_only_fields``; E002 unknown filter field;
E003 unknown/unsuitable operator; E004 unknown sort field (or ``default_sort``); E005 unknown
or non-text search field; E006 bad ``lookup_field``; E007 unknown setting key; E008 bad setting
value; E009 bad ``field_permissions`` (or a read rule on a field rows are looked up by); E010
a permission value that cannot decide; E011 preset configuration; E012 an attribute django-arc
would never read; E013 a permission key nothing reads; E014 a bad ``idempotent`` or ``cache``
option; E015 a resource or action name whose event type is longer than the outbox's column
holds; E016 a primary key django-arc cannot serve (composite, or client-chosen with ``create``);
E017 a generic relation where it cannot be served (a ``GenericForeignKey`` or
``GenericRelation`` in the generated serializer's ``fields``, a ``GenericForeignKey`` in a
filter, sort or search path); E018 an ``@action``'s ``input`` that is no serializer class (an
instance: a 500 on every call) or declares a field named ``action`` (never filled); E019 an
``@action`` name that is a verb the resource writes under (``created``, ``deleted``, a
preset's ``restored``), declared twice, or no string; E020 a ``DEFAULT_THROTTLE_RATES`` rate
``ScopeRateThrottle`` (or a subclass) reads that its ``parse_rate`` cannot read (a 500 on every
throttled request) or that counts no positive number of seconds, or a serving subclass's
``ipv6_prefix`` no IPv6 network has (a 500 on every anonymous IPv6 request).

Warnings: arc.W001 the query cache is on without a django-redis alias; W002 the idempotency
``cache`` store without one; W003 that store's Redis may evict keys (``maxmemory-policy`` is
not ``noeviction``); W004 that policy could not be read; W005 the query cache's alias is a
django-redis cache whose client cannot be built; W006 ``DATABASE_ROUTERS`` send a resource's
rows to another database than ``OutboxEvent``; W007 they send a resource taking keys to
another database than ``IdempotencyRecord`` (the ``database`` store); W008 the outbox
purges delivered events (``DELIVERED_RETENTION_DAYS``) before keys end (``TTL_SECONDS``)
where a keyed request can run twice; W009 a resource's own ``filter_backends`` holds DRF's
``OrderingFilter``/``SearchFilter`` or django-filter's ``DjangoFilterBackend``, which sort,
search and filter outside the query language's allow-lists and field read rules; W010 a
resource site is mounted without ``ScopeMiddleware`` in ``MIDDLEWARE`` (an entry that is it, a
subclass, or a function factory or class whose code names it); W011 a renderer of DRF's
templates (the browsable API) answers resources and ``rest_framework`` is not an installed
app (every browser request a 500); W012 redis-py cannot be imported and the transport is a
factory whose code names a Redis transport (a guess: the transport itself, its subclass, an
instance or a ``partial`` of one is E008); W013 a dotted-path plug raised when the check read
it (its ``__class__``, ``__wrapped__``, signature), so it was not checked; W014 DRF's
``TemplateHTMLRenderer`` or ``StaticHTMLRenderer`` answers resources (a browser's request a
500, or the envelope's keys as the body); W015 a cached resource's declared ``queryset`` (or
default manager) holds ``RawSQL``/``extra()`` or reads a table no model is over, so its
answers are never stored.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import ipaddress
import numbers
import sys
import threading
import types
from typing import Any

from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils.module_loading import import_string

from .actions import ActionSpec, RouteSpec
from .fields import FieldPermission
from .generics import PERMISSION_KEYS
from .permissions import PERMISSION_KINDS, never_grants, permission_problem
from .query import (
    OPERATOR_ALIASES,
    OPERATORS,
    ORDERING_OPERATORS,
    TEXT_OPERATORS,
    HStoreField,
    _concrete,
    generic_relation_kind,
    model_attribute,
    path_multi_valued,
    primary_key_names,
    resolve_path,
)
from .querycache.invalidation import declared_queryset_reads
from .querycache.policy import OPTION_KEYS as CACHE_OPTION_KEYS
from .querycache.policy import policy_for
from .redis_alias import Alias, AliasUnusable, client, is_django_redis
from .settings import DEFAULTS, IMPORT_STRINGS, MAX_SECONDS, arc_settings

_TEXT = (models.CharField, models.TextField)
#: what ``gt``/``lt`` cannot compare: ``hstore`` has no ``<`` or ``>`` at all (its btree
#: order uses ``#<#``), so a bound was a 500, as was the keyset page after one sorted by it
_UNORDERED = (
    models.BooleanField,
    models.JSONField,
    models.UUIDField,
    *((HStoreField,) if HStoreField is not None else ()),
)
#: what a list cannot be sorted by: a keyset cursor compares with the last row's value
_UNSORTABLE = (models.JSONField, *((HStoreField,) if HStoreField is not None else ()))


def _err(msg: str, obj: Any, id_: str, hint: str | None = None) -> Error:
    return Error(msg, hint=hint, obj=obj, id=id_)


@register("django_arc")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    errors: list[Error | Warning] = []
    user = arc_settings.user_settings
    if not isinstance(user, dict):
        return [_err("settings.ARC must be a dict.", "ARC", "arc.E008")]
    for key, value in user.items():
        if key not in DEFAULTS:
            errors.append(
                _err(
                    f"Unknown ARC setting '{key}'.",
                    "ARC",
                    "arc.E007",
                    f"Known keys: {', '.join(sorted(DEFAULTS))}",
                )
            )
        elif isinstance(DEFAULTS[key], dict):
            if not isinstance(value, dict):
                errors.append(_err(f"ARC['{key}'] must be a dict.", "ARC", "arc.E008"))
                continue
            for sub in value:
                if sub not in DEFAULTS[key]:
                    errors.append(
                        _err(
                            f"Unknown ARC setting '{key}.{sub}'.",
                            "ARC",
                            "arc.E007",
                            f"Known keys: {', '.join(sorted(DEFAULTS[key]))}",
                        )
                    )
    merged = arc_settings.merged
    for key in ("DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE"):
        value = merged.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            errors.append(
                _err(f"ARC['{key}'] must be a positive integer, got {value!r}.", "ARC", "arc.E008")
            )
    if merged.get("ON_FIELD_WRITE_DENIED") not in ("reject", "strip"):
        errors.append(
            _err("ARC['ON_FIELD_WRITE_DENIED'] must be 'reject' or 'strip'.", "ARC", "arc.E008")
        )
    errors.extend(_check_feature_settings(merged))
    for dotted in sorted(IMPORT_STRINGS):
        value: Any = merged
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        target = value
        # told by its type: ``isinstance`` asks a plug's own ``__class__``, which may raise
        if issubclass(type(value), str):
            try:
                target = import_string(value)
            except Exception as exc:  # noqa: BLE001 - a module failing at import is as bad
                errors.append(
                    _err(
                        f"ARC['{dotted}'] = {value!r} cannot be imported: {exc}",
                        "ARC",
                        "arc.E008",
                    )
                )
                continue
        try:
            errors.extend(_plug_messages(dotted, target, value, merged))
        except Exception as exc:  # noqa: BLE001 - a check never raises: it says what it saw
            errors.append(
                Warning(
                    f"ARC['{dotted}'] = {_shown(value)} could not be read by the check "
                    f"({type(exc).__name__}: {_shown(exc, str)}), so it was not checked: "
                    "a call django-arc makes of it may fail at run time instead.",
                    hint="Make the plug a plain function or class (reading its attributes, "
                    "__class__ or __wrapped__, must not raise), or silence arc.W013 in "
                    "SILENCED_SYSTEM_CHECKS.",
                    obj="ARC",
                    id="arc.W013",
                )
            )
    return errors


def _shown(value: Any, show: Any = repr) -> str:
    """``repr(value)`` (or ``str``) for a message, or the name of its type when that raises."""
    try:
        return show(value)
    except Exception:  # noqa: BLE001 - a message must still be written
        return f"<{type(value).__module__}.{type(value).__qualname__} object>"


def _plug_messages(
    dotted: str, target: Any, value: Any, merged: dict[str, Any]
) -> list[Error | Warning]:
    """arc.E008 (and the transport's arc.W012) for one dotted-path setting's object."""
    problem = _plug_problem(dotted, target)
    if problem is None and dotted == "EVENTS.TRANSPORT":
        problem = _transport_options_problem(target, (merged.get("EVENTS") or {}))
        if problem is None:
            return _transport_dependency_messages(target, value)
    if problem:
        return [_err(f"ARC['{dotted}'] = {_shown(value)} {problem}", "ARC", "arc.E008")]
    return []


#: the arguments django-arc calls each dotted-path setting with (``None`` allowed when listed)
_PLUG_CALLS: dict[str, tuple[tuple[str, ...], bool]] = {
    "MEMBERSHIP_RESOLVER": (("user", "org_id"), True),
    "ELEVATION_CHECK": (("user",), False),
    "OUTBOX.FAILURE_POLICY": ((), False),
    "EVENTS.TRANSPORT": ((), False),
}


def _transport_options_problem(factory: Any, events: dict[str, Any]) -> str | None:
    """``TRANSPORT(**OPTIONS)`` must be a call the transport accepts: a misspelt option
    (``"URL"`` for ``"url"``) is otherwise a ``TypeError`` at the first publish, which the
    relay dies of and the outbox-off publish only logs, losing the event. No ``OPTIONS``
    (unset, ``None``, empty) is ``TRANSPORT()`` (``build_transport``), bound like any: a
    transport that needs its ``url`` fails it."""
    options = events.get("OPTIONS") or {}
    # the value is not quoted: OPTIONS hold the transport's url, password and all
    # ("redis://:secret@host"), and check's messages go to deploy and CI logs
    if not isinstance(options, dict):
        return (
            f"cannot be given OPTIONS of type {type(options).__name__}: they must be a dict "
            "of keyword arguments."
        )
    if not all(isinstance(k, str) for k in options):
        keys = sorted({type(k).__name__ for k in options if not isinstance(k, str)})
        return (
            f"cannot be given OPTIONS with keys of type {', '.join(keys)}: they must be a "
            "dict of keyword arguments."
        )
    if not callable(factory):
        return None  # a ready instance ignores OPTIONS
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(**options)
    except TypeError as exc:
        return f"does not accept OPTIONS {sorted(options)}: {exc} (its signature is {signature})."
    return None


def _transport_dependency_messages(factory: Any, value: Any) -> list[Error | Warning]:
    """django-arc's Redis transports import redis-py (the ``redis`` extra) when they are
    built and consume: without it, the first publish raises ``ModuleNotFoundError``, which
    the relay stops at and the outbox-off publish only logs, losing the event.

    The transport is seen as the relay builds it. A class that is one (a subclass), a ready
    instance, or a ``functools.partial`` of either (unwrapped) certainly needs redis-py:
    arc.E008. A factory function, or a class that is none but whose code names one
    (:func:`_names_class`, as arc.W010 reads a middleware: never called, so the check
    neither builds a transport nor connects to a broker), is a guess from its code, which
    may name the transport in a branch it never takes (``if settings.DEBUG: return
    MemoryTransport()``): arc.W012, a warning, as W010's reading of a middleware is. A
    guess must not fail ``manage.py check`` (and every ``migrate`` and ``runserver``)."""
    from .events.transports import RedisPubSubTransport, RedisStreamsTransport

    redis_transports = (RedisStreamsTransport, RedisPubSubTransport)
    target = factory
    while issubclass(type(target), functools.partial):
        target = target.func
    # an instance told by its type, never ``isinstance`` (which asks its ``__class__``)
    instance = issubclass(type(target), redis_transports)
    if issubclass(type(target), type):
        certain = issubclass(target, redis_transports)
        uses_redis = certain or _names_class(target, redis_transports)
    elif callable(target) and not instance:
        certain = False
        uses_redis = _names_class(target, redis_transports)  # a factory function
    else:
        certain = uses_redis = instance  # a ready instance
    if not uses_redis:
        return []
    try:
        import redis  # noqa: F401
    except ImportError as exc:
        missing = f"redis-py, which cannot be imported ({exc}): pip install 'django-arc[redis]'."
        if certain:
            return [_err(f"ARC['EVENTS.TRANSPORT'] = {value!r} needs {missing}", "ARC", "arc.E008")]
        return [
            Warning(
                f"ARC['EVENTS.TRANSPORT'] = {value!r} names one of django-arc's Redis "
                f"transports in its code, which needs {missing}",
                hint="If the factory never builds a Redis transport here (the name is in a "
                "branch it does not take), silence arc.W012 in SILENCED_SYSTEM_CHECKS.",
                obj="ARC",
                id="arc.W012",
            )
        ]
    return []


def _plug_problem(dotted: str, target: Any) -> str | None:
    """Why the object a dotted-path setting names cannot do its job, or ``None``.

    Without this a resolver taking the wrong arguments raises ``TypeError`` at every request,
    which the scope reads as "not a member": every member refused, silently; a non-callable
    ``ELEVATION_CHECK`` or transport fails only at the first request that needs it.
    """
    params, none_ok = _PLUG_CALLS[dotted]
    if target is None:
        return None if none_ok else "must be set (a dotted path or a callable), not None."
    if dotted == "EVENTS.TRANSPORT" and not callable(target):
        # a ready instance is accepted: it must be a transport
        methods = ("publish", "publish_many", "subscribe", "dead_letter", "close")
        missing = [name for name in methods if not callable(getattr(target, name, None))]
        return f"is neither a class/factory nor a transport (lacks {missing})." if missing else None
    if not callable(target):
        return f"names {target!r}, which is not callable."
    if not params:
        return None
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None  # no introspectable signature: judged when called
    try:
        signature.bind(*params)
    except TypeError:
        return f"cannot be called as ({', '.join(params)}): its signature is {signature}."
    return None


#: how the lifetime checks word their bound
_AT_MOST = f"at most {MAX_SECONDS} (about a hundred years)"
_LIFETIME = f"a positive number, {_AT_MOST}"


def _seconds(value: Any, strict: bool = False) -> bool:
    """A lifetime: a number (no bool) ≥ 0 (> 0 when ``strict``) and at most
    :data:`~django_arc.settings.MAX_SECONDS`, which rules out infinity and NaN too: past it
    the stores cannot compute when it ends (a 500 on every keyed request, no cached entry)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    return (value > 0 if strict else value >= 0) and value <= MAX_SECONDS


def _check_feature_settings(merged: dict[str, Any]) -> list[Error]:
    """``ARC["IDEMPOTENCY"]``, ``ARC["CACHE"]`` and the outbox's retention values (their keys
    are checked above)."""
    errors: list[Error] = []
    idem, cache = merged.get("IDEMPOTENCY"), merged.get("CACHE")
    if isinstance(idem, dict):
        problems = {
            "ENABLED": isinstance(idem.get("ENABLED"), bool) or "True or False",
            "STORE": idem.get("STORE") in ("database", "cache") or "'database' or 'cache'",
            "TTL_SECONDS": _seconds(idem.get("TTL_SECONDS"), strict=True) or _LIFETIME,
            "LOCK_SECONDS": _seconds(idem.get("LOCK_SECONDS"), strict=True) or _LIFETIME,
            "NAMESPACE": isinstance(idem.get("NAMESPACE"), str) or "a string",
            "ALIAS": isinstance(idem.get("ALIAS"), str) or "a cache alias",
        }
        errors += [
            _err(f"ARC['IDEMPOTENCY']['{key}'] must be {want}.", "ARC", "arc.E008")
            for key, want in problems.items()
            if want is not True
        ]
    if isinstance(cache, dict):
        problems = {
            "ENABLED": isinstance(cache.get("ENABLED"), bool) or "True or False",
            "ALIAS": isinstance(cache.get("ALIAS"), str) or "a cache alias",
            "STALE_SECONDS": _seconds(cache.get("STALE_SECONDS")) or f"a number ≥ 0, {_AT_MOST}",
            "GC_SECONDS": _seconds(cache.get("GC_SECONDS"), strict=True) or _LIFETIME,
        }
        errors += [
            _err(f"ARC['CACHE']['{key}'] must be {want}.", "ARC", "arc.E008")
            for key, want in problems.items()
            if want is not True
        ]
    outbox = merged.get("OUTBOX")
    if isinstance(outbox, dict):
        # the purge's age (the admin action, the purge_outbox task, arc_purge_outbox): a
        # value they cannot read failed every purge, so delivered rows were never deleted.
        # Judged by the function they read it with: a value passed here is one they take
        from .outbox.relay import retention_age

        try:
            retention_age(
                outbox.get("DELIVERED_RETENTION_DAYS", 7),
                "ARC['OUTBOX']['DELIVERED_RETENTION_DAYS']",
            )
        except ValueError as exc:
            errors.append(_err(str(exc), "ARC", "arc.E008"))
        errors += _outbox_relay_problems(outbox)
    return errors


def _whole(value: Any, low: int, high: int | None = None) -> bool:
    """An ``int`` (no bool, no float, no string) from ``low`` to ``high``."""
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    return low <= value and (high is None or value <= high)


def _outbox_relay_problems(outbox: dict[str, Any]) -> list[Error]:
    """The relay's settings (``get_outbox()``: ``arc_relay``, ``relay_outbox``, the admin's
    "Relay now"). Unchecked, a ``BATCH_SIZE`` of 0 or less claimed nothing, for ever and
    silently; a ``LEASE_SECONDS`` of 0 or less let another worker take a batch over while it
    was published (published twice); a string, NaN or infinity in either, or a
    ``MAX_ATTEMPTS`` below 1, was a ``ValueError`` at every start and every beat tick."""
    from .outbox.relay import MAX_BATCH_SIZE

    problems = {
        "BATCH_SIZE": _whole(outbox.get("BATCH_SIZE"), 1, MAX_BATCH_SIZE)
        or f"an integer from 1 to {MAX_BATCH_SIZE} (rows a relay batch claims)",
        "LEASE_SECONDS": _seconds(outbox.get("LEASE_SECONDS"), strict=True)
        or f"a positive number, {_AT_MOST} (seconds a relay worker owns a batch)",
        "MAX_ATTEMPTS": _whole(outbox.get("MAX_ATTEMPTS"), 1)
        or "an integer ≥ 1 (publishes before an event goes dead)",
    }
    return [
        _err(f"ARC['OUTBOX']['{key}'] must be {want}, got {outbox.get(key)!r}.", "ARC", "arc.E008")
        for key, want in problems.items()
        if want is not True
    ]


def _all_resources() -> list[Any]:
    from .sites import _all_sites

    return [resource for site in _all_sites for resource in site.resources]


@register("django_arc")
def check_redis_features(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """arc.W001–W005: the query cache and the idempotency ``cache`` store need a django-redis
    alias whose client can be built, and idempotency keys in Redis must never be evicted."""

    warnings: list[Warning] = []
    cache, idem = arc_settings.CACHE, arc_settings.IDEMPOTENCY
    if not (isinstance(cache, dict) and isinstance(idem, dict)):
        return warnings  # arc.E008 already
    resources = _all_resources()
    cached = [r for r in resources if _safe(policy_for, r) is not None]
    alias = cache.get("ALIAS")
    if cached and not (isinstance(alias, str) and is_django_redis(alias)):
        names = _named({str(r.name) for r in cached})
        warnings.append(
            Warning(
                f"The query cache is on ({names}) but ARC['CACHE']['ALIAS'] = {alias!r} is "
                "not a django-redis cache: nothing will be cached.",
                hint="Add a django_redis.cache.RedisCache alias to CACHES and name it in "
                "ARC['CACHE']['ALIAS'].",
                obj="ARC",
                id="arc.W001",
            )
        )
    elif cached:
        problem = _unusable(alias)
        if problem is not None:
            warnings.append(
                Warning(
                    f"The query cache is on but its alias cannot be used: {problem}: every "
                    "cacheable read is answered uncached.",
                    hint="Fix CACHES[ARC['CACHE']['ALIAS']] (its LOCATION, CLIENT_CLASS and "
                    "OPTIONS); the query cache needs one Redis server (or a Sentinel "
                    "primary), not django-redis's ShardClient.",
                    obj="ARC",
                    id="arc.W005",
                )
            )
    enabled = idem.get("ENABLED") is True or any(r.idempotent for r in resources)
    if not (enabled and idem.get("STORE") == "cache"):
        return warnings
    alias = idem.get("ALIAS")
    if not (isinstance(alias, str) and is_django_redis(alias)):
        warnings.append(
            Warning(
                f"ARC['IDEMPOTENCY']['STORE'] is 'cache' but ARC['IDEMPOTENCY']['ALIAS'] = "
                f"{alias!r} is not a django-redis cache: requests with an Idempotency-Key "
                "will be refused with 503.",
                hint="Add a django_redis.cache.RedisCache alias to CACHES, or use STORE "
                "'database'.",
                obj="ARC",
                id="arc.W002",
            )
        )
        return warnings
    return warnings + _check_eviction_policy(alias)


@register("django_arc", Tags.urls)
def check_scope_middleware(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """arc.W010: a resource site is mounted in ``ROOT_URLCONF`` and no ``MIDDLEWARE`` entry
    is ``ScopeMiddleware`` (a subclass, or a middleware wrapping it:
    :func:`_names_class`): a path under the site's prefix that no route
    matches gets the project's 404 page rather than the envelope's."""
    from django.conf import settings

    from .middleware import ScopeMiddleware, mounts_a_site

    for dotted in settings.MIDDLEWARE or ():
        try:
            middleware = import_string(dotted)
        except Exception:  # not found, or refusing to import: the server's start-up says so
            continue
        if _names_class(middleware, ScopeMiddleware):
            return []
    try:
        mounted = mounts_a_site()
    except Exception:  # a URLconf that cannot be imported: Django's urls check reports it
        return []
    if not mounted:
        return []
    return [
        Warning(
            "A resource site is mounted in ROOT_URLCONF but "
            "django_arc.middleware.ScopeMiddleware is not in MIDDLEWARE: a path under the "
            "site's prefix that no route matches gets the project's 404 page, not the error "
            "envelope's 404, and a session caller's scope is judged only once a view runs.",
            hint="Add 'django_arc.middleware.ScopeMiddleware' to MIDDLEWARE, after "
            "AuthenticationMiddleware.",
            obj="MIDDLEWARE",
            id="arc.W010",
        )
    ]


def _names_class(obj: Any, classes: type | tuple[type, ...]) -> bool:
    """Whether ``obj`` is one of ``classes`` (a subclass), or code that names one: a
    function (a factory: a middleware's, Django's other shape; a transport's) or a class
    whose ``__init__`` or ``__call__`` names it — a global, a module's attribute
    (``middleware.ScopeMiddleware``), a cell of its closure (a helper's factory,
    ``wrap(ScopeMiddleware)``), nested functions and lambdas included. arc.W010 reads a
    ``MIDDLEWARE`` entry so, arc.E008 a transport factory. Read, never called: the check
    stays without side effects (no transport built, no broker reached), and cheap. Values
    are told by their type, never ``isinstance`` (a lazy global's ``__class__`` builds it:
    ``SimpleLazyObject``) nor a module's ``__getattr__``; an object that cannot be read so
    is "not found", never a ``manage.py check`` that raises."""
    try:
        return _reads_class_names(obj, classes)
    except Exception:  # noqa: BLE001 - an object made to be used, not inspected: not found
        return False


def _reads_class_names(middleware: Any, classes: type | tuple[type, ...]) -> bool:
    def is_class(value: Any) -> bool:
        return issubclass(type(value), type)

    def is_scope(value: Any) -> bool:
        return is_class(value) and issubclass(value, classes)

    def held(cell: Any) -> Any:
        try:
            return cell.cell_contents
        except ValueError:  # an empty cell
            return None

    def own(classes_: tuple[type, ...], name: str) -> list[Any]:
        # the entry Python calls (the first class defining it), and a base's after it only
        # while the one before calls ``super()``: a base's code that its subclass replaces
        # never runs (a middleware replacing the base's __init__/__call__ that wrap
        # ScopeMiddleware does not run it). The builtins' left out; a staticmethod
        # (``__new__``) or classmethod read as its function
        found = []
        for at, klass in enumerate(classes_):
            if klass in (object, type):
                continue
            entry = klass.__dict__.get(name)
            if issubclass(type(entry), (staticmethod, classmethod)):
                entry = entry.__func__
            if entry is None:
                continue
            found.append(entry)
            codes = [getattr(f, "__code__", None) for f in unwrapped(entry)]
            codes = [c for c in codes if issubclass(type(c), types.CodeType)]
            if not codes:
                continue  # a code-less callable: the bases read on
            # a decorated method (``functools.wraps``) calls ``super()`` in the function
            # it wraps, not in the wrapper: the names of every function of the chain
            used = set().union(*map(code_names, codes))
            # ``super()``, or a base called by its name (``Base.__init__(self, ...)``)
            if "super" not in used and not any(k.__name__ in used for k in classes_[at + 1 :]):
                break  # replaces the bases' entries
        return found

    def unwrapped(entry: Any) -> list[Any]:
        # ``entry`` and what it wraps (``__wrapped__``, as ``inspect.unwrap`` follows it),
        # read from the functions' own ``__dict__`` only: nothing a plug computes runs
        chain = [entry]
        while len(chain) < 100 and issubclass(type(chain[-1]), types.FunctionType):
            inner = chain[-1].__dict__.get("__wrapped__")
            if inner is None or any(inner is f for f in chain):
                break
            chain.append(inner)
        return chain

    def code_names(code: types.CodeType) -> set[str]:
        names: set[str] = set()
        pending = [code]
        while pending:
            current = pending.pop()
            names.update(current.co_names)
            pending.extend(c for c in current.co_consts if inspect.iscode(c))
        return names

    if is_scope(middleware):
        return True
    if is_class(middleware):
        # what building the class runs (``__new__``, ``__init__``, a metaclass's
        # ``__call__``) and what calling an instance runs (a middleware's ``__call__``)
        mro = type.__dict__["__mro__"].__get__(middleware)
        functions = [f for name in ("__new__", "__init__", "__call__") for f in own(mro, name)]
        functions += own(type(middleware).__mro__, "__call__")
    elif issubclass(type(middleware), (types.FunctionType, types.MethodType)):
        functions = [middleware]
    else:
        # a callable instance: its class's ``__call__`` is its code (and a function-like
        # object, a ``functools.wraps`` wrapper, is unwrapped below)
        functions = [middleware, *own(type(middleware).__mro__, "__call__")]
    for function in functions:
        try:
            function = inspect.unwrap(function) if callable(function) else function
        except ValueError:  # a cycle of __wrapped__
            continue
        code = getattr(function, "__code__", None)
        if not issubclass(type(code), types.CodeType):
            continue
        if any(is_scope(held(cell)) for cell in getattr(function, "__closure__", None) or ()):
            return True
        names = code_names(code)
        namespace = getattr(function, "__globals__", None) or {}
        for name in names:
            # a global, or a module it imports (``import_name`` holds its dotted name)
            value = namespace.get(name, sys.modules.get(name))
            if is_scope(value):
                return True
            if issubclass(type(value), types.ModuleType) and any(
                is_scope(value.__dict__.get(n)) for n in names
            ):
                return True
    return False


@register("django_arc")
def check_databases(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """arc.W006, arc.W007: a write commits with its event (the outbox) in one transaction,
    and a keyed write with its stored answer (the ``database`` idempotency store), only on
    one database. A router sending a resource's model to another database than
    ``OutboxEvent`` or ``IdempotencyRecord`` splits them into two commits, which nothing
    else reports (docs/outbox.md, docs/idempotency.md)."""
    from django.db import router

    from .idempotency.execution import enabled_for
    from .idempotency.models import IdempotencyRecord
    from .outbox.models import OutboxEvent

    events, idem = arc_settings.EVENTS, arc_settings.IDEMPOTENCY
    outbox = not isinstance(events, dict) or events.get("OUTBOX", True)
    database_store = isinstance(idem, dict) and idem.get("STORE") != "cache"
    events_db = _safe(router.db_for_write, OutboxEvent) if outbox else None
    records_db = _safe(router.db_for_write, IdempotencyRecord) if database_store else None
    split: dict[tuple[str, str, str], set[str]] = {}
    for resource in _all_resources():
        rows = _safe(router.db_for_write, resource.model)
        if rows is None:
            continue
        if events_db is not None and events_db != rows:
            split.setdefault(("arc.W006", rows, events_db), set()).add(str(resource.name))
        if records_db not in (None, rows) and _safe(enabled_for, resource):
            split.setdefault(("arc.W007", rows, records_db), set()).add(str(resource.name))
    warnings = []
    for (id_, rows, other), names in sorted(split.items()):
        listed = ", ".join(sorted(names))
        if id_ == "arc.W006":
            message = (
                f"The rows of {listed} are written to database {rows!r} and their events to "
                f"{other!r} (OutboxEvent's router): a write and its event are two commits, so "
                "a crash or a failed commit between them leaves a row without its event."
            )
            hint = "Route django_arc's OutboxEvent to the database of these models."
        else:
            message = (
                f"The rows of {listed} are written to database {rows!r} and their "
                f"idempotency records to {other!r} (IdempotencyRecord's router): a keyed "
                "write commits before its answer is stored, so a crash in between lets the "
                "retry write again."
            )
            hint = (
                "Route django_arc's IdempotencyRecord to the database of these models "
                "(docs/idempotency.md, 'Stores')."
            )
        warnings.append(Warning(message, hint=hint, obj="DATABASE_ROUTERS", id=id_))
    return warnings


@register("django_arc")
def check_outbox_retention(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """arc.W008: the outbox purges a delivered event before its idempotency key's
    ``TTL_SECONDS`` are over, where a keyed request can run again within them."""
    events, outbox, idem = arc_settings.EVENTS, arc_settings.OUTBOX, arc_settings.IDEMPOTENCY
    if isinstance(events, dict) and not events.get("OUTBOX", True):
        return []  # no outbox, no dedupe to cut short
    if not (isinstance(outbox, dict) and isinstance(idem, dict)):
        return []  # arc.E008 already
    return _check_outbox_retention(outbox.get("DELIVERED_RETENTION_DAYS", 7), idem)


def _check_outbox_retention(days: Any, idem: dict[str, Any]) -> list[Warning]:
    """The outbox takes an event whose key it holds for a repeat (docs/outbox.md), for
    ``TTL_SECONDS``, so that a keyed update or delete that runs twice stores its event once.
    Purged sooner, the first run's row is gone, and a second run's event is stored and
    delivered again. A keyed request runs twice within the TTL only when its answer can be
    lost after its writes committed: on the ``cache`` store (a crash before the answer is
    stored, Redis failing or forgetting it, a request outliving its lock), and on the
    ``database`` store only for a resource whose rows a router sends elsewhere than its
    records (arc.W007); there the answer commits with the write, and a retry within the TTL
    is always a replay, however soon the outbox forgets."""
    from django.db import router

    from .idempotency.execution import enabled_for
    from .idempotency.models import IdempotencyRecord

    ttl = idem.get("TTL_SECONDS")
    if not (isinstance(days, numbers.Number) and not isinstance(days, bool)):
        return []
    try:
        days_in_seconds = float(days) * 86400  # a Decimal too, as the purges read it
    except (TypeError, ValueError, OverflowError):  # OverflowError: 10**400, as retention_age
        return []  # arc.E008
    if not _seconds(ttl, strict=True) or days_in_seconds >= ttl:
        return []  # a bad TTL is arc.E008's
    store = idem.get("STORE")
    if store == "cache":
        records_db = None
    elif store == "database":
        records_db = _safe(router.db_for_write, IdempotencyRecord)
        if records_db is None:
            return []
    else:
        return []  # arc.E008
    names = set()
    for resource in _all_resources():
        if not _safe(enabled_for, resource):
            continue
        if records_db is not None:
            rows = _safe(router.db_for_write, resource.model)
            if rows in (None, records_db):
                continue
        names.add(str(resource.name))
    if not names:
        return []
    named = _named(names)
    return [
        Warning(
            f"ARC['OUTBOX']['DELIVERED_RETENTION_DAYS'] = {days!r} purges delivered events "
            f"before ARC['IDEMPOTENCY']['TTL_SECONDS'] = {ttl!r} ({ttl / 86400:g} days) are "
            f"over: a keyed update or delete of {named} that runs again within them (its "
            f"answer lost after its write committed, on the {store!r} store) stores and "
            "delivers its event a second time, the first run's row being gone.",
            hint=f"Keep delivered events at least as long as keys: DELIVERED_RETENTION_DAYS "
            f">= {ttl / 86400:g}, or a shorter TTL_SECONDS (and no shorter days= on the "
            "django_arc.purge_outbox task); see docs/idempotency.md, 'Events'.",
            obj="ARC",
            id="arc.W008",
        )
    ]


def _named(names: set[str]) -> str:
    """Resource names for a warning: the first five in order, then how many more, so a
    project of many resources reads a line, not a page, and never takes five for all."""
    listed = sorted(names)
    more = f" and {len(listed) - 5} more" if len(listed) > 5 else ""
    return ", ".join(listed[:5]) + more


def _unusable(alias: str) -> str | None:
    """Why ``alias``'s client cannot be built, or ``None``. Building it sends nothing to
    Redis: a server that is down is an outage to ride out, not a setting to fix."""
    try:
        Alias(alias).client()
    except AliasUnusable as exc:
        return str(exc)
    return None


def _safe(function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except Exception:  # noqa: BLE001 - a bad option is arc.E014's to report
        return None


#: How long ``manage.py check`` waits for the idempotency store's Redis to say its
#: ``maxmemory-policy``. The alias's own timeouts may be long, or none at all (redis-py 5 waits
#: forever by default), and a check must never hang a deploy on a Redis that does not answer.
POLICY_TIMEOUT_SECONDS = 3.0

#: What a server refusing ``CONFIG GET`` answers: an ACL user without ``+config`` (Upstash,
#: most managed plans) or a server with ``CONFIG`` renamed away (ElastiCache, MemoryStore).
_CONFIG_REFUSED = ("no permissions", "noperm", "unknown command")


def _read_eviction_policy(alias: str) -> Any:
    return client(alias).config_get("maxmemory-policy").get("maxmemory-policy")


def _eviction_policy(alias: str) -> tuple[Any, BaseException | None]:
    """The policy of ``alias``'s server, or the exception that stopped us reading it; read on
    a thread of its own so that a server that never answers costs
    :data:`POLICY_TIMEOUT_SECONDS`, whatever timeouts (or none) the alias configures.

    Anything the read raises is caught, not only Redis's errors: a client that cannot be
    built is :class:`~django_arc.redis_alias.AliasUnusable`, and a project's client class or
    a server answering ``CONFIG GET`` oddly may raise anything else; each is "could not
    verify"."""
    outcome: dict[str, Any] = {}

    def read() -> None:
        try:
            outcome["policy"] = _read_eviction_policy(alias)
        except Exception as exc:  # noqa: BLE001 - any of them is "could not verify"
            outcome["error"] = exc

    thread = threading.Thread(target=read, name="arc-check-maxmemory-policy", daemon=True)
    thread.start()
    thread.join(POLICY_TIMEOUT_SECONDS)
    if thread.is_alive():
        return None, TimeoutError(f"no answer within {POLICY_TIMEOUT_SECONDS:g} s")
    return outcome.get("policy"), outcome.get("error")


def _check_eviction_policy(alias: str) -> list[Warning]:
    """An evicted idempotency key lets a retry run twice: the store's Redis must run with
    ``maxmemory-policy noeviction``. (The query cache does not care: evicted entries and
    versions are misses.) When the policy cannot be read the warning says why and that it
    was not verified, never failing the check."""
    policy, error = _eviction_policy(alias)
    if isinstance(policy, bytes):
        policy = policy.decode(errors="replace")
    if error is None and not isinstance(policy, str):
        error = ValueError(f"CONFIG GET maxmemory-policy answered {policy!r}")
    if error is not None:
        refused = any(text in str(error).lower() for text in _CONFIG_REFUSED)
        hint = (
            "This server refuses CONFIG GET (a managed Redis, or an ACL user without "
            "+config): check maxmemory-policy in the provider's settings (an ElastiCache "
            "parameter group, an Upstash database's eviction option) and make it noeviction. "
            if refused
            else ""
        ) + "An evicted key lets a retried request run twice; silence arc.W004 once verified."
        return [
            Warning(
                f"Could not verify that the idempotency store's Redis (CACHES[{alias!r}]) "
                f"runs with maxmemory-policy noeviction: {type(error).__name__}: {error}",
                hint=hint,
                obj="ARC",
                id="arc.W004",
            )
        ]
    if policy != "noeviction":
        return [
            Warning(
                f"The idempotency store's Redis (CACHES[{alias!r}]) runs with "
                f"maxmemory-policy {policy!r}: under memory pressure it may evict "
                "idempotency keys, and a retried request then runs twice.",
                hint="Set maxmemory-policy noeviction on that server (or give idempotency "
                "a Redis of its own, or use STORE 'database').",
                obj="ARC",
                id="arc.W003",
            )
        ]
    return []


@register("django_arc")
def check_rest_framework_installed(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """arc.W011: a renderer that renders DRF's templates (the browsable API, the admin
    renderer) answers the generated views and ``rest_framework`` is not an installed app:
    its templates are not found, and every request from a browser answers 500
    (``TemplateDoesNotExist: rest_framework/api.html``). The renderers are those of every
    ViewSet serving a resource (:func:`_served_viewsets`) as DRF resolves them: the defaults
    count only where a ViewSet uses them."""
    from django.apps import apps
    from rest_framework.renderers import AdminRenderer, BrowsableAPIRenderer

    from .sites import _all_sites

    if apps.is_installed("rest_framework"):
        return []
    renderers = [r for _, rs in _served_renderers(_all_sites) for r in rs]
    templated = sorted(
        {
            f"{renderer.__module__}.{renderer.__qualname__}"
            for renderer in renderers
            if isinstance(renderer, type)
            and issubclass(renderer, BrowsableAPIRenderer | AdminRenderer)
        }
    )
    if not templated:
        return []
    return [
        Warning(
            f"{', '.join(templated)} renders DRF's templates, and 'rest_framework' is not in "
            "INSTALLED_APPS: every request from a browser to a resource answers 500 "
            "(TemplateDoesNotExist: rest_framework/api.html).",
            hint="Add 'rest_framework' to INSTALLED_APPS.",
            obj="INSTALLED_APPS",
            id="arc.W011",
        )
    ]


def _served_renderers(sites: list[Any]) -> list[tuple[type, list[Any]]]:
    """Each ViewSet serving a resource (:func:`_served_viewsets`) with the renderer classes
    DRF's ``get_renderers()`` reads for it: the ViewSet's own (a resource's
    ``renderer_classes``, a ViewSet subclass's), else ``DEFAULT_RENDERER_CLASSES`` as
    settings hold them now (APIView's attribute copied them at import); and those a DRF
    ``@action`` of a subclass gives its route."""
    from rest_framework.settings import api_settings
    from rest_framework.views import APIView

    served = []
    for viewset in _served_viewsets(sites):
        renderers: list[Any] = []
        owner = next((c for c in viewset.__mro__ if "renderer_classes" in c.__dict__), None)
        if owner is None or owner is APIView:
            renderers.extend(api_settings.DEFAULT_RENDERER_CLASSES)
        else:
            renderers.extend(viewset.renderer_classes or ())
        for extra in _safe(viewset.get_extra_actions) or ():
            renderers.extend((getattr(extra, "kwargs", None) or {}).get("renderer_classes") or ())
        served.append((viewset, renderers))
    return served


@register("django_arc")
def check_renderers_of_views_own_html(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """arc.W014: DRF's ``TemplateHTMLRenderer`` (renders the template a view names) or
    ``StaticHTMLRenderer`` (writes the string a view returns) answers the generated views,
    which name no template and return the envelope: a request it is negotiated for
    (``Accept: text/html`` before the browsable API, ``?format=html``) answered 500
    (``ImproperlyConfigured``: no ``template_name``) or the envelope's keys run together
    (``successdocspage...``). A ViewSet subclass naming a ``template_name`` (or defining
    ``get_template_names``), and a renderer subclass naming its own template or rendering
    its own way (:func:`_renders_no_own_html`), are the project's to render."""
    from .sites import _all_sites

    named = set()
    for viewset, renderers in _served_renderers(_all_sites):
        if getattr(viewset, "template_name", None) or hasattr(viewset, "get_template_names"):
            continue  # DRF's TemplateHTMLRenderer renders what the ViewSet names
        named |= {
            f"{renderer.__module__}.{renderer.__qualname__}"
            for renderer in renderers
            if isinstance(renderer, type) and _renders_no_own_html(renderer)
        }
    if not named:
        return []
    return [
        Warning(
            f"{', '.join(sorted(named))} answers resources, which name no template and return "
            "the envelope: a request it is negotiated for (Accept: text/html, ?format=html) "
            "answers 500 (no template_name) or the envelope's keys as its body.",
            hint="Set renderer_classes on your resources (or a ViewSet subclass) without it, "
            "or keep it on your own views' renderer_classes rather than "
            "DEFAULT_RENDERER_CLASSES.",
            obj="DEFAULT_RENDERER_CLASSES",
            id="arc.W014",
        )
    ]


@register("django_arc")
def check_throttle_rates(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """arc.E020: a rate ``ScopeRateThrottle`` reads (``arc_service``, ``arc_member``,
    ``arc_anon``, or a subclass's own names) that its ``parse_rate`` cannot read —
    ``"100/fortnight"``, ``"1.5/min"``, ``"1/10s"``, an integer — raised on every request
    of that bucket: a 500 for every caller of every throttled route, found by the first
    request. Only the classes that serve (``DEFAULT_THROTTLE_CLASSES``, a resource's
    ``throttle_classes``, a routed DRF view's own) are asked, each with its own ``parse_rate``, so a subclass
    reading ``"1/10s"`` its own way is not refused; DRF's other throttles and rate names
    are DRF's."""
    from rest_framework.settings import api_settings
    from rest_framework.views import APIView

    from .sites import _all_sites
    from .throttling import ScopeRateThrottle

    classes: dict[type, None] = {}
    for klass in _safe(lambda: list(api_settings.DEFAULT_THROTTLE_CLASSES)) or ():
        classes[klass] = None
    served = [(viewset, {}) for viewset in _served_viewsets(_all_sites)]
    for view, initkwargs in [*served, *_routed_drf_views()]:
        own = initkwargs.get("throttle_classes", getattr(view, "throttle_classes", None))
        if own is APIView.throttle_classes:
            continue  # none of its own: it reads DEFAULT_THROTTLE_CLASSES, as above
        for klass in own or ():
            classes[klass] = None
    rates = _safe(lambda: dict(api_settings.DEFAULT_THROTTLE_RATES)) or {}
    errors: list[Error] = []
    seen: set[tuple[type, str]] = set()
    for klass in classes:
        if not (isinstance(klass, type) and issubclass(klass, ScopeRateThrottle)):
            continue
        if klass.anon_scope in rates and rates[klass.anon_scope] is not None:
            prefix = getattr(klass, "ipv6_prefix", None)
            try:
                ipaddress.ip_network(f"::/{prefix}")
            except ValueError:
                errors.append(
                    _err(
                        f"{klass.__module__}.{klass.__qualname__}.ipv6_prefix = {prefix!r} "
                        "is no IPv6 prefix length; every anonymous IPv6 request would "
                        "answer 500.",
                        "REST_FRAMEWORK",
                        "arc.E020",
                        "Set ipv6_prefix to a whole number from 0 to 128 (64: one host).",
                    )
                )
        for name in (klass.service_scope, klass.member_scope, klass.anon_scope):
            rate = rates.get(name)
            if rate is None or (klass, name) in seen:
                continue
            seen.add((klass, name))
            problem = _rate_problem(klass, rate)
            if problem is not None:
                errors.append(
                    _err(
                        f"DEFAULT_THROTTLE_RATES['{name}'] = {rate!r} cannot be read by "
                        f"{klass.__module__}.{klass.__qualname__}: {problem}; every request "
                        "of that bucket would answer 500.",
                        "REST_FRAMEWORK",
                        "arc.E020",
                        "Write '<requests>/<period>' with a whole number of requests, 0 or "
                        'more, and a period of s, m, h or d ("100/min"), or None for no '
                        "limit.",
                    )
                )
    return errors


def _rate_problem(klass: type, rate: Any) -> str | None:
    """What is wrong with ``rate`` as ``klass`` reads it, or ``None``."""
    try:
        count, seconds = klass.parse_rate(klass(), rate)
    except Exception as exc:  # noqa: BLE001 - what the request would raise, said here
        return f"{type(exc).__name__}: {_shown(exc, str)}"
    if count is None:
        return None  # the throttle's own "no limit"
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        return f"{count!r} requests is no whole number, 0 or more"
    if not isinstance(seconds, numbers.Real) or isinstance(seconds, bool) or not seconds > 0:
        return f"a period of {seconds!r} seconds is no positive number"
    return None


def _renders_no_own_html(renderer: type) -> bool:
    """Whether ``renderer`` is DRF's ``TemplateHTMLRenderer`` or ``StaticHTMLRenderer`` as
    DRF ships it (or a subclass changing nothing that matters): a project's subclass naming
    its own ``template_name``, or overriding ``get_template_names`` or ``render``, renders
    what it chose for the envelope and is no mistake to warn about."""
    from rest_framework.renderers import StaticHTMLRenderer, TemplateHTMLRenderer

    if issubclass(renderer, StaticHTMLRenderer):  # a TemplateHTMLRenderer subclass
        return renderer.render is StaticHTMLRenderer.render
    if issubclass(renderer, TemplateHTMLRenderer):
        return (
            not renderer.template_name
            and renderer.get_template_names is TemplateHTMLRenderer.get_template_names
            and renderer.render is TemplateHTMLRenderer.render
        )
    return False


def _routed_callbacks() -> list[Any]:
    """The view callbacks ``ROOT_URLCONF`` routes, included URLconfs walked. A URLconf that
    cannot be imported adds none (Django's urls check reports it)."""
    from django.urls import URLResolver, get_resolver

    found: list[Any] = []
    try:
        pending = list(get_resolver().url_patterns)
    except Exception:  # noqa: BLE001 - the URLconf's own error: Django's check says it
        return found
    while pending:
        pattern = pending.pop()
        if isinstance(pattern, URLResolver):
            try:
                pending.extend(pattern.url_patterns)
            except Exception:  # noqa: BLE001 - as above
                continue
            continue
        callback = getattr(pattern, "callback", None)
        if callback is not None:
            found.append(callback)
    return found


def _routed_drf_views() -> list[tuple[type, dict[str, Any]]]:
    """Every DRF view ``ROOT_URLCONF`` routes, a project's own ``APIView`` too, with the
    ``as_view()`` arguments it was routed with (``throttle_classes=`` among them)."""
    from rest_framework.views import APIView

    found: list[tuple[type, dict[str, Any]]] = []
    for callback in _routed_callbacks():
        view = getattr(callback, "cls", None)
        if issubclass(type(view), type) and issubclass(view, APIView):
            initkwargs = getattr(callback, "initkwargs", None)
            found.append((view, dict(initkwargs) if isinstance(initkwargs, dict) else {}))
    return found


def _served_viewsets(sites: list[Any]) -> list[type]:
    """The ViewSet classes serving resources: every registered site's generated ones, and
    every ``ResourceViewSet`` (sub)class ``ROOT_URLCONF`` routes, a subclass of a
    resource's ViewSet or a resource's ViewSet mounted by hand (without a site) too."""
    from .viewsets import ResourceViewSet

    found: dict[type, None] = {}
    for site in sites:
        for resource in site.resources:
            viewset = _safe(resource.as_viewset)
            if viewset is not None:
                found[viewset] = None
    for callback in _routed_callbacks():
        viewset = getattr(callback, "cls", None)
        if issubclass(type(viewset), type) and issubclass(viewset, ResourceViewSet):
            found[viewset] = None
    return list(found)


@register("django_arc")
def check_resources(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from .sites import _all_sites

    errors: list[Error] = []
    for site in _all_sites:
        for resource in site.resources:
            errors.extend(check_resource(resource))
    return errors


def _field(model: type[models.Model], name: str) -> Any:
    try:
        return resolve_path(model, name)
    except (FieldDoesNotExist, AttributeError):
        return None


def _did_you_mean(name: str, candidates: Any) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def check_resource(resource: Any) -> list[Error]:
    """Every problem with one resource definition, as system-check errors.

    Each error's ``obj`` is the resource (printed ``ProductResource ('products')``) and its
    message names the option or key, so ``manage.py check`` names both exactly once."""
    checks = (
        _check_attributes,
        _check_fields,
        _check_generic_relations,
        _check_filter_fields,
        _check_sort_fields,
        _check_search_fields,
        _check_lookup_field,
        _check_primary_key,
        _check_field_permissions,
        _check_permissions,
        _check_on_field_write_denied,
        _check_presets,
        _check_features,
        _check_stored_names,
        _check_filter_backends,
        _check_uncached_queryset,
        _check_action_inputs,
        _check_action_names,
    )
    errors: list[Error] = []
    for check in checks:
        errors.extend(check(resource))
    return errors


def _check_uncached_queryset(resource: Any) -> list[Warning]:
    """arc.W015: a cached resource whose declared ``queryset`` (or model's default manager)
    holds SQL of its own (``RawSQL``, ``extra()``, in a ``Prefetch`` too) or reads a table no
    model is over, or whose answers read through a ``GenericForeignKey`` with no ``tags``
    declared: no write can be told to retire its answers, so every read is computed
    and none stored (:func:`~django_arc.querycache.invalidation.declared_queryset_reads`).
    Nothing said so: the developer saw ``cache`` declared, every answer ``X-Cache: MISS``,
    and no reason. A warning: the answers are right, only never cached."""
    if _safe(policy_for, resource) is None:
        return []
    try:
        reads = declared_queryset_reads(resource)
    except Exception:  # noqa: BLE001 - a queryset that does not build is another check's
        return []
    if reads is not None:
        return []
    return [
        Warning(
            "`cache` is set, but the declared `queryset` (or the model's default manager) "
            "holds SQL of its own (RawSQL, extra()) or reads a table no model is over, or "
            "the answers read the rows a GenericForeignKey points at (any model's): no "
            "write can retire its answers, so none is ever stored (every read is a MISS).",
            hint="Express the condition with the ORM (Exists, Subquery, F, joins), move it "
            "to get_queryset() and tag the resource (docs/query-cache.md), or remove "
            "`cache`. Through a GenericForeignKey: give `cache` the `tags` your receivers "
            "of the target models' writes invalidate.",
            obj=resource,
            id="arc.W015",
        )
    ]


def _check_action_inputs(resource: Any) -> list[Error]:
    """arc.E018: an ``@action``'s ``input`` that is no DRF serializer class. Each call of
    the action builds it with the body (``input(data=…, context=…)``): an instance
    (``input=ApproveInput()``, as drf-spectacular's ``request=`` takes one) or any other
    value was a 500 on every call (``TypeError: … object is not callable``), first seen in
    production. An instance's own arguments (``many=True``, ``partial=True``) have no
    meaning for one body validated per request, so it is refused rather than rebuilt."""
    from rest_framework.serializers import BaseSerializer

    errors: list[Error] = []
    for name, spec in sorted(resource.actions.items(), key=lambda item: repr(item[0])):
        given = spec.input
        if given is None:
            continue
        if isinstance(given, type) and issubclass(given, BaseSerializer):
            if "action" in _declared_fields(given):
                errors.append(
                    _err(
                        f"@action '{name}': `input` {given.__name__} declares a field named "
                        "`action`, which the body's `action` (the action's name) never fills.",
                        resource,
                        "arc.E018",
                        "Rename the field; `action` names the action in the body.",
                    )
                )
            continue
        if isinstance(given, BaseSerializer):
            what = f"a {type(given).__name__} instance; pass the class itself"
            hint = f"@action(input={type(getattr(given, 'child', given)).__name__})"
        elif isinstance(given, type):
            what = f"the class {given.__name__}, which is no DRF serializer"
            hint = "Pass a rest_framework.serializers.Serializer subclass."
        else:
            what = f"a {type(given).__name__}, which is no DRF serializer class"
            hint = "Pass a rest_framework.serializers.Serializer subclass."
        errors.append(
            _err(
                f"@action '{name}': `input` is {what} (each call builds it with the body).",
                resource,
                "arc.E018",
                hint,
            )
        )
    return errors


def _declared_fields(serializer_class: type) -> Any:
    """The field names an ``input`` serializer class declares; none when building it
    without data raises (a project's ``__init__`` needing context): not judged then."""
    try:
        return serializer_class().fields
    except Exception:  # noqa: BLE001 - a project's serializer may need what a check lacks
        return {}


def _check_action_names(resource: Any) -> list[Error]:
    """arc.E019: an ``@action`` name that cannot be a verb of its own. The action's event is
    ``<name>.<action>`` and its audit entry's action the name, so one named after a verb the
    resource writes under (``created``, ``updated``, ``deleted``, a preset's ``restored``)
    told subscribers and the audit log a row was deleted when it was approved; two methods
    declaring one name left one of them silently never served (the last in ``dir()`` order
    won); a name that is no string is one no body's ``action`` can name."""
    from .presets.base import Preset

    verbs = set(_WRITE_VERBS)
    presets = resource.presets if isinstance(resource.presets, (list, tuple)) else ()
    for preset in presets:
        if isinstance(preset, Preset):
            verbs |= set(preset.event_verbs(resource))
    declared: dict[Any, list[str]] = {}
    specs: dict[Any, set[int]] = {}
    for attr in dir(type(resource)):
        value = getattr(type(resource), attr, None)
        spec = getattr(value, "_arc_action", None)
        if isinstance(spec, ActionSpec):
            declared.setdefault(spec.name, []).append(attr)
            # one method under two attributes (``approve_now = approve``) is one action; one
            # spec under two callables (``approve_logged = logged(approve)``, the decorator's
            # ``functools.wraps`` copying the spec) is two, of which the resource serves the
            # last in ``dir()`` order (``actions.as_declared``): the other never runs
            if inspect.ismethod(value):  # a @classmethod's, bound anew on each read
                value = value.__func__
            specs.setdefault(spec.name, set()).add((id(spec), id(value)))
    errors: list[Error] = _routes_held_twice(resource)
    for name, attrs in sorted(declared.items(), key=lambda item: repr(item[0])):
        if not isinstance(name, str):
            problem = f"@action name {name!r} is not a string: no body's `action` can name it."
            hint = "Pass @action(name=...) a string, or leave it out (the method's name)."
        elif name in verbs:
            problem = (
                f"@action '{name}' is named after a verb the resource writes under: its "
                f"event `{resource.name}.{name}` and audit entry would say the row was {name}."
            )
            hint = "Name the action after what it does (`approve`, `cancel`)."
        elif len(specs[name]) > 1:
            problem = f"@action '{name}' is declared by {', '.join(attrs)}: one is never served."
            hint = "Give each action its own name."
        else:
            continue
        errors.append(_err(problem, resource, "arc.E019", hint))
    return errors


def _routes_held_twice(resource: Any) -> list[Error]:
    """arc.E019 for a ``@route``'s spec held by two different callables (a decorated method
    beside a wrapped copy, ``functools.wraps`` copying the spec): both are routed on one
    path and name, and the last in ``dir()`` order answers (``actions.as_declared``), the
    other never; an alias of the same method is one route."""
    held: dict[int, tuple[RouteSpec, list[str], set[int]]] = {}
    for attr in dir(type(resource)):
        value = getattr(type(resource), attr, None)
        spec = getattr(value, "_arc_route", None)
        if isinstance(spec, RouteSpec):
            if inspect.ismethod(value):  # a @classmethod's, bound anew on each read
                value = value.__func__
            _, attrs, values = held.setdefault(id(spec), (spec, [], set()))
            attrs.append(attr)
            values.add(id(value))
    return [
        _err(
            f"@route on '{spec.path}' is declared by {', '.join(attrs)}: one is never served.",
            resource,
            "arc.E019",
            "Keep one of them, decorated as it should run.",
        )
        for spec, attrs, values in held.values()
        if len(values) > 1
    ]


def _is_endpoint(value: Any) -> bool:
    """Whether ``value``, an attribute as the class body holds it, declares an action or a
    route: a ``@classmethod`` over ``@action``/``@route`` too (served, as read from the
    class: ``actions.as_declared``), which was reported as no endpoint at all; and a
    ``@staticmethod`` over it, served without the resource (``as_declared``)."""
    if isinstance(value, (classmethod, staticmethod)):
        value = value.__func__
    return isinstance(getattr(value, "_arc_action", None), ActionSpec) or isinstance(
        getattr(value, "_arc_route", None), RouteSpec
    )


def _check_attributes(resource: Any) -> list[Error]:
    """arc.E012: a public name on a subclass that django-arc would never read.

    Allowed: the documented options (``resources.OPTIONS``), the hooks (``resources.HOOKS``),
    ``@action``/``@route`` methods, and names starting with an underscore (the project's own
    helpers). Anything else is a typo (``preset``, ``permission``, ``filter_field``) or an
    override of django-arc's internals, and both silently change what the API serves."""
    from .resources import HOOKS, OPTIONS, Resource

    allowed = set(OPTIONS) | set(HOOKS)
    internal = {name for name in dir(Resource) if not name.startswith("_")} - allowed
    errors: list[Error] = []
    seen: set[str] = set()
    for klass in type(resource).__mro__:
        if klass in Resource.__mro__:
            continue
        for name, value in vars(klass).items():
            if name in seen or name.startswith("_") or name in allowed:
                continue
            seen.add(name)
            if _is_endpoint(value):
                continue
            if name in internal:
                what = f"`{name}` is internal to Resource and cannot be overridden."
            else:
                what = f"`{name}` is not a Resource option, hook, @action or @route."
            errors.append(
                _err(
                    what + _did_you_mean(name, allowed),
                    resource,
                    "arc.E012",
                    "Options and hooks are listed in docs/resources.md; start a name of "
                    f"your own with an underscore (`_{name}`).",
                )
            )
    return errors


def _known_fields(resource: Any) -> set[str]:
    """Names field rules may refer to: ``fields``, and with a project serializer every field
    it declares (the serializer decides what is rendered and written)."""
    known = set(resource.all_fields)
    if resource.serializer_class is not None:
        known |= set(resource.serializer_class().fields)
    return known


def _unknown_field(model: type[models.Model], name: str) -> str:
    """arc.E001's message for ``name`` in ``fields``: a name Django's ``Model`` defines
    (``save``, a project's override of it too) is not unknown, it is refused."""
    alias = _pk_alias("fields", model) if name == "pk" else None
    if alias is not None:
        return alias
    if not name.startswith("_") and hasattr(models.Model, name):
        return (
            f"`fields` names '{name}', which Django's Model defines, not a field of "
            f"{model.__name__}: DRF would call it to render the row."
        )
    return f"`fields` names unknown field '{name}' of {model.__name__}."


def _pk_alias(setting: str, model: type[models.Model], name: str = "pk") -> str | None:
    """The message for ``pk`` in ``setting``, or a path ending in it through a relation
    (``author__pk``): not unknown, Django's alias of the primary key, which the setting
    names by the field (``fields``, ``filter_fields``, sorting: ``author__id``), as
    django-filter's ``Meta.fields`` does (it refuses both). In ``filter_fields`` a
    foreign key onto that primary key is filtered by it under its own name too
    (``author``). ``None`` for any other name."""
    head, _, last = name.rpartition("__")
    if last != "pk":
        return None
    target, relation = model, None
    if head:
        relation = _field(model, head)
        target = getattr(relation, "related_model", None) if relation is not None else None
        if not isinstance(target, type) or not issubclass(target, models.Model):
            return None
    pk_name = target._meta.pk.name
    message = (
        f"`{setting}` names '{name}', Django's alias of {target.__name__}'s primary key: "
        f"name the field, '{f'{head}__{pk_name}' if head else pk_name}'"
    )
    if (
        setting == "filter_fields"
        and relation is not None
        and (relation.many_to_one or relation.one_to_one)
        and relation.concrete
        and getattr(relation, "target_field", None) is target._meta.pk
    ):
        message += f", or the relation, '{head}', which filters by it"
    return message + "."


def _check_fields(resource: Any) -> list[Error]:
    model = resource.model
    errors: list[Error] = []
    try:
        known = _known_fields(resource)
    except Exception as exc:  # noqa: BLE001 - a broken serializer is the error to report
        return [
            _err(
                f"`serializer_class` {getattr(resource.serializer_class, '__name__', '')} "
                f"cannot build its fields: {exc}",
                resource,
                "arc.E001",
            )
        ]
    declared = resource.fields if resource.fields is not None else []
    for name in declared:
        if (
            resource.serializer_class is None
            and _field(model, name) is None
            and not model_attribute(model, name)
        ):
            errors.append(_err(_unknown_field(model, name), resource, "arc.E001"))
    for name in resource.read_only_fields:
        if name not in known:
            errors.append(
                _err(
                    f"`read_only_fields` names '{name}', which is not in `fields`.",
                    resource,
                    "arc.E001",
                )
            )
    return errors


def _generic_foreign_key_in(model: type[models.Model], path: str) -> str | None:
    """The part of ``path`` that is a ``GenericForeignKey`` (``target`` of
    ``target__name``), else ``None``."""
    current: Any = model
    for part in path.split("__"):
        try:
            model_field = current._meta.get_field(part)
        except (FieldDoesNotExist, AttributeError):
            return None
        if generic_relation_kind(model_field) == "GenericForeignKey":
            return part
        current = model_field.related_model
        if current is None:
            return None
    return None


def _check_generic_relations(resource: Any) -> list[Error]:
    """arc.E017: a generic relation (``django.contrib.contenttypes``) where it cannot be
    served. DRF's ``ModelSerializer`` has no field for a ``GenericForeignKey`` or a
    ``GenericRelation``: named in the generated serializer's ``fields`` it renders the row's
    attribute as it is (a model instance, a manager), which no JSON holds (a 500 on every
    read and write). A ``GenericForeignKey`` has no column: no filter, sort or search can
    follow it (Django refuses the lookup: a 500 on the request naming it). A project
    ``serializer_class`` with a field of its own for either is served (the relation
    prefetched), and a ``GenericRelation`` may be filtered and searched through
    (``stickers__label``) as a reverse relation is."""
    model = resource.model
    errors: list[Error] = []
    if resource.serializer_class is None:
        for name in resource.fields or ():
            try:
                kind = generic_relation_kind(model._meta.get_field(name))
            except (FieldDoesNotExist, AttributeError, TypeError):
                continue
            if kind is not None:
                errors.append(
                    _err(
                        f"`fields` names '{name}', a {kind}, which the generated serializer "
                        "cannot render (DRF has no field for it).",
                        resource,
                        "arc.E017",
                        f"Declare a `serializer_class` with a field rendering '{name}' "
                        "(a nested serializer, a SerializerMethodField), or leave it out.",
                    )
                )
    filter_fields = resource.filter_fields or {}
    paths = [("filter_fields", str(name)) for name in filter_fields]
    paths += [("sort_fields", str(name)) for name in resource.sort_fields or ()]
    paths += [
        ("default_sort", part.strip().lstrip("-+"))
        for part in str(resource.default_sort or "").split(",")
        if part.strip().lstrip("-+")
    ]
    paths += [("search_fields", str(name)) for name in resource.search_fields or ()]
    for setting, path in paths:
        part = _generic_foreign_key_in(model, path)
        if part is not None:
            errors.append(
                _err(
                    f"`{setting}` names '{path}', which follows the GenericForeignKey "
                    f"'{part}': it has no column, and the database cannot filter, sort or "
                    "search through it.",
                    resource,
                    "arc.E017",
                    "Name its columns instead (its content type and object id fields), or "
                    "filter through a GenericRelation on the related model.",
                )
            )
    return errors


def _check_filter_fields(resource: Any) -> list[Error]:
    model = resource.model
    errors: list[Error] = []
    filter_fields = resource.filter_fields or {}
    if not isinstance(filter_fields, dict):
        filter_fields = {name: ["eq", "in"] for name in filter_fields}
    for name, ops in filter_fields.items():
        model_field = _field(model, name)
        if model_field is None:
            unknown = f"`filter_fields` names unknown field '{name}'."
            message = _pk_alias("filter_fields", model, name) or unknown
            errors.append(_err(message, resource, "arc.E002"))
            continue
        if not isinstance(ops, (list, tuple, set, frozenset)):
            errors.append(
                _err(
                    f"`filter_fields['{name}']` must be a list of operators.",
                    resource,
                    "arc.E003",
                )
            )
            continue
        target = _concrete(model_field)
        for op in ops:
            op_name = OPERATOR_ALIASES.get(op, op)
            if op_name not in OPERATORS:
                errors.append(
                    _err(
                        f"unknown operator '{op}' for filter field '{name}'.",
                        resource,
                        "arc.E003",
                        f"Operators: {', '.join(sorted(OPERATORS))}",
                    )
                )
            elif op_name in TEXT_OPERATORS and not isinstance(target, _TEXT):
                errors.append(
                    _err(
                        f"operator '{op}' needs a text field; '{name}' is {type(target).__name__}.",
                        resource,
                        "arc.E003",
                    )
                )
            elif op_name in ORDERING_OPERATORS and isinstance(target, _UNORDERED):
                errors.append(
                    _err(
                        f"operator '{op}' cannot compare {type(target).__name__} '{name}'.",
                        resource,
                        "arc.E003",
                    )
                )
        if isinstance(target, models.JSONField):
            errors.append(_err(f"JSON field '{name}' cannot be filtered.", resource, "arc.E002"))
    return errors


def _check_sort_fields(resource: Any) -> list[Error]:
    """Known fields, and no JSON field: SQLite orders JSON as text and PostgreSQL's ``jsonb``
    by its own rules (so one list had two orders), and a keyset cursor cannot compare with
    the value it holds (pages repeated and skipped rows on both databases). No path across
    a to-many relation either: ``ORDER BY reviews__body`` joins a row once per review, so
    pages repeated it while ``total`` counted it once."""
    from .resources import sort_text

    model = resource.model
    errors: list[Error] = []
    names = [("sort_fields", name) for name in resource.sort_fields or ()]
    if sort_text(resource.raw_option("default_sort")) is None:
        errors.append(
            _err(
                '`default_sort` must be text ("-created_at,title") or a list of field '
                f"names, not {resource.raw_option('default_sort')!r}.",
                resource,
                "arc.E004",
                "Name the fields as ?sort= does, a '-' before one sorted descending.",
            )
        )
    for part in (resource.default_sort or "").split(","):
        if part.strip().lstrip("-+"):
            names.append(("default_sort", part.strip().lstrip("-+")))
    for setting, name in names:
        model_field = _field(model, name)
        head = name.rpartition("__")[0]
        if model_field is None:
            unknown = f"`{setting}` names unknown field '{name}'."
            message = _pk_alias(setting, model, name) or unknown
            if message != unknown and head and path_multi_valued(model, head):
                # ``books__pk``: its field (``books__id``) would be refused as well
                message = _to_many_sort(setting, name)
            errors.append(_err(message, resource, "arc.E004"))
        elif isinstance(_concrete(model_field), _UNSORTABLE):
            kind = "JSON" if isinstance(_concrete(model_field), models.JSONField) else "hstore"
            errors.append(
                _err(
                    f"{kind} field '{name}' cannot be sorted (`{setting}`).",
                    resource,
                    "arc.E004",
                )
            )
        elif path_multi_valued(model, name):
            errors.append(_err(_to_many_sort(setting, name), resource, "arc.E004"))
    return errors


def _to_many_sort(setting: str, name: str) -> str:
    return (
        f"'{name}' crosses a to-many relation and cannot be sorted (`{setting}`): "
        "a row would be listed once per related row."
    )


def _check_search_fields(resource: Any) -> list[Error]:
    model = resource.model
    errors: list[Error] = []
    for name in resource.search_fields or ():
        model_field = _field(model, name)
        if model_field is None or not isinstance(model_field, _TEXT):
            errors.append(
                _err(
                    f"`search_fields` entry '{name}' must be a text field of {model.__name__}.",
                    resource,
                    "arc.E005",
                )
            )
    return errors


def _check_lookup_field(resource: Any) -> list[Error]:
    model = resource.model
    lookup = resource.lookup_field
    if lookup == "pk":
        return []
    model_field = _field(model, lookup)
    if model_field is None or "__" in lookup:
        return [
            _err(
                f"`lookup_field` '{lookup}' is not a field of {model.__name__}.",
                resource,
                "arc.E006",
            )
        ]
    if not (model_field.primary_key or model_field.unique):
        return [
            _err(
                f"`lookup_field` '{lookup}' must be unique.",
                resource,
                "arc.E006",
                "Add unique=True to the model field.",
            )
        ]
    return []


def _check_primary_key(resource: Any) -> list[Error]:
    """arc.E016: a primary key django-arc cannot serve.

    - a composite one (Django 5.2's ``CompositePrimaryKey``): a row's URL, bulk ids,
      keyset cursors and event ids are one value;
    - one the client chooses (a text or integer column without a default that the database
      does not generate) on a resource whose ``create`` may be granted, with the generated
      serializer: the primary key is never writable from a body, so every create stored
      the column's empty value (``""``), and the next one answered 409. A ``create`` that
      never grants as declared (``None``, ``P.deny_all()``, an ``all_of`` holding it) lets
      no body in; one that denies at request time only (a callable returning ``False``) may
      grant after a deploy nobody re-checks, so it is reported."""
    meta = resource.model._meta
    pk = meta.pk
    if pk is None or type(pk).__name__ == "CompositePrimaryKey":
        return [
            _err(
                f"{resource.model.__name__} has a composite primary key, which django-arc "
                "does not serve.",
                resource,
                "arc.E016",
                "Give the model a single-column primary key (a unique constraint can keep "
                "the pair unique).",
            )
        ]
    # a multi-table child's pk is its parent link, whose value is the root parent's pk
    # (no more writable from a body than the child's own)
    while pk.remote_field is not None and pk.remote_field.parent_link:
        pk = pk.remote_field.model._meta.pk
    generated = (
        isinstance(pk, models.fields.AutoFieldMixin)
        or pk.has_default()
        or getattr(pk, "db_default", models.NOT_PROVIDED) is not models.NOT_PROVIDED
    )
    if (
        generated
        or resource.serializer_class is not None  # its create() may set it
        or not isinstance(resource.permissions, dict)  # arc.E010's to report
        or never_grants(resource.permissions.get("create"))
        or _preset_sets(resource, pk)
    ):
        return []
    return [
        _err(
            f"The primary key '{pk.name}' of {resource.model.__name__} has no default and is "
            "never writable from a body, so `create` cannot set it.",
            resource,
            "arc.E016",
            "Give the primary key a default (uuid.uuid4, a sequence), set it in a "
            "`serializer_class` whose create() does, or drop the `create` permission "
            "(or make it P.deny_all()).",
        )
    ]


def _bypassing_backends() -> dict[type, str]:
    """The backends that pick their fields themselves, with what they do by field."""
    from rest_framework.filters import OrderingFilter, SearchFilter

    kinds: dict[type, str] = {OrderingFilter: "sorts", SearchFilter: "searches"}
    try:
        from django_filters.rest_framework import DjangoFilterBackend
    except ImportError:  # django-filter is optional
        pass
    else:
        kinds[DjangoFilterBackend] = "filters"
    return kinds


def _check_filter_backends(resource: Any) -> list[Warning]:
    """arc.W009: a resource's own ``filter_backends`` holding a backend that picks its own
    fields: DRF's ``OrderingFilter`` (by default every field the serializer renders, with
    ``"__all__"`` every column), ``SearchFilter`` and django-filter's ``DjangoFilterBackend``
    (whatever fields their subclass or the view names). They know neither ``sort_fields``/
    ``search_fields``/``filter_fields`` nor the caller's field read rules, so a caller sorts
    or searches by a field it may not read (``visible_to``, ``hidden()``, a column outside
    ``fields``) and learns its values from the order or the matches: an oracle.

    A warning, not an error: the check sees the class, not the fields its code picks (a
    subclass naming only fields every caller reads is sound), and the project chose the
    DRF policy on purpose. Nothing refuses it at request time: the backend is the
    project's DRF object, as SPEC §2 keeps it."""
    backends = resource.filter_backends
    if not isinstance(backends, (list, tuple)):
        return []
    kinds = _bypassing_backends()
    warnings: list[Warning] = []
    for backend in backends:
        if not isinstance(backend, type):
            continue
        for base, verb in kinds.items():
            if issubclass(backend, base):
                warnings.append(
                    Warning(
                        f"`filter_backends` holds {backend.__name__} ({base.__module__}."
                        f"{base.__name__}), which {verb} by fields outside `sort_fields`, "
                        "`search_fields` and `filter_fields` and ignores `field_permissions`: "
                        "a caller can sort or search by a field hidden from it and read its "
                        "values from the answer.",
                        hint="Use the query language (`sort_fields`, `search_fields`, "
                        "`filter_fields`: QueryLanguageFilter), or silence arc.W009 once the "
                        "backend uses only fields every caller may read.",
                        obj=resource,
                        id="arc.W009",
                    )
                )
                break
    return warnings


def _preset_sets(resource: Any, field: Any) -> bool:
    """Whether a preset writes ``field`` itself (its ``managed_fields``): MultiTenant's
    tenant field as a one-to-one primary key (a row per organization) is set on every
    create from the caller's scope, not from the body."""
    for preset in resource.preset_list:
        try:
            managed = preset.managed_fields(resource)
        except Exception:  # noqa: BLE001 - a broken preset is reported on its own
            continue
        if {field.name, field.attname} & set(managed):
            return True
    return False


def _check_field_permissions(resource: Any) -> list[Error]:
    try:
        known = _known_fields(resource)
    except Exception:  # noqa: BLE001 - reported by _check_fields
        return []
    rules = resource.field_permissions or {}
    if not isinstance(rules, dict):
        return [
            _err(
                "`field_permissions` must be a dict of field name → rule.",
                resource,
                "arc.E009",
            )
        ]
    errors: list[Error] = []
    for name, rule in rules.items():
        if not isinstance(rule, FieldPermission):
            errors.append(
                _err(
                    f"`field_permissions['{name}']` must come from "
                    f"django_arc.fields (hidden(), visible_to(), ...).",
                    resource,
                    "arc.E009",
                )
            )
        elif name not in known:
            errors.append(
                _err(
                    f"`field_permissions` names '{name}', which is not in `fields`.",
                    resource,
                    "arc.E009",
                )
            )
        elif name in _lookup_fields(resource) and (
            rule.is_hidden or rule.read_roles is not None or rule.redact_roles
        ):
            errors.append(
                _err(
                    f"`field_permissions['{name}']` restricts reading '{name}', which rows are "
                    "looked up by: its value is in their URLs and ids (deletes, bulk writes, "
                    "events), and a lookup by it answers whether a value exists.",
                    resource,
                    "arc.E009",
                    "Look rows up by a field every caller may read.",
                )
            )
    return errors


def _lookup_fields(resource: Any) -> set[str]:
    """The fields rows are addressed by in URLs: ``lookup_field`` and routes' own (a
    ``SlugLookup``'s ``slug/{slug}/``); ``"pk"`` (the default) is the primary key's field,
    and a lookup by the primary key is one by each field holding its value (a multi-table
    child's ``animal_ptr`` holds its parent's ``id``)."""
    names = {resource.lookup_field}
    names |= {spec.lookup_field for spec in _resource_routes(resource) if spec.lookup_field}
    pk_names = primary_key_names(resource.model)
    names = {resource.model._meta.pk.name if name == "pk" else name for name in names}
    return names | pk_names if names & pk_names else names


def _resource_routes(resource: Any) -> list[RouteSpec]:
    """The resource's routes; its own ``@route``s only when its presets cannot be bound
    (that problem is reported by :func:`_check_presets`)."""
    try:
        return list(resource.routes)
    except Exception:  # noqa: BLE001 - a broken preset is reported on its own
        specs = []
        for attr in dir(type(resource)):
            spec = getattr(getattr(type(resource), attr, None), "_arc_route", None)
            if isinstance(spec, RouteSpec):
                specs.append(spec)
        return specs


def _permission_error(resource: Any, where: str, value: Any) -> Error | None:
    problem = permission_problem(value)
    if problem is None:
        return None
    return _err(f"{where} {problem}", resource, "arc.E010", PERMISSION_KINDS)


def _check_permissions(resource: Any) -> list[Error]:
    """arc.E010: a permission value that cannot decide; arc.E013: a key nothing reads.

    The keys read are the CRUD keys and the key of every route that has no permission of its
    own. An action's permission is ``@action(permissions=...)`` or ``action_permissions``, so
    a key naming an action is refused rather than silently ignored."""
    permissions = resource.permissions
    if not isinstance(permissions, dict):
        return [
            _err(
                f"`permissions` must be a dict of permission key → permission, "
                f"not {type(permissions).__name__}.",
                resource,
                "arc.E010",
                "e.g. permissions = {'list': P.require_auth(), 'create': P.require_org_role('admin')}",
            )
        ]
    routes = _resource_routes(resource)
    read = set(PERMISSION_KEYS.values()) | {spec.key for spec in routes if spec.permissions is None}
    own = {spec.key: spec for spec in routes if spec.permissions is not None}
    actions = resource.actions
    errors: list[Error] = []
    for key, value in permissions.items():
        where = f"`permissions[{key!r}]`"
        if key not in read:
            if key in actions:
                msg = (
                    f"{where} names the @action '{key}'; an action's permission is "
                    f"@action(permissions=...), else `action_permissions`."
                )
            elif key in own:
                msg = (
                    f"{where} is never read: @route '{own[key].name}' has a permission of "
                    f"its own (permissions=...)."
                )
            else:
                msg = f"{where} is not a permission key." + _did_you_mean(str(key), read)
            errors.append(
                _err(
                    msg,
                    resource,
                    "arc.E013",
                    f"Permission keys of this resource: {', '.join(sorted(read))}.",
                )
            )
        error = _permission_error(resource, where, value)
        if error is not None:
            errors.append(error)
    error = _permission_error(
        resource, "`action_permissions`", resource.raw_option("action_permissions")
    )
    if error is not None:
        errors.append(error)
    for name, spec in sorted(actions.items()):
        error = _permission_error(resource, f"@action '{name}': permissions", spec.permissions)
        if error is not None:
            errors.append(error)
    for spec in routes:
        error = _permission_error(resource, f"route '{spec.name}': permissions", spec.permissions)
        if error is not None:
            errors.append(error)
    return errors


def _check_on_field_write_denied(resource: Any) -> list[Error]:
    if resource.on_field_write_denied in (None, "reject", "strip"):
        return []
    return [_err("`on_field_write_denied` must be 'reject' or 'strip'.", resource, "arc.E008")]


def _check_presets(resource: Any) -> list[Error]:
    from .presets.base import Preset

    presets = resource.presets
    if not isinstance(presets, (list, tuple)):
        return [
            _err(
                "`presets` must be a list of presets, e.g. [presets.MultiTenant()].",
                resource,
                "arc.E011",
            )
        ]
    errors: list[Error] = []
    for position, preset in enumerate(presets):
        if isinstance(preset, type) and issubclass(preset, Preset):
            errors.append(
                _err(
                    f"`presets[{position}]` is the class {preset.__name__}, not a preset: "
                    f"instantiate it, {preset.__name__}().",
                    resource,
                    "arc.E011",
                )
            )
        elif not isinstance(preset, Preset):
            errors.append(
                _err(
                    f"`presets[{position}]` is {preset!r}, which is not a preset.",
                    resource,
                    "arc.E011",
                    "Presets subclass django_arc.presets.Preset.",
                )
            )
        else:
            errors.extend(_preset_problems(resource, position, preset))
    return errors


def _preset_problems(resource: Any, position: int, preset: Any) -> list[Error]:
    """arc.E011 for each problem ``preset.check()`` reports, or one naming the preset and
    what its ``check()`` raised: raised out of the system checks, it was a traceback from
    ``manage.py check`` naming neither the preset nor the resource, and no other problem
    of any resource was reported."""
    try:
        return [_err(problem, resource, "arc.E011") for problem in preset.check(resource)]
    except Exception as exc:  # noqa: BLE001 - a check never raises: it says what it saw
        return [
            _err(
                f"`presets[{position}]` ({_shown(getattr(preset, 'name', ''), str)}, "
                f"{type(preset).__name__}) could not be checked: its check() raised "
                f"{type(exc).__name__}: {_shown(exc, str)}",
                resource,
                "arc.E011",
                "Fix the preset's options or the resource they refer to; a preset's check() "
                "returns the problems it finds as messages.",
            )
        ]


def _check_features(resource: Any) -> list[Error]:
    """arc.E014: ``idempotent`` is ``True``, ``False`` or ``None``; ``cache`` is ``None``, a
    bool or a dict of ``stale_seconds``/``gc_seconds`` (numbers, gc ≥ stale) and ``tags``
    (a list of names)."""
    errors: list[Error] = []
    if resource.idempotent not in (True, False, None):
        errors.append(_err("`idempotent` must be True, False or None.", resource, "arc.E014"))
    cache = resource.cache
    if cache is None or isinstance(cache, bool):
        return errors
    if not isinstance(cache, dict):
        return errors + [
            _err(
                "`cache` must be a dict, True, False or None.",
                resource,
                "arc.E014",
                'e.g. cache = {"stale_seconds": 30, "gc_seconds": 300, "tags": ["catalog"]}',
            )
        ]
    for key in cache:
        if key not in CACHE_OPTION_KEYS:
            errors.append(
                _err(
                    f"`cache` has an unknown key {key!r}."
                    + _did_you_mean(str(key), CACHE_OPTION_KEYS),
                    resource,
                    "arc.E014",
                    f"Keys: {', '.join(CACHE_OPTION_KEYS)}.",
                )
            )
    stale, gc = cache.get("stale_seconds", 0), cache.get("gc_seconds", 1)
    if not _seconds(stale):
        errors.append(
            _err(
                f"`cache['stale_seconds']` must be a number ≥ 0, {_AT_MOST}.", resource, "arc.E014"
            )
        )
    if not _seconds(gc, strict=True):
        errors.append(_err(f"`cache['gc_seconds']` must be {_LIFETIME}.", resource, "arc.E014"))
    elif _seconds(stale) and "gc_seconds" in cache and gc < stale:
        errors.append(
            _err(
                "`cache['gc_seconds']` must not be less than `stale_seconds`: an entry must "
                "live at least as long as it is fresh.",
                resource,
                "arc.E014",
            )
        )
    tags = cache.get("tags", [])
    if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) and t for t in tags):
        errors.append(
            _err("`cache['tags']` must be a list of non-empty strings.", resource, "arc.E014")
        )
    return errors


#: the verbs the resource core writes under (``<name>.<verb>`` events, audit actions); an
#: ``@action``'s verb is its name, a preset's are its ``event_verbs()`` (``restored``)
_WRITE_VERBS = ("created", "updated", "deleted")


def _check_stored_names(resource: Any) -> list[Error]:
    """arc.E015: an event type every write of the resource would store past the outbox's
    ``type`` column — ``<name>.<verb>`` for the core's verbs, each action's and the presets'
    (:meth:`~django_arc.presets.base.Preset.event_verbs`). SQLite stores it anyway;
    PostgreSQL refuses the row and the write is a 500, so it is refused here, on every
    database, before a request is served. (A preset writing other columns checks them.)"""
    from .outbox.models import OutboxEvent
    from .presets.base import Preset

    if not arc_settings.EVENTS.get("OUTBOX", True):
        return []  # events go straight to the transport: no column to fit
    presets = resource.presets if isinstance(resource.presets, (list, tuple)) else ()
    verbs = [*_WRITE_VERBS, *(str(action) for action in resource.actions)]
    for preset in presets:
        if isinstance(preset, Preset):
            verbs += sorted(preset.event_verbs(resource))
    type_limit = OutboxEvent._meta.get_field("type").max_length
    name = str(resource.name)
    return [
        _err(
            f"The event type `{name}.{verb}` is {len(name) + 1 + len(verb)} characters; the "
            f"outbox stores at most {type_limit}.",
            resource,
            "arc.E015",
            "Shorten the resource's `name` or the action's name.",
        )
        for verb in verbs
        if len(name) + 1 + len(verb) > type_limit
    ]
