"""The query-string language of list endpoints, compiled once per resource.

django-filter builds a FilterSet and a form on every request; here a resource compiles its
``filter_fields``/``sort_fields``/``search_fields`` into a :class:`QuerySpec` once, and a request
only parses its parameters against that spec. Every refusal is an ``INVALID_QUERY`` naming the
parameter; a value that does not parse as the model field's type is refused before any SQL runs.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, FieldError, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import DecimalValidator
from django.db import connections, models
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import F, Q, QuerySet, Value, lookups
from django.db.models.constants import LOOKUP_SEP
from django.db.models.fields.files import FieldFile
from django.db.models.functions import Cast
from django.utils import timezone
from rest_framework.settings import api_settings

from .exceptions import InvalidQuery
from .ranges import INFINITE, InfiniteBoundRange

try:  # PostgreSQL's structured fields, importable where a PostgreSQL driver is installed
    from django.contrib.postgres.fields import ArrayField, HStoreField, RangeField
    from django.db.backends.postgresql.psycopg_any import Range
except ImportError:  # pragma: no cover - no driver: no model can declare one
    ArrayField = HStoreField = RangeField = Range = None  # type: ignore[assignment,misc]

OPERATORS = frozenset(
    [
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "in",
        "nin",
        "contains",
        "icontains",
        "startswith",
        "exists",
    ]
)
#: accepted for arc clients, mapped to our operator
OPERATOR_ALIASES = {"like": "icontains"}
#: known operators refused on purpose (regex: ReDoS and engine differences)
REFUSED_OPERATORS = frozenset(["regex"])
TEXT_OPERATORS = frozenset(["contains", "icontains", "startswith"])
#: the longest value of a text operator or ``search``: they become ``LIKE`` patterns, and
#: SQLite refuses a pattern past 50,000 bytes (escaped, up to four bytes a character)
MAX_TEXT_PATTERN = 1000
ORDERING_OPERATORS = frozenset(["gt", "gte", "lt", "lte"])
RESERVED_PARAMS = frozenset(["page", "limit", "sort", "select", "search", "after", "format"])
MAX_IN_VALUES = 500
#: a signed 64-bit integer, the widest column any supported database holds
MIN_INT, MAX_INT = -(2**63), 2**63 - 1


def reserved_param(key: str) -> bool:
    """Whether the query string's ``key`` is no filter, whatever field it names: paging,
    sorting, selection, search, and DRF's format parameter by whatever name the project
    gave it (``URL_FORMAT_OVERRIDE``), with ``format`` kept when it is renamed, so that a
    query string's meaning does not change with a setting. A filter field of that name is
    filtered on with an operator (``limit[eq]``)."""
    return key in RESERVED_PARAMS or key == api_settings.URL_FORMAT_OVERRIDE


#: a filter parameter: a field's name, a Python identifier (which need not be ASCII: a model
#: may have a field ``größe``), and an optional bracketed operator
_PARAM_RE = re.compile(r"^([^\W\d]\w*)(?:\[([A-Za-z_]+)\])?\Z")
_TEXT_FIELDS = (models.CharField, models.TextField)
_NUMERIC_FIELDS = (
    models.IntegerField,
    models.FloatField,
    models.DecimalField,
    models.AutoField,
    models.BigAutoField,
    models.SmallAutoField,
)


class _CursorEncoder(DjangoJSONEncoder):
    """Full-precision times: DjangoJSONEncoder keeps milliseconds only, and a cursor must
    reproduce the exact value or rows within one millisecond repeat or vanish. Bytes (a
    ``BinaryField``'s ``memoryview``, which no JSON encoder takes: a walk sorted by one was
    a 500 from its first page) as base64 text, which ``BinaryField.to_python()`` reads back
    as the column's value. A file (``FieldFile``, what a ``FileField`` or ``ImageField``
    attribute holds) as its name, the column's text: a walk sorted by one was a 500."""

    def default(self, o: Any) -> Any:
        if isinstance(o, (datetime, time)):
            return o.isoformat()
        if isinstance(o, InfiniteBoundRange):
            # PostgreSQL's own bounds (``"infinity"``), which :func:`_structured` reads back
            # for a cursor: compared as unbounded, the next page held the same rows
            lower, upper, bounds = o.stored
            return {"lower": lower, "upper": upper, "bounds": bounds}
        if Range is not None and isinstance(o, Range):
            # a range field's value as its object, which parse_value reads back (a walk sorted
            # by one was a 500 from its first full page: no JSON encoder takes a Range)
            return range_json(o)
        if isinstance(o, FieldFile):
            return o.name
        if isinstance(o, (bytes, bytearray, memoryview)):
            return base64.b64encode(bytes(o)).decode("ascii")
        return super().default(o)


def _root(path: str) -> str:
    """The resource field a lookup path starts from (``author`` for ``author__name``)."""
    return path.split("__", 1)[0]


def _root_field(model: type[models.Model], path: str) -> str:
    """The name of the model field ``path`` starts from, as field permissions name it: a
    foreign key's column name stands for its field (``owner`` for ``owner_id``), or a filter,
    sort or search declared by column name read a field the caller may not read."""
    root = _root(path)
    try:
        model_field = model._meta.get_field(root)
    except FieldDoesNotExist:
        return root
    return getattr(model_field, "name", root)


def project_prefetches_first(queryset: models.QuerySet) -> models.QuerySet:
    """``queryset`` with the ``Prefetch`` objects of its ``prefetch_related`` (a project's own,
    narrowed: ``Prefetch("books", queryset=Book.objects.filter(published=True))``) before
    the plain paths django-arc adds for the relations its serializer renders (``"books"``,
    ``"books__reviews"``), a plain path a ``Prefetch`` loads already left out. Django
    refuses a ``Prefetch`` of a relation an earlier lookup loaded (a ``ValueError``: a 500);
    after it, the plain paths follow the rows it loaded instead of loading them again."""
    lookups = queryset._prefetch_related_lookups
    objects = [lookup for lookup in lookups if isinstance(lookup, models.Prefetch)]
    if not objects:
        return queryset
    loaded = {lookup.prefetch_to for lookup in objects}
    plain = [lookup for lookup in lookups if isinstance(lookup, str) and lookup not in loaded]
    if list(lookups) == [*objects, *plain]:
        return queryset
    return queryset.prefetch_related(None).prefetch_related(*objects, *plain)


def load_relations(
    instances: list[models.Model], queryset: models.QuerySet, reload: bool = False
) -> None:
    """Load onto ``instances`` (rows just written, not read through ``queryset``) what a
    read through ``queryset`` loads with them: its prefetches, a project's narrowing
    ``Prefetch`` objects first (:func:`project_prefetches_first`), and the forward
    relations it joins (``book__author`` for ``source="book.author.name"``; a relation a
    row holds already is not read again). Once for all the rows, not one query per row,
    and the rows render what a read of them renders. ``reload``: rows written after they
    (or, for a created row, the rows it joins) were read — an update's read through
    ``queryset``, a create's by its validation —, their prefetched relations read again,
    those of the rows they hold too (a joined author's ``books``), and a ``Prefetch``'s
    ``to_attr``; the rows joined with them read again too, in one query when the queryset
    joins any (:func:`_refresh_joined`)."""
    if not instances or not all(isinstance(row, queryset.model) for row in instances):
        return  # a serializer saving something else than the resource's rows: not ours
    queryset = project_prefetches_first(queryset)
    # the relations it joins; a FilteredRelation's alias, which only its own annotated
    # queryset knows (Django's prefetching cannot follow it), is read on its own
    every_join = joined_paths(queryset.query.select_related)
    joined = _relation_paths(queryset.model, every_join)
    _load_filtered_relations(instances, queryset, every_join)
    lookups = [*queryset._prefetch_related_lookups, *joined]
    read: dict[tuple[str, Any, str], dict[Any, int]] = {}
    attrs = {getattr(lookup, "to_attr", None) for lookup in lookups} - {None}
    steps = {
        name
        for lookup in lookups
        for name in getattr(lookup, "prefetch_to", lookup).split(LOOKUP_SEP)
    }
    if reload:
        # rows read with their relations prefetched, which the write's hooks may have
        # changed since (as DRF's UpdateModelMixin clears them after an update): those
        # prefetched onto the rows, and onto the rows they hold (a joined author's books)
        held = _held_rows(instances, attrs, steps)
        for row in held:
            for name, related in _prefetched(row):
                if not related.ordered:
                    order = {r.pk: i for i, r in enumerate(related._result_cache)}
                    read[(row._meta.label, row.pk, name)] = order
        for row in held:
            row.__dict__.pop("_prefetched_objects_cache", None)
            # a GenericForeignKey's row is prefetched onto the row's fields cache, where the
            # prefetch that follows finds it loaded: dropped, it is read again as the rest
            _forget_generic_rows(row, steps)
            for attr in attrs:  # a Prefetch's to_attr is loaded once it is set
                if attr in row.__dict__ and not _is_field(row, attr):
                    del row.__dict__[attr]
    if reload:
        _refresh_generated(instances, queryset)
    if reload and joined:
        _refresh_joined(instances, queryset, joined)
    if lookups:
        models.prefetch_related_objects(instances, *lookups)
    if read:
        # a relation read without an order comes back in the database's, which moves a row
        # the write updated (PostgreSQL: to the end): the rows read before keep their order,
        # so that an event names no relation changed whose rows only moved
        for row in _held_rows(instances, attrs, steps):
            for name, related in _prefetched(row):
                before = read.get((row._meta.label, row.pk, name))
                if before is not None and not related.ordered:
                    related._result_cache.sort(key=lambda r: before.get(r.pk, len(before)))


