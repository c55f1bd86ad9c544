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
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import DataError, models
from django.db.models import BooleanField, F, Func

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


def infinite_fields(queryset: Any, names: Any) -> list[str]:
    """Those of the fields ``names`` (of ``queryset``'s model) that are dates or times and
    hold ``infinity`` or ``-infinity`` in a row of ``queryset``: one ``EXISTS`` each, asked
    only after a read was refused (:func:`refused_infinity`), so that the answer says which
    field the project must repair. ``queryset`` is the caller's (narrowed): no other row
    is looked at."""
    found = []
    for name in names:
        try:
            field = queryset.model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if not isinstance(field, models.DateField) or not field.concrete:
            continue
        finite = Func(F(field.attname), function="isfinite", output_field=BooleanField())
        if queryset.alias(arc_finite=finite).filter(arc_finite=False).exists():
            found.append(name)
    return found
