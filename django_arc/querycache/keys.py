"""Cache keys: which requests may share one cached answer.

Two requests share an entry only when the uncached path would give both the same bytes. The
key is therefore built from the same objects the uncached path uses, not from a list of
things we remembered to include:

- **the queryset the rows come from** — ``view.get_queryset()`` (tenancy and every preset's
  filters, the permission's row filters, a project's ``get_queryset``), serialised whole (its
  ``Query``, database and prefetches, pickled), and the query language's parsed filters,
  search and sort, which the list applies to it (a get: the lookup value). Equal
  serialisations are equal querysets, which run the same SQL; whatever narrows the rows a
  caller may see is in there, so another tenant, owner, context value or filter is another
  key. (Compiling the SQL would say the same thing, at eight times the cost: see
  :func:`queryset_fingerprint`.);
- **what the caller may see of each row** — ``view.field_access``, the one place field
  permissions are decided: the unreadable and the masked fields (roles that see the same
  fields share entries, roles that see fewer never get more), and ``?select=``;
- the page: ``page``, ``limit``, ``after``;
- **how the answer is rendered** — the renderer content negotiation chose and the media type
  it accepted, parameters included (``application/json; indent=4`` renders other bytes), the
  active time zone (datetimes are written in the current time zone), the active language
  (a model method or property in ``fields``, a model field django-modeltranslation
  translates may each write a row in it), and the scheme and host the request came in on
  (file and hyperlinked fields are written as absolute URLs);
- with a project ``serializer_class``, ``pagination_class`` or JSON renderer, or a ViewSet
  subclass of the project's (its class and router basename too), whose output
  django-arc cannot see into, the caller itself (its whole scope: roles, context and elevation included), the
  whole query string and the API version (``request.version``).

The resource and the organization are spelled out in the key too, for people reading Redis;
the resource's class is in the digest, since two resources may share a site and resource name
(a model's default name on resources routed by hand, or on two sites left with the default
site name) while declaring other fields.
"""

from __future__ import annotations

import copyreg
import dataclasses
import hashlib
import importlib
import io
import marshal
import pickle
import sys
from typing import Any

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.signals import setting_changed
from django.db.models import Prefetch, QuerySet
from django.db.models.base import ModelBase
from django.db.models.expressions import Col
from django.db.models.sql.query import Query
from django.db.models.sql.where import WhereNode
from django.utils import timezone, translation
from rest_framework.renderers import JSONRenderer

from .. import querystring
from ..exceptions import NotFound
from ..filters import QueryLanguageFilter, presets_search


def queryset_fingerprint(queryset: QuerySet) -> str | None:
    """A digest of everything a queryset will run: its ``Query`` (tables, joins, conditions
    and their values, ordering, slicing), its database and its prefetches (a ``Prefetch``
    carries a queryset of its own), pickled.

    A pickle is a complete record of an object's state — what unpickling rebuilds — so two
    querysets with the same pickle build the same SQL with the same parameters. It is not
    the shortest such record (two querysets built in another order pickle differently),
    which only costs a miss. It is about eight times cheaper than compiling the SQL, which
    matters on a HIT: that is most of what a HIT costs. What cannot be pickled (a lambda in
    an expression) falls back to the database and the compiled SQL; ``None`` when even its
    parameters have no state to record (the queryset is then not cached).

    The pickle is only hashed, never loaded. Written by name, each class and function it
    holds made the pickler import its module and walk its attributes to check it, about a
    third of the fingerprint's cost. The classes most queries hold (see :data:`_SEEDED`)
    are written instead as references into a table every process builds alike, whose
    digest follows the pickle (a process whose table differs never produces the same bytes
    for another queryset), and a model class as its module, qualified name and label
    (:func:`_model_state`).

    A queryset as a manager hands it out (``Item.objects.all()``, plain prefetch paths at
    most: :func:`_untouched_key`) pickles to bytes that depend on its database, its model's
    names and its prefetch paths alone: its fingerprint is remembered under those."""
    db, query, lookups = queryset.db, queryset.query, queryset._prefetch_related_lookups
    untouched = _untouched_key(db, query, lookups)
    if untouched is not None:
        known = _untouched.get(untouched)
        if known is not None:
            return known
    fingerprint = _pickled_fingerprint(queryset, (db, query, lookups))
    if untouched is not None and fingerprint is not None:
        if len(_untouched) >= UNTOUCHED_MEMO_SIZE:
            _untouched.clear()
        _untouched[untouched] = fingerprint
    return fingerprint