_UNREAD = object()


def _load_filtered_relations(
    instances: list[models.Model], queryset: models.QuerySet, paths: list[str]
) -> None:
    """The ``FilteredRelation`` aliases ``queryset`` joins (``select_related("famous_author")``
    of its ``annotate(famous_author=FilteredRelation("author", condition=…))``), read for
    ``instances`` as a read of them reads them: a created row had none, and an updated one
    kept the one it was read with (the author changed, the old famous author still shown).
    One query for all the rows, through the base manager joined by the aliases alone
    (the write may have moved a row out of the view's filters); a row the relation's
    condition leaves without one has none, as a read leaves it."""
    filtered = getattr(queryset.query, "_filtered_relations", None) or {}
    paths = [path for path in paths if path.split(LOOKUP_SEP, 1)[0] in filtered]
    if not paths:
        return
    aliases = list(dict.fromkeys(path.split(LOOKUP_SEP, 1)[0] for path in paths))
    database = instances[0]._state.db or queryset.db
    rows = queryset.model._base_manager.db_manager(database).all()
    # the aliases as the queryset holds them (Django 5 rewrote their conditions in terms of
    # the alias when it annotated; annotating again would not resolve them)
    rows.query._filtered_relations = dict(filtered)
    try:
        fresh = rows.select_related(*paths).in_bulk([row.pk for row in instances])
    except (FieldError, ValueError):  # a join Django cannot make outside its queryset
        return
    for row in instances:
        source = fresh.get(row.pk)
        for alias in aliases:
            if source is not None and alias in source.__dict__:
                row.__dict__[alias] = source.__dict__[alias]
            else:
                row.__dict__.pop(alias, None)


def _refresh_generated(instances: list[models.Model], queryset: models.QuerySet) -> None:
    """The database-computed columns (``GeneratedField``, Django 5.0+) of ``instances``,
    rows just written, read again: Django's ``save()`` of an existing row (and
    ``bulk_update``) leaves them as they were read, so the answer and the event of an
    update rendered the value before it (``total`` of ``price * qty`` unchanged after the
    quantity was), and the event's ``changed`` left it out. One query for all the rows, on
    the rows' database, through the base manager (the write may have moved a row out of the
    view's filters); a model without such a column reads nothing."""
    model = queryset.model
    names = [f.attname for f in model._meta.concrete_fields if getattr(f, "generated", False)]
    if not names:
        return
    database = instances[0]._state.db or queryset.db
    fresh = {
        pk: values
        for pk, *values in model._base_manager.db_manager(database)
        .filter(pk__in=[row.pk for row in instances])
        .values_list("pk", *names)
    }
    for row in instances:
        values = fresh.get(row.pk)
        if values is not None:
            row.__dict__.update(zip(names, values, strict=True))


def _refresh_joined(
    instances: list[models.Model], queryset: models.QuerySet, paths: list[str]
) -> None:
    """The rows ``queryset`` joins to ``instances`` (``select_related``: a book's
    ``author``), read before a write, with their columns read again: the write's hooks or
    signals may have changed them through another object (``Author.objects.filter(…)
    .update(name=…)``), and the answer and event rendered the old values. One query for all
    the rows and joins, on the rows' database, through the base manager (the write may have
    moved a row out of the view's filters); the joined objects are updated in place, so
    what was prefetched onto them stays theirs. A row that holds another one now, or none —
    the write pointed it elsewhere (Django cleared the relation), a hook deleted the joined
    row (``SET_NULL``) or pointed the row elsewhere through a queryset — holds the one read
    again (its foreign key's columns too), as a get after the write renders it."""
    model = queryset.model
    # where the rows were written (and read), as the prefetches that follow read
    database = instances[0]._state.db or queryset.db
    fresh = (
        model._base_manager.db_manager(database)
        .select_related(*paths)
        .in_bulk([row.pk for row in instances])
    )
    for row in instances:
        source = fresh.get(row.pk)
        if source is None:
            continue
        for path in paths:
            held, read = row, source
            for part in path.split(LOOKUP_SEP):
                field = relation_named(type(held), part)
                if field is None or not hasattr(field, "is_cached"):
                    break
                if not field.is_cached(read):
                    break
                now = field.get_cached_value(read)
                was = field.get_cached_value(held) if field.is_cached(held) else _UNREAD
                if was is None and now is None:
                    break
                if was is _UNREAD or was is None or now is None or was.pk != now.pk:
                    # the row holds another one now, or none (a hook deleted it, or pointed
                    # the row elsewhere through a queryset): the one read, as a get reads it
                    _hold(held, field, read, now)
                    break
                held, read = was, now
                for column in held._meta.concrete_fields:
                    value = read.__dict__.get(column.attname, _UNREAD)
                    if value is not _UNREAD and held.__dict__.get(column.attname, _UNREAD) != value:
                        setattr(held, column.attname, value)


def _hold(row: models.Model, field: Any, source: models.Model, related: Any) -> None:
    """``row`` holding ``related`` through ``field``, its foreign key's columns as
    ``source`` (the row read again) holds them; a reverse one-to-one has none."""
    for attname in _local_attnames(field):
        row.__dict__[attname] = source.__dict__.get(attname)
    field.set_cached_value(row, related)


def _local_attnames(field: Any) -> list[str]:
    if getattr(field, "concrete", False):
        return [column.attname for column in getattr(field, "local_related_fields", ())]
    return []


def _prefetched(row: models.Model) -> list[tuple[str, models.QuerySet]]:
    """The relations prefetched onto ``row`` (not to an attribute), with their rows."""
    cache = row.__dict__.get("_prefetched_objects_cache") or {}
    return [
        (name, related)
        for name, related in cache.items()
        if isinstance(related, models.QuerySet) and related._result_cache is not None
    ]


def _held_rows(rows: list[models.Model], attrs: set[str], steps: set[str]) -> list[models.Model]:
    """``rows`` and every row they hold, at any depth: the forward relations cached on them
    that a lookup goes through (``steps``: not a row a hook put there, the request's user),
    the rows prefetched onto them (``attrs``: a ``Prefetch``'s ``to_attr`` too)."""
    found: dict[int, models.Model] = {}
    stack: list[Any] = list(rows)
    while stack:
        row = stack.pop()
        if not isinstance(row, models.Model) or id(row) in found:
            continue
        found[id(row)] = row
        stack.extend(v for k, v in row._state.fields_cache.items() if k in steps)
        for _name, related in _prefetched(row):
            stack.extend(related._result_cache)
        for attr in attrs:
            value = row.__dict__.get(attr)
            stack.extend(value if isinstance(value, list) else [value])
    return list(found.values())


def _forget_generic_rows(row: models.Model, steps: set[str]) -> None:
    """Drop the rows the ``GenericForeignKey`` fields among ``steps`` hold cached on ``row``."""
    for name in steps:
        try:
            field = row._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if generic_relation_kind(field) == "GenericForeignKey" and field.is_cached(row):
            field.delete_cached_value(row)


def _is_field(row: models.Model, name: str) -> bool:
    try:
        row._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def joined_paths(tree: Any, prefix: str = "") -> list[str]:
    """The paths a queryset's ``select_related`` joins (``{"book": {"author": {}}}``:
    ``book__author``), deepest only; none for ``select_related()`` of every relation."""
    if not isinstance(tree, dict):
        return []
    paths: list[str] = []
    for name, below in tree.items():
        paths.extend(joined_paths(below, f"{prefix}{name}__") if below else [prefix + name])
    return paths


def _relation_paths(model: type[models.Model], paths: list[str]) -> list[str]:
    """``paths`` (``select_related`` ones) up to their first part that is no relation of the
    model it is read from, those left empty left out: a ``FilteredRelation``'s alias
    (``select_related("famous_author")`` of ``annotate(famous_author=FilteredRelation(…))``)
    is a relation of the annotated queryset only, which neither ``prefetch_related_objects``
    nor another queryset can follow (a ``ValueError``, a ``FieldError``: a 500)."""
    found: list[str] = []
    for path in paths:
        current: Any = model
        parts: list[str] = []
        for part in path.split(LOOKUP_SEP):
            field = relation_named(current, part) if current is not None else None
            if field is None or not getattr(field, "is_relation", False):
                break
            parts.append(part)
            current = field.related_model
        if parts:
            found.append(LOOKUP_SEP.join(parts))
    return list(dict.fromkeys(found))


