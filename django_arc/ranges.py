"""Reading PostgreSQL's time ranges whose bound is ``infinity``.

PostgreSQL's ``date``, ``timestamp`` and ``timestamptz`` hold ``infinity`` and
``-infinity``, which no Python ``date`` or ``datetime`` holds: psycopg refuses to load one
(``DataError``), so a row whose ``DateTimeRangeField`` was written outside the API as
``'[2020-01-01,infinity)'`` (raw SQL, an import, another application) made every list and
get reading it a 500. Such a bound is read as the range's unbounded side, which is what it
means for every value a Python row can hold: the API renders ``{"upper": null}``. The value
read remembers PostgreSQL's own (:class:`InfiniteBoundRange`): a save of the row writes it
back as it was, and a keyset cursor carries it. Filters and sorts compare such a range as
shown (``query.shown_path``), so they agree with the answer.

A plain ``DateField`` or ``DateTimeField`` holding ``infinity`` still fails psycopg on read,
as it does in Django itself: no value of the API's type holds it (a range's infinite bound
and its unbounded side hold the same instants; ``null`` is no date, and a client sending the
row back would write it). :func:`infinite_fields` names the fields holding one, for the
answer (a 500 in the envelope whose ``details`` name them); psycopg's binary format (which
Django does not ask for) is left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import DataError, models
from django.db.models import BooleanField, F, Func
from rest_framework import serializers

try:
    from psycopg import adapters
    from psycopg.adapt import Dumper
    from psycopg.types.range import Range, RangeLoader, load_range_text
except ImportError:  # pragma: no cover - psycopg2, or no driver: nothing is registered
    adapters = Dumper = Range = RangeLoader = load_range_text = None  # type: ignore[assignment,misc]

#: the text of PostgreSQL's infinite dates and times
INFINITE = frozenset(["infinity", "-infinity"])
#: the range types whose subtype may be infinite
TIME_RANGES = ("daterange", "tsrange", "tstzrange")


class InfiniteBoundRange(Range or object):  # type: ignore[misc]
    """A range PostgreSQL holds with an ``infinity`` or ``-infinity`` bound: as Python reads
    it, that side unbounded (and exclusive, as PostgreSQL stores an unbounded side), which
    the API renders; ``stored`` keeps PostgreSQL's own bounds, ``(lower, upper, bounds)``
    with ``"infinity"``/``"-infinity"`` for an infinite side, which a keyset cursor carries
    so that the next page compares with the value the row holds (compared as unbounded,
    a walk sorted by such a range served the same rows again, for ever)."""

    __slots__ = ("stored",)

    def __eq__(self, other: object) -> bool:
        # PostgreSQL holds it apart from the unbounded range it renders as: equal to that
        # one, Django's ``__in`` lookup (an ``OrderedSet`` of its values) dropped it as a
        # duplicate, so a filter could not name the row's own value beside the unbounded one
        if isinstance(other, InfiniteBoundRange):
            return self.stored == other.stored
        return False if isinstance(other, Range) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.stored)

    def __getstate__(self) -> dict[str, Any]:
        # Range's own reads ``self.__slots__``, which is now only ours
        return {slot: getattr(self, slot) for slot in (*Range.__slots__, "stored")}

    @classmethod
    def of(cls, lower: Any, upper: Any, bounds: str) -> Any:
        """The range whose bounds are ``lower`` and ``upper`` (each a value, ``None`` or
        one of :data:`INFINITE`) and ``bounds`` as PostgreSQL holds them."""
        shown_lower = None if lower in INFINITE else lower
        shown_upper = None if upper in INFINITE else upper
        flags = ("[" if shown_lower is not None and bounds[0] == "[" else "(") + (
            "]" if shown_upper is not None and bounds[1] == "]" else ")"
        )
        value = cls(shown_lower, shown_upper, flags)
        value.stored = (lower, upper, bounds)
        return value

    def literal(self) -> str:
        """PostgreSQL's text of the range ``stored`` names (a cursor's value, sent cast to
        the column's type: no Python value holds ``infinity``)."""
        lower, upper, bounds = self.stored
        ends = [
            "" if end is None else f'"{end if end in INFINITE else end.isoformat()}"'
            for end in (lower, upper)
        ]
        return f"{bounds[0]}{ends[0]},{ends[1]}{bounds[1]}"


class InfiniteBoundRangeDumper(Dumper or object):  # type: ignore[misc]
    """Sends an :class:`InfiniteBoundRange` as PostgreSQL's text of the range it holds
    (typed by the column or the other operand): the row's value as read. Sent as a
    ``Range`` it was the unbounded range, so saving such a row for any other field (a
    ``PATCH`` of its name) rewrote its ``infinity`` as unbounded."""

    def dump(self, obj: Any) -> bytes:
        return obj.literal().encode()