#: how many fingerprints of untouched querysets :func:`queryset_fingerprint` remembers: one
#: per model, database and prefetch paths a project's code builds (not per request)
UNTOUCHED_MEMO_SIZE = 512

_untouched: dict[tuple[Any, ...], str] = {}

#: what a ``Query`` holds when a manager has just made it (its ``__dict__``, the model left
#: out, and its ``WhereNode``'s), read from one made at first use: Django's release decides
_fresh: tuple[dict[str, Any], dict[str, Any]] | None = None


def _untouched_key(db: str, query: Any, lookups: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """``(database, model, prefetch paths)`` when ``query`` is exactly as ``Query(model)``
    made it — nothing filtered, joined, ordered, sliced, annotated, selected or cached on it
    — and its prefetches are plain paths: its pickle (:func:`_pickled_fingerprint`) is then
    a function of those three, the model written by its names; ``None`` otherwise. The model
    must still be what its names find (:func:`_model_state`): a class replaced under its
    name would share the replacement's key, and is keyed by its SQL."""
    global _fresh
    if type(query) is not Query or any(type(lookup) is not str for lookup in lookups):
        return None
    fresh = _fresh
    if fresh is None:
        made = Query(None)
        fresh = _fresh = ({**made.__dict__, "where": None}, dict(made.where.__dict__))
    state = query.__dict__
    where = state.get("where")
    if (
        type(where) is not WhereNode
        or where.__dict__ != fresh[1]
        or {**state, "model": None, "where": None} != fresh[0]
    ):
        return None
    model = state["model"]
    if not isinstance(model, ModelBase):
        return None
    found: Any = sys.modules.get(model.__module__)
    for name in model.__qualname__.split("."):
        found = getattr(found, name, None)
    if found is not model:
        return None
    return (db, model, lookups)


def _pickled_fingerprint(queryset: QuerySet, state: tuple[Any, ...]) -> str | None:
    """:func:`queryset_fingerprint` of ``queryset``, whose ``state`` is pickled."""
    seed = _seed or _pickle_seed()
    buffer = io.BytesIO()
    try:
        pickler = _QueryPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.memo = seed[0]
        pickler.dump(state)
        # a pickle starts with its PROTO opcode (0x80), which no UTF-8 text starts with: the
        # compiled fallback's material can never equal this one
        material = buffer.getvalue() + seed[1]
    except (pickle.PicklingError, TypeError, AttributeError):
        try:
            material = _compiled(queryset).encode()
        except (pickle.PicklingError, TypeError, AttributeError):
            return None
    return _hash(material)


#: what :func:`_pickle_seed`'s table holds: the classes and functions most queries pickle
#: (their node classes, the common lookups and expressions, the field loader, the values a
#: condition commonly holds) and :func:`_model_named`. Kept short on purpose: the table is
#: copied into every pickler (in C, but per entry), so an entry rarely pickled costs more
#: than it saves. Anything not in it is pickled by name, as before.
_SEEDED = (
    ("builtins", "tuple"),
    ("datetime", "date"),
    ("datetime", "datetime"),
    ("decimal", "Decimal"),
    ("uuid", "UUID"),
    ("django.db.models.expressions", "F"),
    ("django.db.models.expressions", "OrderBy"),
    ("django.db.models.expressions", "Value"),
    ("django.db.models.fields", "_load_field"),
    ("django.db.models.fields.related_lookups", "RelatedExact"),
    ("django.db.models.fields.related_lookups", "RelatedIn"),
    ("django.db.models.fields.related_lookups", "RelatedIsNull"),
    ("django.db.models.lookups", "Contains"),
    ("django.db.models.lookups", "Exact"),
    ("django.db.models.lookups", "GreaterThan"),
    ("django.db.models.lookups", "GreaterThanOrEqual"),
    ("django.db.models.lookups", "IContains"),
    ("django.db.models.lookups", "IExact"),
    ("django.db.models.lookups", "In"),
    ("django.db.models.lookups", "IsNull"),
    ("django.db.models.lookups", "LessThan"),
    ("django.db.models.lookups", "LessThanOrEqual"),
    ("django.db.models.sql.datastructures", "BaseTable"),
    ("django.db.models.sql.datastructures", "Join"),
    ("django.db.models.sql.query", "Query"),
    ("django.db.models.sql.where", "WhereNode"),
    ("django_arc.querycache.keys", "_model_named"),
)

#: the pickler's memo seeded with :func:`_pickle_seed`'s table, and the table's digest
_seed: tuple[Any, bytes] | None = None


def _pickle_seed() -> tuple[Any, bytes]:
    """The table of classes and functions :func:`queryset_fingerprint` writes by reference:
    :data:`_SEEDED`, each looked up by its module and name, in that order, as a pickler's
    memo; and the digest of those names and of what each names (its module and qualified
    name), so that a process where a name resolves to something else writes other bytes.
    Built once per process; two processes running the same code build the same table."""
    global _seed
    # each object once: two names of one object (a release making one an alias of the other)
    # would number it twice in one memo entry, and the pickler numbers what it memoises next
    # by the memo's size: a number the table already gave another object
    found = list(
        {
            id(value): value
            for value in (getattr(importlib.import_module(m), name) for m, name in _SEEDED)
        }.values()
    )
    names = "\n".join(f"{value.__module__}.{value.__qualname__}" for value in found)
    seeding = _QueryPickler(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL)
    seeding.memo = {id(value): (index, value) for index, value in enumerate(found)}
    # the pickler's own memo object: assigning it to another pickler copies the table in C
    _seed = (seeding.memo, hashlib.blake2b(names.encode(), digest_size=16).digest())
    return _seed


def _model_named(module: str, qualname: str, label: str) -> None:
    """Stands for a model class in a fingerprint's pickle (:func:`_model_state`); never
    called: the pickle is only hashed."""


def _model_state(model: Any) -> tuple[Any, ...]:
    """A model class as what pickling it by name records — its module and qualified name,
    checked to name this very class — and its label (app and model name), without the
    import of its module pickling by name runs. A class its module does not hold under
    that name (one a factory made, a replaced one) cannot be told apart by name: it is
    refused, and the fingerprint falls back to the compiled SQL, as pickling by name
    did."""
    found: Any = sys.modules.get(model.__module__)
    # a nested class (``Outer.Inner``) is looked up through its outer class, as pickling by
    # name looks it up; one made in a function (``make.<locals>.M``) is found under no name
    for name in model.__qualname__.split("."):
        found = getattr(found, name, None)
    if found is not model:
        raise pickle.PicklingError(f"{model!r} is not its module's {model.__qualname__}")
    return (_model_named, (model.__module__, model.__qualname__, model._meta.label))


def _hash(material: bytes) -> str:
    """BLAKE2b (256 bits) of ``material``: as collision-resistant as SHA-256 and, built into
    CPython rather than fetched from OpenSSL, about half its cost on the few hundred bytes a
    key hashes (9 k instructions against 16 k; a HIT hashes twice)."""
    return hashlib.blake2b(material, digest_size=32).hexdigest()


def _col_state(col: Col) -> tuple[Any, ...]:
    """A ``Col`` as what its SQL depends on (see :class:`_QueryPickler`)."""
    return (tuple, (("col", col.alias, _field_id(col.target), _field_id(col.output_field)),))


class _QueryPickler(pickle.Pickler):
    """Pickles a query without the memoised state of objects queries share.

    A model field's column expression (``Field.cached_col``) is one ``Col`` object reused by
    every query on that field, and Django caches properties on it as queries compile
    (``contains_aggregate``…): pickled as is, the same query would pickle differently
    before and after its first execution. A ``Col`` is recorded by what its SQL depends on —
    table alias, target field, output field — instead.

    Through ``dispatch_table`` (looked up by exact type, like ``type(obj) is Col``) rather
    than ``persistent_id``, which the pickler would call back into Python for every object
    of the query, not only the columns."""

    dispatch_table = {**copyreg.dispatch_table, Col: _col_state, ModelBase: _model_state}


def _field_id(field: Any) -> Any:
    model = getattr(field, "model", None)
    if model is not None:
        return (model._meta.label, field.name)
    return field.deconstruct()[1:]  # a free-standing output field: its class and arguments


def _compiled(queryset: QuerySet) -> str:
    """The database, SQL and parameters of a queryset and of its prefetches: one SQL runs on
    two databases (a router sending each tenant's rows to its own) and reads other rows."""
    try:
        sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    except EmptyResultSet:
        sql, params = "<empty>", ()
    # the parameters pickled, not by ``repr()``: a value's repr need not hold all of it
    # (psycopg's ``Jsonb`` cuts its value after 35 characters, an object without its own
    # repr shows its address, which the next request's may reuse); pickling one that has no
    # state to record raises, and the queryset is not cached
    parts = [
        repr(queryset.db),
        sql,
        pickle.dumps(tuple(params), protocol=pickle.HIGHEST_PROTOCOL).hex(),
    ]
    for lookup in queryset._prefetch_related_lookups:
        if isinstance(lookup, Prefetch):
            parts.append(lookup.prefetch_to)
            if lookup.queryset is not None:
                parts.append(_compiled(lookup.queryset))
        else:
            parts.append(str(lookup))
    return "\n".join(parts)


def _field_access(view: Any) -> list[Any]:
    access = view.field_access
    redacted = access.redacted
    return [
        sorted(access.unreadable),
        sorted((name, repr(mask)) for name, mask in redacted.items()) if redacted else [],
    ]


#: a class's dotted name (module and qualified name) by class: the resource and renderer
#: classes a key names, a handful per process
_dotted: dict[type, str] = {}


def _dotted_name(cls: type) -> str:
    """``cls`` as ``module.QualifiedName``, as a key writes a resource or renderer class."""
    name = _dotted.get(cls)
    if name is None:
        if len(_dotted) >= 256:  # classes made at run time (tests, factories) come and go
            _dotted.clear()
        name = _dotted[cls] = f"{cls.__module__}.{cls.__qualname__}"
    return name


#: What the scheme and host of a request's absolute URLs are read from (``HttpRequest.scheme``
#: and ``get_host()``: the Host header, the server's name and port, the proxy headers Django
#: reads when told to trust them), and ``SCRIPT_NAME``, which ``reverse()`` starts every path
#: with. The server's own scheme is not in ``META`` under ASGI: :func:`_rendering` asks the
#: request for it.
_ORIGIN_META = (
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "SCRIPT_NAME",
)


def active_zone(request: Any) -> str | None:
    """The name of the time zone active for ``request`` (``None`` without ``USE_TZ``), read
    once per request: DRF writes its datetimes in it, and the query language reads a filter
    value without offset in it. Reading it is a lookup in asgiref's ``Local`` (about 30 k
    instructions when none is active), which the parsed query's memo and the rendering
    would otherwise each pay on a HIT."""
    django_request = getattr(request, "_request", request)
    try:
        return django_request.arc_time_zone
    except AttributeError:
        zone = timezone.get_current_timezone_name() if settings.USE_TZ else None
        django_request.arc_time_zone = zone
        return zone


def _rendering(request: Any) -> list[Any]:
    """The renderer negotiation chose and the media type it accepted (with its parameters,
    which a renderer may read: JSON's ``indent``); the time zone active for the request: DRF
    writes datetimes in the current time zone, and a project activating each user's own (as
    Django documents) renders one row two ways; and where the request came in: DRF writes a
    file field's URL and a hyperlinked field's as absolute URLs
    (``request.build_absolute_uri``), so an answer rendered for ``Host: evil.example``, or for
    http, must never be served to a request for another host, or for https, and one project
    mounted twice (``SCRIPT_NAME`` ``/v1``, ``/api``) writes two paths for one link.

    Recorded as the request's own values (:data:`_ORIGIN_META`, the scheme the server was
    reached over — ``wsgi.url_scheme`` under WSGI, the scope's under ASGI, which has no such
    ``META`` key: keyed by ``META`` alone, an http answer was served to https — and the header
    ``SECURE_PROXY_SSL_HEADER`` names), not as ``get_host()`` and ``scheme`` compute them:
    those validate and combine the same values at several times the cost, and a value
    Django's reading would ignore (a forwarded host it does not trust) only makes another
    entry. A host ``ALLOWED_HOSTS`` refuses meets Django's 400 before any view (its
    ``CommonMiddleware``), or the route's own answer."""
    meta = request._request.META
    proxy_ssl = settings.SECURE_PROXY_SSL_HEADER
    return [
        _dotted_name(type(request.accepted_renderer)),
        request.accepted_media_type,
        active_zone(request),
        list(map(meta.get, _ORIGIN_META)),
        request._request._get_scheme(),
        meta.get(proxy_ssl[0]) if proxy_ssl else None,
    ]


def _caller(view: Any) -> list[Any]:
    """The caller — its whole scope: kind, user, client, organization, org and user roles,
    service scopes, elevation and context — the full query string, and the API version
    DRF's versioning class read (``request.version``) with the URL's keyword arguments it
    was read from (the active language is keyed beside it, in :func:`entry_key`): for
    output django-arc cannot see into (a project serializer may render from any of them,
    ``can_edit`` from the org roles, a branch's prices from the context, translate and
    localize what it writes, or answer ``/v2/`` in v2's shape and links). The same user
    demoted, or in another branch, is another caller to it."""
    scope = view.scope
    params = view.request.query_params
    return [
        scope.kind,
        scope.user_id,
        scope.client_id,
        scope.organization_id,
        sorted(scope.org_roles),
        sorted(scope.user_roles),
        sorted(scope.scopes),
        scope.elevated_by,
        sorted(scope.context.items()),
        sorted((key, params.getlist(key)) for key in params),
        view.request.version,
        sorted(view.kwargs.items()),
    ]


#: the renderers whose bytes are a function of the data alone; a project's (a JSON renderer
#: stamping who asked, from its ``renderer_context``) is output django-arc cannot see into,
#: keyed by the caller as a project serializer is
OWN_RENDERERS = frozenset({JSONRenderer})


def list_parts(view: Any) -> list[Any] | None:
    """What a list answer depends on (see the module docstring); ``None`` when its queryset
    cannot be recorded (:func:`queryset_fingerprint`): not cached.

    With django-arc's own query language the list's queryset is a pure function of the
    view's queryset and the parsed query (``QuerySpec.apply``): both are recorded whole, and
    the ORM is spared building the filtered queryset only to describe it. A project's filter
    backends, or a preset's search when the query searches, may read anything from the
    request: then the filtered queryset itself is recorded."""
    base = view.get_queryset()
    backends = view._backends
    if len(backends) == 1 and type(backends[0]) is QueryLanguageFilter:
        query, searches = normalised_query(view, backends[0])
        if not (searches and presets_search(view.resource)):
            fingerprint = queryset_fingerprint(base)
            return None if fingerprint is None else ["list", fingerprint, query]
    queryset = view.filter_queryset(base)
    params = view.request.query_params
    fingerprint = queryset_fingerprint(queryset)
    if fingerprint is None:
        return None
    return ["list", fingerprint, *_page(params, view.list_query)]


#: how many parsed query strings :func:`normalised_query` remembers (per process)
QUERY_MEMO_SIZE = 512

_queries: dict[tuple[Any, ...], tuple[str, bool]] = {}


def normalised_query(view: Any, backend: QueryLanguageFilter) -> tuple[str, bool]:
    """The list query of this request as the query language reads it — conditions, search,
    ordering, ``select`` and the page — as a digest, and whether it searches.

    Parameters the language ignores (``?utm_source=``) and spellings of the same condition
    give one digest; a query it refuses raises its ``INVALID_QUERY`` here, before the cache
    is asked. Parsing is a pure function of the parameters, the resource's compiled query
    rules, the fields this caller may read or sees masked (:meth:`QuerySpec.parse`) and the
    active time zone (a date-time without offset is read in it), so the digest is
    remembered under exactly those: a page requested again by callers who see the same
    fields is parsed once per process, not once per request. The memo is dropped when full
    (a client sending ever new query strings costs what parsing costs, no more) and
    whenever a setting changes (``TIME_ZONE`` is the zone when none is active). The
    parameters are those of :func:`~django_arc.querystring.key`: the query string as sent, unparsed,
    while nothing has parsed it yet."""
    access = view.field_access
    resource = view.resource
    memo_key = (
        resource,
        resource.query_spec,
        querystring.key(view.request),
        # a value without offset is a time in the caller's zone (``query._database_datetime``)
        active_zone(view.request),
        access.unreadable,
        frozenset(access.redacted),
    )
    known = _queries.get(memo_key)
    if known is not None:
        return known
    query = backend.parse(view.request, view)
    view.list_query = query  # what the backend reads on a miss: one parse per request
    material = [_query_fingerprint(query), *_page(view.request.query_params, query)]
    known = (_digest(material), bool(query.search))
    if len(_queries) >= QUERY_MEMO_SIZE:
        _queries.clear()
    _queries[memo_key] = known
    return known


def forget_queries(**kwargs: Any) -> None:
    """Drop what :func:`normalised_query` remembers."""
    _queries.clear()


setting_changed.connect(forget_queries, dispatch_uid="django_arc.querycache.keys")


def _digest(material: list[Any]) -> str:
    """A digest of ``material`` — strings, numbers, booleans, ``None`` and lists and tuples of
    them — encoded by :mod:`marshal` at version 0: a faithful encoding by value (it loads
    back equal, types included, so two different materials never share one), written in C
    at a third of what ``repr`` costs (9 k instructions against 27 k on a HIT's key), and
    by value alone (version 0 marks neither shared nor interned strings, which a later
    version would record, so equal materials built two ways encode the same). Anything
    else marshal refuses (a UUID in a project's scope) is encoded by its ``repr``, which
    quotes and escapes every string; the one-byte tag keeps the two encodings apart."""
    try:
        encoded = b"m" + marshal.dumps(material, 0)
    except ValueError:
        encoded = b"r" + repr(material).encode()
    return _hash(encoded)


def _page(params: Any, query: Any) -> list[Any]:
    select = None if query is None or query.select is None else sorted(query.select)
    return ["after" in params, params.get("after"), params.get("page"), params.get("limit"), select]


def _query_fingerprint(query: Any) -> str:
    """The parsed query (conditions, search, ordering) pickled; ``select`` is a set, whose
    order would vary between processes, and is keyed sorted instead."""
    state = dataclasses.replace(query, select=None)
    material = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    return _hash(material)


def retrieve_parts(view: Any) -> list[Any] | None:
    """What a get answer depends on; ``None`` for a malformed id (the route answers 404).

    ``get_object()`` looks the row up as ``get_queryset().get(<lookup>=<value>)``: a pure
    function of the view's queryset, recorded whole as for a list, and of the lookup value
    as the model field reads it (``"07"`` and ``"7"`` are one integer id), pickled like the
    queryset (a value's state, never its identity). Recording the two spares the ORM
    building the filtered queryset only to describe it."""
    lookup = view.lookup_field
    try:  # as in get_object(), whose 404 these errors are
        value = view.get_lookup_value()
        queryset = view.get_queryset()
    except (NotFound, DjangoValidationError, ValueError, TypeError, OverflowError):
        return None
    try:
        row = _hash(pickle.dumps((lookup, value), protocol=pickle.HIGHEST_PROTOCOL))
    except (pickle.PicklingError, TypeError, AttributeError):
        return None  # a value of no known state: not cached
    fingerprint = queryset_fingerprint(queryset)
    return None if fingerprint is None else ["get", fingerprint, row]


def entry_key(view: Any, parts: list[Any]) -> str:
    """The Redis key (before the alias's prefix) of the answer ``parts`` describe."""
    resource = view.resource
    # A ViewSet subclass routed by hand (``as_viewset()`` subclassed) may override any DRF
    # seam — ``list()``, ``get_serializer_class()``, its ``pagination_class`` — and render
    # other bytes than the generated ViewSet for the same rows: its entries are its own,
    # and keyed by the caller, as a project serializer's are.
    viewset = type(view)
    generated = viewset is resource.__dict__.get("_viewset")
    shared = (
        generated
        and resource.serializer_class is None
        and resource.pagination_class is None
        and type(view.request.accepted_renderer) in OWN_RENDERERS
    )
    material = [
        # the declaration: two resources may share a site and resource name (a model's
        # default name, resources routed by hand, two sites left with the default name)
        _dotted_name(type(resource)),
        # a subclass by its name and its registration: two classes a factory makes share a
        # qualname (``make.<locals>.V``), never a router's basename, nor the URL pattern
        # that routed it (one routed by ``as_view()`` in ``path()`` has no basename: None)
        *(
            []
            if generated
            else [
                f"{viewset.__module__}.{viewset.__qualname__}",
                getattr(view, "basename", None),
                getattr(getattr(view.request._request, "resolver_match", None), "route", None),
            ]
        ),
        *parts,
        _field_access(view),
        _rendering(view.request),
        # the language: what the key cannot see into may translate, and so may what the
        # generated serializer renders — a model property or method (``get_status_display``),
        # a model field whose descriptor reads the language (django-modeltranslation's
        # ``name`` reads ``name_fr`` for a French caller)
        translation.get_language(),
        None if shared else _caller(view),
    ]
    digest = _digest(material)[:40]
    org = view.scope.organization_id
    return f"arc:qc:e:{site_name(resource)}:{resource.name}:{'-' if org is None else org}:{digest}"


def site_name(resource: Any) -> str:
    site = getattr(resource, "site", None)
    return getattr(site, "name", None) or "-"


def resource_version_key(resource: Any) -> str:
    return f"arc:qc:v:r:{site_name(resource)}:{resource.name}"


def tag_version_key(tag: str) -> str:
    return f"arc:qc:v:t:{tag}"


def version_keys(resource: Any, tags: tuple[str, ...]) -> list[str]:
    """The version keys an entry of ``resource`` is checked against: its own and its
    tags'. A write bumps them; an entry recorded under other versions is a miss."""
    return [resource_version_key(resource), *(tag_version_key(tag) for tag in tags)]