def relation_named(model: type[models.Model], name: str) -> Any:
    """The field ``name`` names on ``model`` as a serializer's source or a
    ``select_related``/``prefetch_related`` path part does: a field, or a reverse relation
    by its accessor (``review_set`` when it has no ``related_name``, which ``get_field``
    knows as ``review``); ``None`` when it names neither."""
    try:
        return model._meta.get_field(name)
    except (FieldDoesNotExist, AttributeError, TypeError):
        pass
    for rel in getattr(getattr(model, "_meta", None), "related_objects", ()):
        if rel.get_accessor_name() == name:
            return rel
    return None


def generic_relation_kind(model_field: Any) -> str | None:
    """``"GenericForeignKey"`` or ``"GenericRelation"`` for the fields of
    ``django.contrib.contenttypes`` (known by their shape, so that a project without the app
    imports nothing of it), else ``None``. A ``GenericForeignKey`` has no column and no one
    related model: no ``select_related``, filter or sort can follow it, only
    ``prefetch_related``. A ``GenericRelation`` is a reverse relation Django prefetches and
    filters through (``stickers__label``), which DRF's ``ModelSerializer`` has no field for."""
    if not getattr(model_field, "is_relation", False) or getattr(model_field, "concrete", True):
        return None
    if model_field.many_to_one and model_field.related_model is None:
        return "GenericForeignKey"
    if model_field.one_to_many and not model_field.auto_created:
        return "GenericRelation"
    return None


def generic_foreign_keys(model: type[models.Model]) -> tuple[Any, ...]:
    """``model``'s ``GenericForeignKey`` pairs (its ``private_fields`` of that shape, a
    multi-table parent's too): none for most models, so what a write does for them costs
    those models nothing (a create asks three times, cost9): a model without private fields
    is answered by one attribute read. Read as the model is now, not kept per class: a
    ``functools.cache`` held every model class it was asked about (each ``isolate_apps``
    test's) and never saw a pair added to a model after its first answer."""
    private = model._meta.private_fields
    if not private:
        return ()
    return tuple(f for f in private if generic_relation_kind(f) == "GenericForeignKey")


def primary_key_names(model: type[models.Model]) -> frozenset[str]:
    """The names of ``model``'s fields holding its primary key's value: its own primary
    key's and, for a multi-table child, each ancestor's (the parent link holds it)."""
    return frozenset(
        {model._meta.pk.name, *(p._meta.pk.name for p in model._meta.get_parent_list())}
    )


class _Refused(Exception):
    """A value that does not parse; turned into INVALID_QUERY by the caller."""


def _concrete(model_field: Any) -> Any:
    """The field whose type a filter value has: the target field for a relation."""
    while (
        getattr(model_field, "is_relation", False)
        and getattr(model_field, "target_field", None) is not None
    ):
        if model_field.many_to_many or model_field.one_to_many:
            return model_field.target_field
        model_field = model_field.target_field
    return model_field


def foreign_numeral(model_field: Any, raw: Any) -> bool:
    """Whether ``raw`` is text that ``int()``, ``float()``, ``Decimal()`` or ``UUID()`` read
    as a number although no JSON number and no arc client spells it so, for a field
    (or a relation's target) holding numbers or UUIDs: digit groups with underscores
    (PEP 515: ``"1_0"`` is 10) or digits outside ASCII (``"\u0661\u0662"``, Arabic-Indic
    digits, is 12; JavaScript's ``Number()`` reads either as ``NaN``). A filter, a URL's id
    and a body's value refuse it alike, so one row has one spelling per number (and the
    query cache one key), as a JSON number has."""
    return foreign_digits(raw) and isinstance(
        _concrete(model_field), (*_NUMERIC_FIELDS, models.UUIDField)
    )


def foreign_digits(raw: Any) -> bool:
    """Whether ``raw`` is text holding an underscore or a character outside ASCII: not a
    number as JSON spells one (see :func:`foreign_numeral`)."""
    return isinstance(raw, str) and ("_" in raw or not raw.isascii())


#: what no database stores or matches: NUL, and a lone surrogate (not UTF-8, so the driver
#: cannot send it); a URL cannot carry one, but a JSON body (a bulk ``filter``) or the JSON
#: of a forged cursor can
UNSENDABLE = re.compile("[\x00\ud800-\udfff]")


def _check_text(raw: str, nul: bool = False) -> None:
    """Refuse what no database can be sent: a lone surrogate (no UTF-8), and a NUL
    character unless ``nul`` (a cursor on a database whose text holds one)."""
    found = (_SURROGATE if nul else UNSENDABLE).search(raw)
    if found is not None:
        if found.group() == "\x00":
            raise _Refused("contains a NUL character")
        raise _Refused("contains a lone surrogate")


_SURROGATE = re.compile("[\ud800-\udfff]")


def holds_nul(using: str) -> bool:
    """Whether database ``using``'s text columns can hold a NUL character: SQLite's (and
    MySQL's) can, so a row written outside the API (a script, an import) may hold one;
    PostgreSQL's cannot (its driver refuses the value: a 500 if it were sent)."""
    return connections[using].vendor != "postgresql"


def _check_pattern(raw: str) -> None:
    """A text operator's value or a search term: what every database can match with."""
    _check_text(raw)
    if len(raw) > MAX_TEXT_PATTERN:
        raise _Refused(f"at most {MAX_TEXT_PATTERN} characters")


class _CaseSensitiveContains(lookups.Contains):
    """``contains``, case-sensitive on SQLite too. Django's SQLite ``contains`` is ``LIKE``,
    which ignores the case of ASCII letters there (``[contains]=apple`` found ``Apple``) and
    respects it on PostgreSQL; ``instr()`` compares characters exactly, as PostgreSQL's
    ``LIKE`` does. Other databases keep Django's SQL (the class keeps Django's
    ``lookup_name``, which picks it; it is registered under another)."""

    def as_sqlite(self, compiler: Any, connection: Any) -> tuple[str, Any]:
        return _instr(self, compiler, connection, "> 0")


class _CaseSensitiveStartsWith(lookups.StartsWith):
    """``startswith``, case-sensitive on SQLite too (see :class:`_CaseSensitiveContains`):
    the value's first occurrence is at the first character."""

    def as_sqlite(self, compiler: Any, connection: Any) -> tuple[str, Any]:
        return _instr(self, compiler, connection, "= 1")


def _instr(lookup: Any, compiler: Any, connection: Any, test: str) -> tuple[str, Any]:
    lhs, lhs_params = lookup.process_lhs(compiler, connection)
    # the plain value: ``PatternLookup.process_rhs`` would make it a LIKE pattern
    rhs, rhs_params = lookups.Lookup.process_rhs(lookup, compiler, connection)
    return f"instr({lhs}, {rhs}) {test}", (*lhs_params, *rhs_params)


# Registered on every field (not only text ones): a text operator on a foreign key to a text
# primary key reaches the lookup through the relation field. The names are django-arc's own.
models.Field.register_lookup(_CaseSensitiveContains, lookup_name="arc_contains")
models.Field.register_lookup(_CaseSensitiveStartsWith, lookup_name="arc_startswith")


class _DefaultCollation(lookups.Transform):
    """A text column under the database's default collation, on PostgreSQL: a column with
    a nondeterministic collation of its own (``db_collation``, the case-insensitive ICU
    collations that replace ``CICharField``) refuses ``LIKE`` ("nondeterministic
    collations are not supported for LIKE", PostgreSQL before 18), so a text operator or
    ``search`` on one was a 500. Elsewhere (and for ``=``) the column is compiled as is."""

    lookup_name = "arc_default_collation"

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        return compiler.compile(self.lhs)

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, Any]:
        sql, params = compiler.compile(self.lhs)
        return f'({sql} COLLATE "default")', params


models.Field.register_lookup(_DefaultCollation)


def pattern_path(model_field: Any, path: str) -> str:
    """``path`` as a ``LIKE`` lookup reads it: under the default collation when its column
    has a collation of its own (:class:`_DefaultCollation`)."""
    if getattr(_concrete(model_field), "db_collation", None):
        return f"{path}__{_DefaultCollation.lookup_name}"
    return path


#: the lookup each case-sensitive text operator compiles to
_TEXT_LOOKUPS = {
    "contains": "arc_contains",
    "startswith": "arc_startswith",
    "icontains": "icontains",
}


def shown(text: str, limit: int = 50) -> str:
    """``text`` as a refusal quotes what a client sent: its first ``limit`` characters (and
    an ellipsis). A query string is bounded by the URL's length, a JSON body (a bulk
    ``filter``) only by the memory limit: a quote of megabytes was answered megabytes."""
    return text if len(text) <= limit else f"{text[:limit]}…"


#: the durations every database holds: SQLite and MySQL store a ``DurationField`` as a 64-bit
#: count of microseconds (PostgreSQL's ``interval`` holds more, up to Python's own limit)
MIN_DURATION, MAX_DURATION = timedelta(microseconds=MIN_INT), timedelta(microseconds=MAX_INT)


def spells_a_duration(text: str) -> bool:
    """Whether ``text`` names a duration at all: one has a digit. Django's
    ``parse_duration`` reads ``""``, ``"P"`` and ``"PT"`` as zero (its PostgreSQL interval
    and ISO 8601 patterns leave every part optional), so ``?span=`` filtered on the zero
    duration, ``?span[gt]=`` on longer than zero, and ``{"span": ""}`` stored one, where
    every other typed field refuses an empty value."""
    return any(char.isdigit() for char in text)