def _infinite_bound_loader(name: str) -> type:
    """A text loader of the range type ``name`` reading an infinite bound as unbounded
    (:class:`InfiniteBoundRange`)."""
    subtype = {"daterange": "date", "tsrange": "timestamp", "tstzrange": "timestamptz"}[name]

    class InfiniteBoundRangeLoader(RangeLoader):
        subtype_oid = adapters.types[subtype].oid

        def load(self, data: Any) -> Any:
            value = load_range_text(data, self._bound)[0]
            if value.isempty or not (value.lower in INFINITE or value.upper in INFINITE):
                return value
            return InfiniteBoundRange.of(value.lower, value.upper, value.bounds)

        def _bound(self, data: Any) -> Any:
            text = bytes(data).decode()
            return text if text in INFINITE else self._load(data)

    InfiniteBoundRangeLoader.__name__ = InfiniteBoundRangeLoader.__qualname__ = (
        f"InfiniteBound{name.title()}Loader"
    )
    return InfiniteBoundRangeLoader


_LOADERS = {} if adapters is None else {name: _infinite_bound_loader(name) for name in TIME_RANGES}


def read_infinite_bounds_as_unbounded(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created``'s receiver: on a PostgreSQL connection through psycopg 3, the
    time ranges are read with :func:`_infinite_bound_loader`'s loaders, and written back
    as read (:class:`InfiniteBoundRangeDumper`); per connection: a project's other
    connections are left alone."""
    if connection.vendor != "postgresql" or not _LOADERS:
        return
    raw = connection.connection
    if not hasattr(raw, "adapters"):
        return  # psycopg2's connection
    for name, loader in _LOADERS.items():
        raw.adapters.register_loader(adapters.types[name].oid, loader)
    raw.adapters.register_dumper(InfiniteBoundRange, InfiniteBoundRangeDumper)


#: psycopg's refusal to load a date or time PostgreSQL holds as ``infinity``/``-infinity``
_INFINITE_LOAD = re.compile(r"^(date|timestamp) too (large|small) .*'-?infinity'$")


def refused_infinity(exc: BaseException) -> bool:
    """Whether ``exc`` is psycopg's refusal to load an infinite date or time (Django's
    ``DataError`` from a fetch): a row written outside the API, not a fault of the request
    nor of the code reading it."""
    return isinstance(exc, DataError) and _INFINITE_LOAD.match(str(exc)) is not None


def infinite_fields(queryset: Any, fields: Mapping[str, Any]) -> list[str]:
    """The output paths of those of ``fields`` (output name to bound serializer field: the
    ones the caller may read) showing a date or time a row of ``queryset`` holds as
    ``infinity`` or ``-infinity``: one ``EXISTS`` each, asked only after a read was refused
    (:func:`refused_infinity`), so that the answer says which field the project must
    repair. A field is found by its ``source`` (``when = DateTimeField(source="at")`` is
    ``when``), and through nested serializers, dotted sources and slug relations into
    related rows, named by its path in the answer (``parent.at``); a value no query reaches
    (a method, a property, a relation's ``__str__``) is not named. ``queryset`` is the
    caller's (narrowed, filtered): no other row is looked at, but a related row is searched
    as the relation joins it, not as a nested serializer may narrow it."""
    found = []
    for name, path in _date_paths(queryset.model, fields, "", ()):
        finite = Func(F(path), function="isfinite", output_field=BooleanField())
        if queryset.alias(arc_finite=finite).filter(arc_finite=False).exists():
            found.append(name)
    return found


def _date_paths(
    model: Any, fields: Mapping[str, Any], shown: str, attrs: tuple[str, ...]
) -> Iterator[tuple[str, str]]:
    """(output path, query path) of each readable field among ``fields``, found under the
    attributes ``attrs`` of ``model``'s rows, that shows a concrete date or time column."""
    for name, field in fields.items():
        if field.write_only:
            continue
        here = (*attrs, *field.source_attrs)
        if isinstance(field, serializers.ListSerializer):
            field = field.child
        elif isinstance(field, serializers.ManyRelatedField):
            field = field.child_relation
        if isinstance(field, serializers.SlugRelatedField):
            here = (*here, field.slug_field)
        elif isinstance(field, serializers.Serializer):
            if not here or _column(model, here) is not None:
                yield from _date_paths(model, field.fields, f"{shown}{name}.", here)
            continue
        column = _column(model, here) if here else None
        if column is not None and isinstance(column[1], models.DateField) and column[1].concrete:
            yield f"{shown}{name}", column[0]


def _column(model: Any, attrs: tuple[str, ...]) -> tuple[str, Any] | None:
    """The query path and the model field the attributes ``attrs`` of ``model``'s rows
    read, through relations (a reverse one by its accessor name); ``None`` when one of them
    is no model field (a property, a method) or a step after it is no relation."""
    parts, field = [], None
    for attr in attrs:
        if field is not None:
            model = field.related_model
            if model is None:
                return None
        meta = model._meta
        try:
            field = meta.get_field(attr)
        except FieldDoesNotExist:
            field = next((f for f in meta.related_objects if f.get_accessor_name() == attr), None)
            if field is None:
                return None
        parts.append(field.name)
    return "__".join(parts), field
