"""Row conditions added to a queryset on every request, without the cost of ``filter()``.

Every route narrows its rows the same way: the tenant, soft-delete and permission conditions,
then the row the URL names. Written as ``filter()`` calls, Django resolves each keyword
through its whole filter machinery (name paths, joins, join promotion, lookup resolution) on
every request, and for a get or a cached read that resolution is a large share of django-arc's
own work. Almost all of these conditions are the simplest kind: a column of the model's own
table equal to a value, or null / not null. For those, :func:`narrow` adds the lookup Django
itself would build (the field's own ``exact`` / ``isnull`` lookup class on the base table's
column) straight to the query's ``WHERE``: the same SQL and the same parameters, which
``tests/test_narrowing.py`` checks condition by condition against ``filter()``.

Anything else (a path across a relation, another lookup, an OR or a negation, a ``None`` or a
model instance as the value, an inherited field, an annotation, a sliced or combined query)
goes through ``filter()`` unchanged, so the fast path is never the one that has to be right
about Django's semantics; one through a reverse foreign key or a many-to-many relation goes
through a ``filter()`` of its own, as a ``pk__in`` subquery, so that no row is repeated.

The caller's view of a table is the same on every request it makes: its tenant, "not
deleted", its owner id. With ``remember=True`` (the view's row conditions) such a lookup is
built once and each query gets a copy of it: building a lookup prepares its value through
the field, and compiling asks it whether it holds an aggregate or a window, each time the
same answers. The row the URL names is a new value on every request and is not remembered.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.core.signals import setting_changed
from django.db import models
from django.db.models import Q
from django.db.models.constants import LOOKUP_SEP
from django.db.models.lookups import Lookup
from django.db.models.sql.where import AND

#: the lookups added directly; every other lookup name goes through ``filter()``
_DIRECT_LOOKUPS = ("exact", "isnull")

#: the types a remembered lookup's value may have, exactly (a subclass may prepare itself
#: otherwise). The type is in the key too: ``True == 1`` for a dict, but a text column reads
#: them as ``"True"`` and ``"1"``.
_REMEMBERED_TYPES = frozenset({int, str, bool, uuid.UUID})
#: at most this many remembered lookups per process; when full, they are all forgotten
MAX_REMEMBERED = 1024
_remembered: dict[tuple[Any, ...], Lookup] = {}


def narrow(
    queryset: models.QuerySet, *conditions: Q | dict[str, Any], remember: bool = False
) -> models.QuerySet:
    """``queryset.filter(*conditions)`` (keyword dictionaries taken as ``Q(**d)``), with
    the plain column conditions added directly; a new queryset, as ``filter()`` returns.
    ``remember``: the conditions recur from request to request (see the module docstring)."""
    direct: list[tuple[models.Field, str, Any]] = []
    rest: list[Q] = []
    query = queryset.query
    simple_query = not query.is_sliced and not query.combinator
    for condition in conditions:
        q = condition if isinstance(condition, Q) else Q(**condition)
        leaves = _plain_leaves(q, queryset.model, query.annotations) if simple_query else None
        if leaves is None:
            rest.append(q)
        else:
            direct.extend(leaves)
    if rest and simple_query and _crosses_many(queryset.model, rest, query.annotations):
        # A condition through a reverse foreign key or a many-to-many relation (a preset's
        # ``Q(reviews__body="ok")``) joined one row per matching related row: a book with
        # two such reviews was listed twice, its lookup found two rows (a 404 for a row the
        # caller may read) and a bulk update by filter wrote it twice. The rows it lets
        # through are asked in a subquery instead (one ``filter()`` for all of them, so
        # conditions on the same relation still hold for the same related row), which
        # joins nothing into the queryset: no repeated rows, no ``distinct()`` to reconcile
        # with the list's ordering, and nothing added to a project's aggregate annotations.
        model = queryset.model
        queryset = queryset.filter(pk__in=model._base_manager.filter(*rest).values("pk"))
    else:
        queryset = queryset.filter(*rest) if rest else queryset.all()
    if direct:
        query = queryset.query
        alias = query.get_initial_alias()
        for field, lookup_name, value in direct:
            lookup_class = field.get_lookup(lookup_name)
            if remember and type(value) in _REMEMBERED_TYPES:
                lookup = _remembered_lookup(lookup_class, field, alias, value)
            else:
                lookup = lookup_class(field.get_col(alias), value)
            query.where.add(lookup, AND)
    return queryset


def _remembered_lookup(
    lookup_class: type[Lookup], field: models.Field, alias: str, value: Any
) -> Lookup:
    """A copy of the lookup built once for this class, column and value. Each query gets its
    own object, as a new lookup would be, so nothing a query does to its lookup reaches
    another; the copy shares the prepared value and the column, which Django's own query
    clones share too."""
    key = (lookup_class, field, alias, type(value), value)
    template = _remembered.get(key)
    if template is None:
        template = lookup_class(field.get_col(alias), value)
        # what compiling asks of every condition, answered here once
        template.contains_aggregate  # noqa: B018
        template.contains_over_clause  # noqa: B018
        if len(_remembered) >= MAX_REMEMBERED:
            _remembered.clear()
        _remembered[key] = template
    # copy.copy() without its generic reduce protocol: a lookup's state is its __dict__
    lookup = object.__new__(lookup_class)
    lookup.__dict__.update(template.__dict__)
    return lookup


def forget_lookups(**kwargs: Any) -> None:
    """Drop the remembered lookups: a field prepares a value with the settings (a naive
    datetime's text is read in ``TIME_ZONE``), so a changed setting may prepare it anew."""
    _remembered.clear()


setting_changed.connect(forget_lookups, dispatch_uid="django_arc.narrowing")


def _plain_leaves(
    q: Q, model: type[models.Model], annotations: dict[str, Any]
) -> list[tuple[models.Field, str, Any]] | None:
    """The ``(field, lookup, value)`` of every condition of ``q``, or ``None`` when any of
    them is not a plain column condition (then the whole ``q`` goes through ``filter()``)."""
    if q.negated or (q.connector != Q.AND and len(q.children) > 1):
        return None
    leaves = []
    for child in q.children:
        if isinstance(child, Q):
            nested = _plain_leaves(child, model, annotations)
            if nested is None:
                return None
            leaves.extend(nested)
            continue
        if not isinstance(child, tuple):  # an expression
            return None
        leaf = _plain_leaf(model, annotations, *child)
        if leaf is None:
            return None
        leaves.append(leaf)
    return leaves


def _plain_leaf(
    model: type[models.Model], annotations: dict[str, Any], name: str, value: Any
) -> tuple[models.Field, str, Any] | None:
    parts = name.split(LOOKUP_SEP)
    if len(parts) > 2 or parts[0] in annotations:
        return None
    lookup_name = parts[1] if len(parts) == 2 else "exact"
    if lookup_name not in _DIRECT_LOOKUPS:
        return None
    if lookup_name == "isnull" and not isinstance(value, bool):
        return None
    if (
        value is None
        or isinstance(value, models.Model)
        or hasattr(value, "resolve_expression")  # expressions, Q and subqueries
        or isinstance(value, list | tuple | set | frozenset | dict)
    ):
        return None
    meta = model._meta
    try:
        field = meta.pk if parts[0] == "pk" else meta.get_field(parts[0])
    except FieldDoesNotExist:
        return None
    # A column of this model's own table: not a relation's reverse side, not a many-to-many,
    # not a field inherited from a concrete parent (another table), not a composite key.
    if (
        not getattr(field, "concrete", False)
        or field.many_to_many
        or not getattr(field, "column", None)
        or field.model is not meta.concrete_model
        or len(getattr(field, "foreign_related_fields", ()) or ()) > 1
    ):
        return None
    return field, lookup_name, value


def _crosses_many(model: type[models.Model], conditions: list[Q], annotations: Any) -> bool:
    """Whether a condition of ``conditions`` reads a path through a reverse foreign key or a
    many-to-many relation (``reviews__body``). False when one names an annotation of the
    queryset, or compares with an expression (``F()``, which may name one): a subquery over
    the model would not know it. An expression as a condition (``Exists``) joins nothing."""
    crosses = False
    pending: list[Any] = list(conditions)
    while pending:
        child = pending.pop()
        if isinstance(child, Q):
            pending.extend(child.children)
            continue
        if not isinstance(child, tuple) or len(child) != 2:
            continue
        parts = str(child[0]).split(LOOKUP_SEP)
        if parts[0] in annotations or hasattr(child[1], "resolve_expression"):
            return False  # an ``F()`` may name an annotation too; ``filter()`` as before
        current: Any = model
        for part in parts:
            try:
                field = current._meta.pk if part == "pk" else current._meta.get_field(part)
            except (FieldDoesNotExist, AttributeError):
                break  # a lookup or a transform: the path ends here
            if not field.is_relation or field.related_model is None:
                break
            if field.one_to_many or field.many_to_many:
                crosses = True
            current = field.related_model
    return crosses