def beyond_int64(value: Any) -> bool:
    """Whether ``value`` is an integer no column of any supported database holds: a filter,
    an id or a key that is one matches no row and must not reach the driver (Django 4.2's
    SQLite backend declares no range, and its driver raises ``OverflowError``)."""
    return isinstance(value, int) and not MIN_INT <= value <= MAX_INT


#: what :func:`column_value` raises for a value the column cannot hold
UNREADABLE = (ValidationError, ValueError, TypeError, OverflowError)


def column_value(target: Any, raw: Any) -> Any:
    """``raw`` (a header's text) as the column ``target`` holds it, or one of
    :data:`UNREADABLE`: the one reading of a tenant value, which the tenant filter and the
    scope's canonical organization id share
    (:func:`django_arc.organizations.canonical_organization_id`)."""
    value = target.to_python(raw)
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("a NUL character")  # PostgreSQL text cannot hold it
    target.run_validators(value)
    if beyond_int64(value):
        # Django 4.2's SQLite backend gives integer columns no range validators
        raise OverflowError(value)
    return value


def integer_range(model_field: Any) -> tuple[int, int]:
    """The values an integer column holds on every database Django supports: the ranges
    Django declares for the field type (``IntegerField`` is 32 bits). A field's own
    ``validators`` use the current database's range instead, and SQLite's is 64 bits for every
    integer type, so ``?pages[gt]=3000000000`` was 200 there and 400 on PostgreSQL."""
    low, high = BaseDatabaseOperations.integer_field_ranges.get(
        model_field.get_internal_type(), (MIN_INT, MAX_INT)
    )
    return max(low, MIN_INT), min(high, MAX_INT)


def parse_value(
    model_field: Any,
    raw: str,
    portable: bool = True,
    nul: bool = False,
    wide_durations: bool = False,
) -> Any:
    """Parse a query-string value with the model field's own type rules.

    Raises :class:`_Refused` with a message for anything the database would choke on
    (NUL characters and lone surrogates, out-of-range integers, non-finite numbers, bad
    dates). An integer outside :func:`integer_range` is refused on every database, unless
    ``portable`` is false (a keyset cursor: it holds what a row holds, and SQLite may hold
    more than PostgreSQL would); so is a number the field's ``validators`` refuse, unless
    ``portable`` is false (a row may hold one: Django validates in ``full_clean()`` only),
    and so is a float's NaN or infinity (a database's float column may hold them).
    A NUL character is refused unless ``nul`` (a cursor, on a database that holds one:
    :func:`holds_nul`) and the column is text (:func:`_text_column`): only a text
    column can hold one, and a date, time or number parse ignores a trailing NUL
    (``fromisoformat``), so a forged ``"2024-01-01\\x00"`` was read as a place in the walk.
    A duration beyond what a 64-bit count of microseconds holds (:data:`MAX_DURATION`, about
    292 000 years) is refused too (SQLite's driver raised ``OverflowError``: a 500), unless
    ``wide_durations`` (a cursor, on a database whose durations are intervals: PostgreSQL,
    where a row may hold one) and ``portable`` is false."""
    target = _concrete(model_field)
    _check_text(raw, nul=nul and _text_column(target))
    if isinstance(target, models.BooleanField):
        lowered = raw.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise _Refused("must be true or false")
    if not portable and raw == "NaN" and isinstance(target, models.DecimalField):
        # a cursor's decimal NaN is what the row holds (PostgreSQL's numeric holds it; no
        # infinity: a DecimalField has a precision), which Django's to_python() refuses:
        # the walk goes past it as past a float's (it renders as null)
        return decimal.Decimal("NaN")
    if foreign_numeral(target, raw):
        # int(), float(), Decimal() and UUID() read "1_0" as 10 (PEP 515) and Arabic-Indic
        # digits as ASCII ones: a value no JSON number spells, and no cursor arc writes,
        # read as another
        raise _Refused(f"'{raw[:50]}' is not a valid {_type_name(target)}")
    if _STRUCTURED and isinstance(target, _STRUCTURED):
        return _structured_value(target, raw, portable, nul, wide_durations)
    if isinstance(target, models.DurationField) and not spells_a_duration(raw):
        raise _Refused(f"'{raw[:50]}' is not a valid {_type_name(target)}")
    try:
        value = target.to_python(raw)
    except (
        ValidationError,
        ValueError,
        TypeError,
        OverflowError,
        decimal.InvalidOperation,
        ArithmeticError,
    ):
        raise _Refused(f"'{raw[:50]}' is not a valid {_type_name(target)}") from None
    if isinstance(target, _NUMERIC_FIELDS):
        if beyond_int64(value):
            raise _Refused("is out of range")
        if portable and isinstance(value, int) and isinstance(target, models.IntegerField):
            low, high = integer_range(target)
            if not low <= value <= high:
                raise _Refused("is out of range")
        if portable and isinstance(value, float) and not math.isfinite(value):
            # a cursor's float is what the row holds: PostgreSQL's float8 holds NaN and the
            # infinities, SQLite's REAL the infinities (written outside the API), and the
            # walk goes past them in the database's order (they render as null)
            raise _Refused("must be a finite number")
        if isinstance(value, decimal.Decimal) and not value.is_finite():
            raise _Refused("must be a finite number")
        try:
            if portable:
                target.run_validators(value)
            elif isinstance(target, models.DecimalField):
                # the column's digits still bound a cursor's decimal (no row holds a
                # larger one: a forged cursor), but not the project's validators:
                # Django runs them in ``full_clean()`` only, and rows written past it (a
                # script, an import, a validator added later) are listed and paged on
                DecimalValidator(target.max_digits, target.decimal_places)(value)
        except ValidationError:
            raise _Refused("is out of range") from None
    if (
        isinstance(value, timedelta)
        and not MIN_DURATION <= value <= MAX_DURATION
        and (portable or not wide_durations)
    ):
        raise _Refused("is out of range")
    if portable and isinstance(target, models.GenericIPAddressField):
        # to_python() checks an IPv6 address only (one with a colon): ``?ip=abc`` reached
        # PostgreSQL's ``inet`` (a 500) and matched nothing on SQLite, and ``?ip=`` is NULL
        # to the database (Django stores a blank address as NULL), so ``?ip[ne]=`` listed
        # the rows without an address. A cursor holds what the row holds (a text column on
        # SQLite takes any text written past full_clean()).
        try:
            if value == "":
                raise ValidationError("blank")
            target.run_validators(value)
        except ValidationError:
            raise _Refused(f"'{raw[:50]}' is not a valid {_type_name(target)}") from None
    if isinstance(value, datetime):
        try:
            value = _database_datetime(value)
        except OverflowError:
            raise _Refused("is out of range") from None
    return value


#: PostgreSQL's fields whose query value is JSON text (``?tags=["a","b"]``): read by
#: :func:`_structured_value`, not by the field's ``to_python()``
_STRUCTURED = tuple(f for f in (ArrayField, HStoreField, RangeField) if f is not None)
#: the ways a range's ``bounds`` are spelt (``[)`` includes its lower bound, not its upper)
RANGE_BOUNDS = frozenset(["[)", "(]", "()", "[]"])


def range_json(value: Any) -> dict[str, Any]:
    """A range (psycopg's ``Range``) as JSON's object: ``{"lower", "upper", "bounds"}``, or
    ``{"empty": true}`` for the empty range: what a range field renders, takes in a body
    and a query string, and what a keyset cursor holds."""
    if value.isempty:
        return {"empty": True}
    bounds = ("[" if value.lower_inc else "(") + ("]" if value.upper_inc else ")")
    return {"lower": value.lower, "upper": value.upper, "bounds": bounds}


def range_value(model_field: Any, data: Any) -> Any:
    """``data``, a body's JSON object (``{"lower": 1, "upper": 5, "bounds": "[)"}``), as a
    value of the range field ``model_field``, each bound read with the base field's rules;
    raises ``ValueError`` saying why not (a bound the column cannot hold, a lower bound
    above the upper: PostgreSQL's errors, so 500s)."""
    try:
        return _structured(model_field, data, True, False, False)
    except RecursionError:
        raise ValueError("is nested too deeply") from None
    except _Refused as exc:
        raise ValueError(str(exc)) from None


def refuse_json_constant(name: str) -> Any:
    """``json.loads``'s ``parse_constant``: ``NaN`` and the infinities are no JSON, and
    nothing a column compares with or stores."""
    raise ValueError(f"{name} is not JSON")


def _structured_value(
    target: Any, raw: str, portable: bool, nul: bool, wide_durations: bool
) -> Any:
    """``raw``, JSON text, as the value of ``target``, an ``ArrayField``, ``HStoreField``
    or range field, each element and bound read by :func:`parse_value` with the base
    field's rules. The fields' own ``to_python()`` read any JSON (``"abc"`` as the array
    ``["a", "b", "c"]``, ``{"1": 2}`` as ``[1]``) and check no element: a value PostgreSQL
    refuses (``[99999999999]`` for integers, a NUL in text, an array of arrays of unequal
    lengths, an hstore that is no object, a range whose lower bound passes its upper) was a
    500, and ``?attrs=1`` compared an hstore with an integer (a 500 too)."""
    try:
        data = json.loads(raw, parse_constant=refuse_json_constant)
    except (ValueError, RecursionError):
        raise _Refused(f"'{raw[:50]}' is not valid JSON") from None
    try:
        return _structured(target, data, portable, nul, wide_durations)
    except RecursionError:
        raise _Refused("is nested too deeply") from None


