"""Input checks shared by django-arc's admin pages (outbox, dead letters, audit log, service
clients).

Django's changelist hands its query string to the database as it comes, and each of these
was a 500 with a traceback: on PostgreSQL a NUL character in a filter value (``?type=%00``,
``?resource=%00``); a selected row id that is not a primary key (``_selected_action=abc``,
or one past the column's range); a time filter (``?created_at__gte=``) whose offset
PostgreSQL does not take (past 15:59) or which lands outside years 1 to 9999 in UTC
(SQLite's conversion overflows); and a lookup none of the list's filters sends, which Django
takes on any column: ``?id__regex=(`` (an invalid pattern), ``?payload__contains=`` (no JSON
containment on SQLite), ``?created_at__year=0``. These checks answer them with a 400 that
names the parameter before any query runs; a list takes its filters' parameters and a
column's exact value (``?organization_id=5``), nothing else.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from django.conf import settings
from django.contrib.admin import SimpleListFilter, helpers
from django.contrib.admin.views.main import ERROR_FLAG, IGNORED_PARAMS, PAGE_VAR
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db import models
from django.http import HttpResponseBadRequest
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from .query import beyond_int64


def is_primary_key(model: type[models.Model], value: Any) -> bool:
    """``value`` converts to a primary key of ``model`` that its column can hold."""
    pk = model._meta.pk
    try:
        converted = pk.to_python(value)
        pk.run_validators(converted)
    except (ValidationError, ValueError, TypeError, OverflowError):
        return False
    if beyond_int64(converted):
        return False
    return converted is not None


#: PostgreSQL's ``timestamptz`` takes offsets up to 15:59 either way
_MAX_OFFSET = datetime.timedelta(hours=16)
#: the comparisons a changelist's date filters send on a time column (and a plain ``?field=``)
_COMPARISONS = frozenset({"", "exact", "gt", "gte", "lt", "lte"})


def is_comparable_time(model: type[models.Model], name: str, value: str) -> bool:
    """``False`` when parameter ``name`` compares a ``DateTimeField`` of ``model`` with a
    time no database can compare: an offset past PostgreSQL's, or a time outside years 1 to
    9999 once in UTC; without ``USE_TZ``, any offset (the columns hold local times).
    Whatever is not such a time (another field, text that is no date) is left to Django,
    which answers a value it cannot read with its own "?e=1" page."""
    field_name, _, lookup = name.partition("__")
    try:
        field = model._meta.get_field(field_name)
    except FieldDoesNotExist:
        return True
    if not isinstance(field, models.DateTimeField) or lookup not in _COMPARISONS:
        return True
    return _comparable(value)


#: what Django's field filters add to their field's path (choices, booleans, all values:
#: ``exact``/``isnull``; dates: ``gte``/``lt``/``isnull``; empty values: ``isempty``)
_FIELD_FILTER_SUFFIXES = ("", "__exact", "__isnull", "__gte", "__lt", "__isempty")
#: the changelist's own parameters (page, order, search, "show all", popups, facets, error)
_CHANGELIST_PARAMS = frozenset({*IGNORED_PARAMS, PAGE_VAR, ERROR_FLAG})


def filter_parameters(model: type[models.Model], list_filter: Any) -> frozenset[str]:
    """The query-string parameters a changelist of ``model`` takes as filters: those its
    list filters send, and a column's exact value (``?organization_id=5``) for every column
    but JSON ones."""
    names: set[str] = set()
    for spec in list_filter:
        if isinstance(spec, type) and issubclass(spec, SimpleListFilter):
            names.add(spec.parameter_name)
            continue
        path = spec[0] if isinstance(spec, (list, tuple)) else spec
        names.update(f"{path}{suffix}" for suffix in _FIELD_FILTER_SUFFIXES)
    for field in model._meta.concrete_fields:
        if not isinstance(field, models.JSONField):
            names.update((field.name, f"{field.name}__exact"))
    return frozenset(names)


def _comparable(value: str) -> bool:
    try:
        parsed = parse_datetime(value.strip())
        if parsed is None:
            day = parse_date(value.strip())
            parsed = None if day is None else datetime.datetime.combine(day, datetime.time())
    except ValueError:
        return True  # a date that does not exist: Django's to_python refuses it
    if parsed is None:
        return True
    if not settings.USE_TZ:
        # columns hold naive local times: Django refuses to send an aware value to SQLite,
        # MySQL or Oracle (``ValueError``, a 500 when the page ran its query); refused on
        # every database, so the page answers alike on each. The admin's own date filter
        # sends local times without offset then.
        return timezone.is_naive(parsed)
    try:
        if timezone.is_naive(parsed):  # read in the current time zone, as Django does
            parsed = timezone.make_aware(parsed)
        offset = parsed.utcoffset()
        if offset is not None and abs(offset) >= _MAX_OFFSET:
            return False
        parsed.astimezone(datetime.UTC)
    except (OverflowError, ValueError):
        return False
    return True


def refused_input(
    request: Any, model: type[models.Model], filters: frozenset[str] | None = None
) -> HttpResponseBadRequest | None:
    """A 400 naming the first parameter a changelist request may not carry, else ``None``;
    with ``filters`` (:func:`filter_parameters`), any other lookup is one."""
    for source in (request.GET, request.POST):
        for name, values in source.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                return HttpResponseBadRequest(
                    f"Parameter {name!r} contains a NUL character.", content_type="text/plain"
                )
    for name, values in request.GET.lists():
        if filters is not None and name not in filters and name not in _CHANGELIST_PARAMS:
            return HttpResponseBadRequest(
                f"Parameter {name!r} is not a filter of this list (its filters' parameters "
                "and a column's exact value are).",
                content_type="text/plain",
            )
        if not all(is_comparable_time(model, name, value) for value in values):
            return HttpResponseBadRequest(
                f"Parameter {name!r} is not a time the database can compare (an offset "
                "within 15:59 of UTC, a year from 1 to 9999 in UTC; without USE_TZ, a "
                "local time without offset).",
                content_type="text/plain",
            )
    for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
        if not is_primary_key(model, value):
            return HttpResponseBadRequest(
                f"Parameter {helpers.ACTION_CHECKBOX_NAME!r} must hold ids of "
                f"{model._meta.verbose_name_plural}; {value[:40]!r} is not one.",
                content_type="text/plain",
            )
    return None


class RefuseOddInputMixin:
    """For a ``ModelAdmin``: its changelist (list, filters, search, actions) answers odd
    input, and a lookup none of its filters sends, with a 400 from :func:`refused_input`
    instead of a 500 (or a scan of every row's JSON)."""

    def changelist_view(self, request: Any, extra_context: Any = None) -> Any:
        if not self.has_view_or_change_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied  # a caller without access learns nothing from a 400
        filters = filter_parameters(
            self.model,  # type: ignore[attr-defined]
            self.get_list_filter(request),  # type: ignore[attr-defined]
        )
        refused = refused_input(request, self.model, filters)  # type: ignore[attr-defined]
        if refused is not None:
            return refused
        return super().changelist_view(request, extra_context)  # type: ignore[misc]


def id_spellings(term: str) -> list[str]:
    """The stored spellings an id search term may mean: as typed, lower-cased (a UUID
    pasted in capitals), and, for a term that spells a UUID another way (no dashes,
    ``{braces}``, ``urn:uuid:``), its dashed lowercase form, which is how object ids,
    request ids and event ids are stored. Exact values only: each is an index lookup."""
    spellings = {term, term.lower()}
    if len(term) <= 45:  # the longest UUID spelling: "urn:uuid:" and 36 characters
        try:
            spellings.add(str(uuid.UUID(term)))
        except ValueError:
            pass
    return sorted(spellings)