def structured(model_field: Any) -> bool:
    """Whether ``model_field``'s query value is JSON text (an ``ArrayField``,
    ``HStoreField`` or range field): its ``[in]``/``[nin]`` take one JSON array of such
    values, not comma-separated text (a comma is inside each value)."""
    return bool(_STRUCTURED) and isinstance(_concrete(model_field), _STRUCTURED)


def structured_values(model_field: Any, raw: str) -> list[Any]:
    """``raw``, an ``[in]``/``[nin]`` value of a structured field, read as one JSON array of
    the field's values (``?numbers[in]=[[1,2],[3]]``), each read as :func:`parse_value`
    reads the field's own. Split on commas, as other fields' lists are, no array of two
    elements, no hstore of two keys and no bounded range could be named (``[1,2]`` was the
    two values ``[1`` and ``2]``, each invalid JSON). An empty value is no value, the empty
    list, as ``[in]=`` is on every other field (``in`` matches no row, ``nin`` every row):
    read as JSON, it was a 400 on these fields only."""
    if raw == "":
        return []
    try:
        data = json.loads(raw, parse_constant=refuse_json_constant)
    except (ValueError, RecursionError):
        raise _Refused(f"'{raw[:50]}' is not valid JSON") from None
    if not isinstance(data, list):
        raise _Refused("must be a JSON array of values")
    if len(data) > MAX_IN_VALUES:
        raise _Refused(f"at most {MAX_IN_VALUES} values")
    target = _concrete(model_field)
    try:
        return [_structured(target, item, True, False, False) for item in data]
    except RecursionError:
        raise _Refused("is nested too deeply") from None


def _element_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _structured(target: Any, data: Any, portable: bool, nul: bool, wide: bool) -> Any:
    if ArrayField is not None and isinstance(target, ArrayField):
        if not isinstance(data, list):
            raise _Refused("must be a JSON array")
        base = target.base_field
        values = [
            None
            if item is None and not isinstance(base, ArrayField)
            else parse_value(base, _element_text(item), portable, nul, wide)
            for item in data
        ]
        if isinstance(base, ArrayField) and len({array_shape(v) for v in values}) > 1:
            raise _Refused("its arrays must have matching lengths")
        return values
    if HStoreField is not None and isinstance(target, HStoreField):
        # a number is the text it spells, as DRF's CharField (a body's hstore values) reads it
        if not isinstance(data, dict) or not all(
            v is None or type(v) in (str, int, float) for v in data.values()
        ):
            raise _Refused("must be a JSON object of strings")
        # in key order: PostgreSQL compares hstores whatever the order, and the query cache
        # keys the parsed value, so ``{"a":"1","b":"2"}`` and ``{"b":"2","a":"1"}`` are one
        # query and one entry (they were two)
        data = {k: v if v is None else str(v) for k, v in sorted(data.items())}
        for text in (*data, *(v for v in data.values() if v is not None)):
            _check_text(text)
        return data
    if not isinstance(data, dict) or not set(data) <= {"lower", "upper", "bounds", "empty"}:
        raise _Refused('must be a JSON object of "lower", "upper" and "bounds"')
    if data.get("empty") is True and set(data) == {"empty"}:
        return target.range_type(empty=True)
    if "empty" in data:
        raise _Refused('"empty" must be true, and alone')
    bounds = data.get("bounds", "[)")
    if not isinstance(bounds, str) or bounds not in RANGE_BOUNDS:
        # an array or object is unhashable: ``in`` a frozenset raised TypeError (a 500)
        raise _Refused(f"bounds must be one of {', '.join(sorted(RANGE_BOUNDS))}")
    if not portable and _concrete(target.base_field).get_internal_type() in _TIME_TYPES:
        infinite = _infinite_bound_range(target, data, bounds, nul, wide)
        if infinite is not None:
            return infinite
    lower, upper = (
        None
        if data.get(end) is None
        else parse_value(target.base_field, _element_text(data[end]), portable, nul, wide)
        for end in ("lower", "upper")
    )
    if lower is not None and upper is not None and lower > upper:
        raise _Refused("its lower bound must not be above its upper bound")
    return _canonical_range(target, lower, upper, bounds)


#: the internal types of the fields whose PostgreSQL columns hold ``infinity``
_TIME_TYPES = frozenset({"DateField", "DateTimeField"})


def _infinite_bound_range(
    target: Any, data: dict[str, Any], bounds: str, nul: bool, wide: bool
) -> Any:
    """A keyset cursor's range with an ``"infinity"``/``"-infinity"`` bound, as
    :class:`~django_arc.ranges.InfiniteBoundRange` (what the row holds, sent back as
    PostgreSQL's text), or ``None`` when neither bound is one. Bounds out of order
    (``infinity`` below a date) are refused: PostgreSQL's error, a 500 on a forged cursor."""
    ends = [data.get("lower"), data.get("upper")]
    if not any(isinstance(end, str) and end in INFINITE for end in ends):
        return None
    lower, upper = (
        end
        if end is None or (isinstance(end, str) and end in INFINITE)
        else parse_value(target.base_field, _element_text(end), False, nul, wide)
        for end in ends
    )
    if (lower == "infinity" and upper not in (None, "infinity")) or (
        upper == "-infinity" and lower not in (None, "-infinity")
    ):
        raise _Refused("its lower bound must not be above its upper bound")
    return InfiniteBoundRange.of(lower, upper, bounds)


def rendered_alike(model_field: Any, value: Any) -> list[Any]:
    """``value`` (a filter's range) and the ranges PostgreSQL holds apart from it that
    render as it: a time range's unbounded side may be held as ``infinity``/``-infinity``,
    inclusive or not, which renders unbounded too (:mod:`django_arc.ranges`). Compared with
    the unbounded range alone, ``?window=`` with the very value a row shows did not find
    it, and ``[ne]`` listed it. Any other value is itself alone."""
    target = _concrete(model_field)
    if (
        RangeField is None
        or not isinstance(target, RangeField)
        or _concrete(target.base_field).get_internal_type() not in _TIME_TYPES
        or not isinstance(value, Range)
        or value.isempty
        or (value.lower is not None and value.upper is not None)
    ):
        return [value]
    lowers = (
        [(value.lower, value.bounds[0])]
        if value.lower is not None
        else [(None, "("), ("-infinity", "("), ("-infinity", "[")]
    )
    uppers = (
        [(value.upper, value.bounds[1])]
        if value.upper is not None
        else [(None, ")"), ("infinity", ")"), ("infinity", "]")]
    )
    alike = [value]
    for lower, low_bound in lowers:
        for upper, up_bound in uppers:
            if lower in INFINITE or upper in INFINITE:
                alike.append(InfiniteBoundRange.of(lower, upper, low_bound + up_bound))
    return alike


def time_range(model_field: Any) -> bool:
    """Whether ``model_field`` is a range of dates or times, whose PostgreSQL bounds may be
    ``infinity``/``-infinity`` (:mod:`django_arc.ranges`)."""
    target = _concrete(model_field)
    return (
        RangeField is not None
        and isinstance(target, RangeField)
        and _concrete(target.base_field).get_internal_type() in _TIME_TYPES
    )


class _ShownRange(lookups.Transform):
    """A time range as the API shows it, on PostgreSQL: a bound held as ``infinity`` or
    ``-infinity`` is that side unbounded (exclusive), as :mod:`django_arc.ranges` reads it.
    PostgreSQL orders a held ``infinity`` before an unbounded side, and ``-infinity`` after
    one: ``?window[lt]={"upper": "2030-01-01T00:00:00Z"}`` did not list a row shown as
    ``{"lower": null, "upper": "2020-01-01T00:00:00Z"}`` (held from ``-infinity``, compared
    by its lower bound first), and a row shown as ``{"lower": x, "upper": null}`` was below
    the very value it shows. ``gt``/``gte``/``lt``/``lte`` compare this; equality already
    matches the held values that render alike (:func:`rendered_alike`), and a keyset
    cursor compares the column itself (its order is the sort's, PostgreSQL's)."""

    lookup_name = "arc_shown"

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        return compiler.compile(self.lhs)

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, Any]:
        sql, params = compiler.compile(self.lhs)
        kind = self.lhs.output_field.db_type(connection)
        low, up = f"lower({sql})", f"upper({sql})"
        shown = (
            f"{kind}(CASE WHEN isfinite({low}) THEN {low} END, "
            f"CASE WHEN isfinite({up}) THEN {up} END, "
            f"(CASE WHEN lower_inc({sql}) AND isfinite({low}) THEN '[' ELSE '(' END) || "
            f"(CASE WHEN upper_inc({sql}) AND isfinite({up}) THEN ']' ELSE ')' END))"
        )
        # a NULL or empty range, and one with no infinite bound, is itself
        sql_out = (
            f"(CASE WHEN NOT isempty({sql}) AND (NOT isfinite({low}) OR NOT isfinite({up})) "
            f"THEN {shown} ELSE {sql} END)"
        )
        return sql_out, (*params,) * sql_out.count(sql)


if RangeField is not None:
    RangeField.register_lookup(_ShownRange)


def shown_path(model_field: Any, path: str) -> str:
    """``path``, or for a time range the range as shown (:class:`_ShownRange`): what a sort
    orders by and a keyset cursor compares. In PostgreSQL's order of the held values,
    ``?sort=window`` listed a row shown as ``{"lower": null, "upper": 2020}`` (held from
    ``-infinity``) after one shown as ``{"lower": null, "upper": 2025}``."""
    return f"{path}__{_ShownRange.lookup_name}" if time_range(model_field) else path


def _canonical_range(target: Any, lower: Any, upper: Any, bounds: str) -> Any:
    """The range PostgreSQL stores for ``lower``, ``upper`` and ``bounds``: an unbounded end
    is exclusive, a discrete range (integers, dates) is ``[)``, a range holding no value is
    the empty range. A write answered and sent in its event the range as the body spelt it
    (``{"lower": 1, "upper": 5, "bounds": "[]"}``, ``(5,5)``) where a GET read ``[1,6)``
    and ``{"empty": true}``; and an inclusive upper bound at the column's largest integer
    was PostgreSQL's "integer out of range" (a 500) once made exclusive."""
    low_inc = lower is not None and bounds[0] == "["
    up_inc = upper is not None and bounds[1] == "]"
    base = _concrete(target.base_field)
    step: Any = None
    if isinstance(base, models.IntegerField):
        step = 1
    elif isinstance(base, models.DateField) and not isinstance(base, models.DateTimeField):
        step = timedelta(days=1)
    if step is not None:
        try:
            if lower is not None and not low_inc:
                lower, low_inc = lower + step, True
            if upper is not None and up_inc:
                upper, up_inc = upper + step, False
        except OverflowError:
            raise _Refused("is out of range") from None
        if step == 1:
            low, high = integer_range(base)
            if any(end is not None and not low <= end <= high for end in (lower, upper)):
                raise _Refused("is out of range")
    if (
        lower is not None
        and upper is not None
        and (lower > upper or (lower == upper and not (low_inc and up_inc)))
    ):
        return target.range_type(empty=True)
    return target.range_type(lower, upper, ("[" if low_inc else "(") + ("]" if up_inc else ")"))


def array_shape(value: Any) -> tuple[int, ...]:
    """The lengths of ``value``'s nested arrays, level by level: PostgreSQL's arrays of
    arrays are rectangular (each level's arrays were checked by :func:`parse_value`)."""
    if not isinstance(value, list):
        return ()
    return (len(value), *(array_shape(value[0]) if value else ()))


#: the internal types of Django's text columns (``get_internal_type()``)
_TEXT_TYPES = frozenset({"CharField", "TextField", "SlugField", "EmailField", "URLField"})


def _identifier(text: str) -> str:
    """``text``, a field's name as a client sent it, as Python spells the name: Python
    normalises an identifier to NFKC (``größe`` in a model is the composed ``ö``), a client
    may send the decomposed ``o`` + U+0308 (macOS, some keyboards), which is the same name
    to a reader and matched no field. ASCII, every name but a few, is returned as is."""
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def _text_column(model_field: Any) -> bool:
    """Whether ``model_field``'s column is text: a ``CharField``/``TextField`` (a subclass
    too), or a field whose ``get_internal_type()`` names one, as Django maps a column type
    (a project's text field subclassing ``models.Field`` directly)."""
    if isinstance(model_field, (models.CharField, models.TextField)):
        return True
    try:
        return model_field.get_internal_type() in _TEXT_TYPES
    except Exception:  # noqa: BLE001 - a field that cannot say: not text, the NUL refused
        return False


def _database_datetime(value: datetime) -> datetime:
    """``value`` as the database compares it. With ``USE_TZ`` the database gets UTC:
    PostgreSQL refuses UTC offsets beyond ±15:59, which Python (and ISO 8601) allow up to
    ±23:59, and a value whose UTC form leaves years 1-9999 does not exist at all; a value
    without offset is a time in the time zone active for the request, as DRF reads one in a
    body and Django's forms (and django-filter) in a form: the caller's own, for a project
    activating each user's (``timezone.activate()``), else ``TIME_ZONE``. Without it,
    columns hold naive local times in ``TIME_ZONE`` and Django refuses an aware value
    on SQLite and MySQL (a 500): an offset is converted to that local time and dropped, as
    a naive value already is one (a keyset cursor over a datetime is written naive)."""
    if not settings.USE_TZ:
        if timezone.is_aware(value):
            value = timezone.make_naive(value, timezone.get_default_timezone())
        return value
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_current_timezone())
    return value.astimezone(UTC)


def _type_name(model_field: Any) -> str:
    return {
        "IntegerField": "integer",
        "BigIntegerField": "integer",
        "SmallIntegerField": "integer",
        "PositiveIntegerField": "integer",
        "PositiveSmallIntegerField": "integer",
        "PositiveBigIntegerField": "integer",
        "AutoField": "integer",
        "BigAutoField": "integer",
        "DecimalField": "number",
        "FloatField": "number",
        "DateTimeField": "date-time",
        "DateField": "date",
        "UUIDField": "UUID",
        "TimeField": "time",
        "DurationField": "duration",
        "GenericIPAddressField": "IP address",
    }.get(model_field.get_internal_type(), "value")


def path_fields(model: type[models.Model], path: str) -> list[Any]:
    """The model fields ``a__b__c`` reads, in order; raises ``FieldDoesNotExist``."""
    parts = path.split("__")
    current = model
    found: list[Any] = []
    for i, part in enumerate(parts):
        model_field = current._meta.get_field(part)
        found.append(model_field)
        if i < len(parts) - 1:
            if not model_field.is_relation or model_field.related_model is None:
                raise FieldDoesNotExist(f"'{part}' is not a relation")
            current = model_field.related_model
    return found


def resolve_path(model: type[models.Model], path: str) -> Any:
    """The model field at the end of ``a__b__c``; raises ``FieldDoesNotExist``."""
    return path_fields(model, path)[-1]


def model_attribute(model: type[models.Model], name: str) -> bool:
    """Whether ``name`` in a generated serializer's ``fields`` is a model property or method
    (``get_status_display``, ``__str__``), which DRF's ``ModelSerializer`` renders as a
    ``ReadOnlyField`` of what the row returns: no model field, no relation's accessor (DRF
    builds a relation for ``book_set``), nor a manager (the row has none to render), nor
    what Django's ``Model`` defines, overridden or not (``delete``, ``save``: DRF calls a
    method taking no argument to render it, and would delete the row it renders)."""
    from rest_framework.utils import model_meta

    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        pass
    else:
        return False
    if name in model_meta.get_field_info(model).relations:
        return False
    try:
        value = getattr(model, name)
    except AttributeError:
        return False
    if isinstance(value, (models.Manager, type)):
        return False  # no value of the row's (``objects``, ``DoesNotExist``)
    if name.startswith("_") and name != "__str__":
        return False  # the model's own machinery (``_meta``)
    # what Django's ``Model`` defines (``save``, ``delete``, ``pk``), a project's override
    # of it too (``def save(self, *args, **kwargs)``): DRF would call ``delete()`` to render
    # it. A method of a model Django ships (``AbstractUser.get_full_name``) is the row's.
    return name == "__str__" or not hasattr(models.Model, name)


@dataclass
class FilterField:
    param: str
    path: str
    operators: frozenset[str]
    model_field: Any
    multi_valued: bool = False  # see :func:`path_multi_valued`
    #: the resource field this filter reads (``author`` for ``author__name`` and for
    #: ``author_id``): the one field permissions judge it by
    root: str = ""

    def __post_init__(self) -> None:
        self.root = self.root or _root(self.path)

    def to_q(self, op: str, raw: str, param: str) -> Q:
        try:
            if op == "exists":
                lowered = raw.lower()
                if lowered not in ("true", "false", "1", "0"):
                    raise _Refused("must be true or false")
                present = lowered not in ("false", "0")
                if isinstance(self.model_field, models.FileField):
                    # a row without a file stores "" (rendered null), not NULL
                    if present:
                        return Q(**{f"{self.path}__isnull": False, f"{self.path}__gt": ""})
                    return Q(**{f"{self.path}__isnull": True}) | Q(**{self.path: ""})
                return Q(**{f"{self.path}__isnull": not present})
            if op in ("in", "nin"):
                if structured(self.model_field):
                    values = structured_values(self.model_field, raw)
                else:
                    parts = [p for p in raw.split(",") if p != ""]
                    if len(parts) > MAX_IN_VALUES:
                        raise _Refused(f"at most {MAX_IN_VALUES} values")
                    values = [self._choice(parse_value(self.model_field, p), p) for p in parts]
                values = [alike for v in values for alike in rendered_alike(self.model_field, v)]
                q = Q(**{f"{self.path}__in": values})
                return ~q if op == "nin" else q
            if op in TEXT_OPERATORS:
                _check_pattern(raw)
                path = pattern_path(self.model_field, self.path)
                return Q(**{f"{path}__{_TEXT_LOOKUPS[op]}": raw})
            value = parse_value(self.model_field, raw)
            if op in ("eq", "ne"):
                alike = rendered_alike(self.model_field, value)
                q = (
                    Q(**{f"{self.path}__in": alike})
                    if len(alike) > 1
                    else Q(**{self.path: self._choice(value, raw)})
                )
                return ~q if op == "ne" else q
            if time_range(self.model_field):
                # compared as shown: a held ``infinity`` is the unbounded side it renders as
                return Q(**{f"{self.path}__{_ShownRange.lookup_name}__{op}": value})
            return Q(**{f"{self.path}__{op}": value})
        except _Refused as exc:
            raise InvalidQuery(param, str(exc)) from None

    def _choice(self, value: Any, raw: str) -> Any:
        """``value``, if the field has choices and it is one of them (or empty on a field
        with ``blank=True``, as Django's ``Field.validate()`` lets one through): an equality
        against another value is a typo no row can match, refused as django-filter's
        ``ChoiceFilter`` refuses it. A bound (``gt``, ``lte``) need not be a choice. An
        empty value on a field without ``blank`` is no choice either (``?status=`` was an
        empty list where ``?status=zz`` is 400)."""
        model_field = self.model_field
        if not getattr(model_field, "choices", None):
            return value
        if value in model_field.empty_values and getattr(model_field, "blank", False):
            return value
        if any(value == key for key, _label in model_field.flatchoices):
            return value
        raise _Refused(f"'{raw[:50]}' is not a valid choice")


def path_multi_valued(model: type[models.Model], path: str) -> bool:
    """Whether ``path`` crosses a reverse foreign key or a many-to-many relation: a filter
    on it joins one row per related row, so a row matching twice is listed twice."""
    return any(_to_many(model_field) for model_field in path_fields(model, path))


def path_nullable(model: type[models.Model], path: str) -> bool:
    """Whether ``path`` can read NULL: a nullable column on the way (``owner__username``
    with a nullable ``owner`` joins no row for a NULL owner), or a reverse or many-to-many
    relation (a row without related rows)."""
    return any(
        getattr(model_field, "null", False)
        or _to_many(model_field)
        or (model_field.is_relation and model_field.auto_created)
        for model_field in path_fields(model, path)
    )


def _to_many(model_field: Any) -> bool:
    return bool(model_field.is_relation and (model_field.one_to_many or model_field.many_to_many))


@dataclass
class SortField:
    name: str
    path: str
    model_field: Any
    #: a column of the resource's model itself (usable in keyset cursors): not a related
    #: model's, nor a reverse one-to-one relation (``breed`` of a species), whose value is
    #: the related row, not a column of this one
    own: bool
    nullable: bool = False  # may read NULL (placed last explicitly, see ``order_by_args``)
    #: the resource field this sort reads (``owner`` for ``owner_id``): the one field
    #: permissions judge it by, resolved once (:func:`_root_field`)
    root: str = ""

    @classmethod
    def of(cls, model: type[models.Model], name: str) -> SortField:
        """The sort by ``name`` (a field path) of ``model``'s rows."""
        model_field = resolve_path(model, name)
        return cls(
            name,
            name,
            model_field,
            "__" not in name and getattr(model_field, "concrete", False),
            path_nullable(model, name),
            _root_field(model, name),
        )


@dataclass
class ListQuery:
    """A parsed list request (filters, search, sort, select); pagination parameters belong
    to the pagination classes (:mod:`django_arc.pagination`)."""

    q: Q | None = None
    ordering: list[tuple[SortField, bool]] = field(default_factory=list)  # (field, desc)
    sort_key: str = ""
    select: set[str] | None = None
    search: str | None = None
    #: ``search_fields`` as a condition, when the caller may search any of them
    search_q: Q | None = None
    #: a filter crosses a to-many relation: the rows need ``distinct()``
    distinct: bool = False


class QuerySpec:
    """Compiled query rules of one resource."""

    def __init__(self, resource: Any) -> None:
        model = resource.model
        self.model = model
        self.pk_name = model._meta.pk.name
        #: the fields holding the primary key's value: its own and, for a multi-table child,
        #: each parent's primary key (the parent link holds the same value)
        self.pk_names = primary_key_names(model)
        # hidden fields, and a serializer's write_only ones, are never filtered, sorted or
        # searched on, even when listed: no caller reads their values
        self.hidden: set[str] = set(resource.hidden_fields) | resource.field_rules.write_only
        if self.hidden & self.pk_names:
            self.hidden |= self.pk_names  # one value under several names: hiding one hides all
        self.known: set[str] = set()
        for f in model._meta.get_fields():
            if getattr(f, "concrete", False) or f.many_to_many:
                self.known.add(f.name)
                if getattr(f, "attname", None):
                    self.known.add(f.attname)
        self.filters: dict[str, FilterField] = {}
        filter_fields = resource.filter_fields or {}
        if not isinstance(filter_fields, dict):
            filter_fields = {name: ["eq", "in"] for name in filter_fields}
        for param, ops in filter_fields.items():
            root = _root_field(model, param)
            if root in self.hidden:
                continue
            normalized = frozenset(OPERATOR_ALIASES.get(op, op) for op in ops)
            model_field = resolve_path(model, param)
            multi = path_multi_valued(model, param)
            self.filters[param] = FilterField(param, param, normalized, model_field, multi, root)
            attname = getattr(model_field, "attname", None)
            if "__" not in param and attname and attname != param:
                self.filters.setdefault(
                    attname, FilterField(attname, param, normalized, model_field, multi, root)
                )
        self.sorts: dict[str, SortField] = {}
        for name in resource.sort_fields or ():
            if _root_field(model, name) in self.hidden:
                continue
            self.sorts[name] = SortField.of(model, name)
        #: ``search_fields`` as lookups, each with the field it reads (resolved once)
        self.search_roots: dict[str, str] = {
            f"{p}__icontains": root
            for p in (resource.search_fields or ())
            if (root := _root_field(model, p)) not in self.hidden
        }
        self.search_paths = list(self.search_roots)
        #: each search path as the lookup it runs (:func:`pattern_path`)
        self.search_lookups = {
            f"{p}__icontains": f"{pattern_path(resolve_path(model, p), p)}__icontains"
            for p in (resource.search_fields or ())
        }
        self.default_sort = resource.default_sort or ""
        self.default_ordering = self._parse_sort(self.default_sort, "sort", trusted=True)

    # -- parsing ---------------------------------------------------------------------------

    def names_filter(self, key: str) -> bool:
        """Whether ``key`` (a field's name, with or without a bracketed operator) names one
        of these filter fields as :meth:`parse` reads it: the name in NFKC, so that a body
        naming its filters (a bulk update's ``filter``) takes the spellings a query string
        takes (``größe`` sent decomposed), not a narrower set."""
        return _identifier(key).split("[", 1)[0] in self.filters

    def parse(
        self,
        params: Any,
        readable: set[str],
        restricted: frozenset[str] | set[str] = frozenset(),
    ) -> ListQuery:
        """Parse a list request. ``restricted`` names fields this caller may not read (or sees
        masked): filtering or sorting on them is refused like an unknown field, and search
        skips them, so their values cannot be probed through the query string. The primary
        key's names are one field here: restricting one (a multi-table child's parent's
        ``id``) restricts its parent link (``animal_ptr``), which holds the same value."""
        if not self.pk_names.isdisjoint(restricted):
            restricted = frozenset(restricted) | self.pk_names
        query = ListQuery()
        conditions: list[tuple[tuple[str, str, str], Q]] = []
        for key in params:
            raw = params.get(key)
            if raw is None:
                continue
            if reserved_param(key):
                continue
            match = _PARAM_RE.match(_identifier(key))
            if match is None:
                if "[" in key or "]" in key:
                    raise InvalidQuery(key, "malformed filter parameter")
                if key in self.known:
                    raise InvalidQuery(key, "filtering on this field is not allowed")
                continue
            name, op = match.group(1), match.group(2)
            filter_field = self.filters.get(name)
            if filter_field is not None and filter_field.root in restricted:
                filter_field = None
            if filter_field is None:
                if op is None and name not in self.known:
                    continue  # an unknown plain parameter is ignored (tracking tags etc.)
                raise InvalidQuery(key, "filtering on this field is not allowed")
            sent = op or "eq"
            op = OPERATOR_ALIASES.get(sent, sent)
            if op in REFUSED_OPERATORS:
                raise InvalidQuery(key, f"operator '{sent}' is not supported")
            if op not in OPERATORS:
                raise InvalidQuery(key, f"unknown operator '{shown(sent)}'")
            if op not in filter_field.operators:
                raise InvalidQuery(key, f"operator '{sent}' is not allowed on '{name}'")
            condition = filter_field.to_q(op, raw, key)
            # a tie between one field's conditions is broken by the parsed value, not its
            # text: ``[1,2]`` and ``[1, 2]`` are one value (see below)
            conditions.append(((name, op, repr(condition)), condition))
            query.distinct = query.distinct or filter_field.multi_valued
        if conditions:
            # combined in the order of their fields, operators and values, not the order
            # they were sent in: ``?a&b`` and ``?b&a`` are one query, and one query cache
            # entry, as are ``?a[eq]=1&b`` and ``?b&a=1``, and ``?a=1&a[eq]=2`` and
            # ``?a[eq]=2&a=1`` (one field and operator twice: the parsed values break the
            # tie, so ``?a=[ 3]&a[eq]=[1,2]`` and ``?a=[3]&a[eq]=[1, 2]`` are one too)
            conditions.sort(key=lambda pair: pair[0])
            combined = conditions[0][1]
            for _, c in conditions[1:]:
                combined &= c
            query.q = combined

        search = params.get("search")
        # a term of whitespace only is no term, as an empty one (DRF's SearchFilter splits
        # it into no words, arc 2.9 trims it away): it listed the rows holding a space,
        # and was 400 on a resource without search_fields
        if search and not search.isspace():
            try:
                _check_pattern(search)
            except _Refused as exc:
                raise InvalidQuery("search", str(exc)) from None
            query.search = search
            paths = [p for p, root in self.search_roots.items() if root not in restricted]
            if paths:
                term_q = Q()
                for path in paths:
                    term_q |= Q(**{self.search_lookups[path]: search})
                query.search_q = term_q

        sort = params.get("sort")
        if sort:
            query.ordering = self._parse_sort(sort, "sort", restricted=restricted)
            query.sort_key = sort
        else:
            query.ordering = self.default_ordering
            query.sort_key = self.default_sort

        select = params.get("select")
        # names only: ``select=,`` or ``select=%20`` names no field and, as ``select=``,
        # selects every readable one (it rendered the primary key alone)
        chosen = {_identifier(s.strip()) for s in (select or "").split(",") if s.strip()}
        if chosen:
            unknown = sorted(chosen - readable)
            if unknown:
                raise InvalidQuery("select", f"unknown field(s): {', '.join(unknown)}")
            query.select = chosen
        return query

    def _parse_sort(
        self,
        sort: str,
        param: str,
        trusted: bool = False,
        restricted: frozenset[str] | set[str] = frozenset(),
    ) -> list[tuple[SortField, bool]]:
        ordering: list[tuple[SortField, bool]] = []
        seen: set[str] = set()
        for part in sort.split(","):
            part = part.strip()
            if not part:
                continue
            desc = part.startswith("-")
            name = _identifier(part.lstrip("-+"))
            sort_field = self.sorts.get(name)
            if sort_field is not None and sort_field.root in restricted:
                sort_field = None
            if sort_field is None:
                if trusted:
                    sort_field = SortField.of(self.model, name)
                else:
                    raise InvalidQuery(param, f"sorting by '{name}' is not allowed")
            if name not in seen:
                seen.add(name)
                ordering.append((sort_field, desc))
        return ordering

    # -- applying --------------------------------------------------------------------------

    def order_by_args(self, query: ListQuery) -> list[Any]:
        """ORDER BY for a query. NULLs sort last in both directions on every backend (SQLite
        and PostgreSQL disagree by default), so offset and keyset pages agree. That includes
        a column read through a nullable or reverse relation (``owner__username``), which is
        NULL where no row joins; a path that can never read NULL keeps a plain ORDER BY so
        its indexes stay usable."""
        args: list[Any] = []
        for sort_field, desc in query.ordering:
            expr = F(shown_path(sort_field.model_field, sort_field.path))
            nulls = {"nulls_last": True} if sort_field.nullable else {}
            args.append(expr.desc(**nulls) if desc else expr.asc(**nulls))
        # deterministic pages and a unique keyset tie-break: the key's own value. Not its
        # name: a primary key that is a relation (a multi-table child's ``animal_ptr``, a
        # one-to-one ``primary_key=True``) is ordered by Django by the related model's
        # ``Meta.ordering`` when named, a column that ties; ``pk`` is never followed.
        args.append("pk")
        return args

    def apply(self, queryset: QuerySet, query: ListQuery, searched: bool = False) -> QuerySet:
        """Filters, ``search_fields`` search (unless a preset ``searched`` already) and the
        ordering. A search no field serves is refused. A filter or search across a to-many
        relation lists each row once (``reviews__body[icontains]=good`` joins every matching
        review)."""
        distinct = query.distinct
        if query.q is not None:
            queryset = queryset.filter(query.q)
        if query.search and not searched:
            if query.search_q is None:
                raise InvalidQuery("search", "search is not enabled for this resource")
            queryset = queryset.filter(query.search_q)
            distinct = distinct or self._search_crosses_relations()
        if distinct:
            queryset = queryset.distinct()
        return queryset.order_by(*self.order_by_args(query))

    def _search_crosses_relations(self) -> bool:
        return any(p.count("__") > 1 for p in self.search_paths)

    # -- keyset cursors ----------------------------------------------------------------------

    def keyset_error(
        self, query: ListQuery, restricted: frozenset[str] | set[str] = frozenset()
    ) -> str | None:
        """Why ``query``'s ordering cannot be paged by cursor (a related field), or None.

        A cursor is readable base64 JSON of the last row's sort values, and a forged one
        filters on them: an ordering by a field in ``restricted`` (one the caller may not
        read, or sees masked: only the trusted ``default_sort`` can name one) is not paged by
        cursor for that caller, and the answer does not name the field. Nor is one whose
        primary key (every cursor's tiebreak, :meth:`_keys`) is restricted, under any of its
        names (a multi-table child's parent's ``id``)."""
        if not self.pk_names.isdisjoint(restricted):
            return "cursor pagination is not available for this list"
        for sort_field, _desc in query.ordering:
            if sort_field.root in restricted:
                return "cursor pagination is not available for this list's default sort"
            if not sort_field.own:
                return f"cursor pagination cannot sort by '{sort_field.name}'"
        return None

    def _keys(self, query: ListQuery) -> list[tuple[str, Any, bool]]:
        keys = [(sf.path, sf.model_field, desc) for sf, desc in query.ordering]
        keys.append((self.pk_name, self.model._meta.pk, False))
        return keys

    def encode_cursor(self, obj: Any, query: ListQuery) -> str:
        values = [getattr(obj, getattr(mf, "attname", path)) for path, mf, _ in self._keys(query)]
        payload = json.dumps(
            {"s": query.sort_key, "v": values}, cls=_CursorEncoder, separators=(",", ":")
        )
        return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")

    def decode_cursor(self, cursor: str, query: ListQuery, using: str | None = None) -> list[Any]:
        """The values of a cursor :meth:`encode_cursor` wrote, read as the rows' columns
        hold them, or :class:`InvalidQuery`. ``using`` is the database the list reads: where
        its text holds a NUL character (SQLite), a row may hold one and so may the cursor
        after it, which was refused as a filter value is (the walk ended at that row)."""
        nul = using is not None and holds_nul(using)
        wide = using is not None and connections[using].features.has_native_duration_field
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            if not isinstance(data, dict) or data.get("s") != query.sort_key:
                raise ValueError
            raw_values = data["v"]
            keys = self._keys(query)
            if not isinstance(raw_values, list) or len(raw_values) != len(keys):
                raise ValueError
            values = []
            for (_path, model_field, _desc), raw in zip(keys, raw_values, strict=True):
                if raw is None:
                    values.append(None)
                else:
                    # an array's, hstore's or range's value as the JSON text it was
                    text = json.dumps(raw) if isinstance(raw, (list, dict)) else str(raw)
                    values.append(
                        parse_value(model_field, text, portable=False, nul=nul, wide_durations=wide)
                    )
            return values
        except (
            ValueError,
            TypeError,
            KeyError,
            UnicodeError,
            binascii.Error,
            RecursionError,  # JSON nested deeper than Python's stack: no cursor of ours
            _Refused,
        ):
            raise InvalidQuery("after", "invalid cursor") from None

    def after_q(self, query: ListQuery, after: list[Any]) -> Q:
        """Rows strictly after the cursor's values in ``query``'s ordering."""
        keys = self._keys(query)
        result = Q(pk__in=[])
        equal_so_far = Q()
        for (path, model_field, desc), value in zip(keys, after, strict=True):
            nullable = getattr(model_field, "null", False)
            path = shown_path(model_field, path)
            if isinstance(value, InfiniteBoundRange):
                # compared as the sort reads it, shown (:class:`_ShownRange`)
                value = Range(value.lower, value.upper, value.bounds)
            if value is not None:
                if isinstance(value, decimal.Decimal) and value.is_nan():
                    # Django's DecimalField refuses to prepare a NaN (to_python()): the
                    # database's own, typed as the column
                    value = Cast(Value("NaN"), output_field=model_field)
                beyond = Q(**{f"{path}__{'lt' if desc else 'gt'}": value})
                if nullable:
                    beyond |= Q(**{f"{path}__isnull": True})  # NULLs sort last
                result |= equal_so_far & beyond
                equal_so_far &= Q(**{path: value})
            else:
                equal_so_far &= Q(**{f"{path}__isnull": True})
        return result
