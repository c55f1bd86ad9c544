"""rev-fixes58: review of rev-methods, fix-generic, cost4, rev-fixes56 and the choice enum."""

from __future__ import annotations

from django.db import models

from django_arc.exceptions import InvalidQuery
from django_arc.filters import _operator_schema
from django_arc.query import FilterField


def _rf58_priority() -> models.IntegerField:
    field = models.IntegerField(choices=[(1, "low"), (2, "high")])
    field.set_attributes_from_name("priority")
    return field


def _rf58_refused(field: models.Field, op: str, raw: str) -> bool:
    ffilter = FilterField("priority", "priority", frozenset({op}), field)
    try:
        ffilter.to_q(op, raw, "priority")
    except InvalidQuery:
        return True
    return False


def test_rf58_an_equality_on_an_integer_field_with_choices_takes_one_of_them():
    """The parser refuses ``?priority=3`` on ``IntegerField(choices=[1, 2])`` (400, not a
    valid choice) as it does a text field's, so the schema says ``enum``: an integer schema
    alone let schemathesis send 3 as a valid request and see it refused."""
    field = _rf58_priority()
    assert _rf58_refused(field, "eq", "3") and not _rf58_refused(field, "eq", "2")
    assert _operator_schema("eq", field)["enum"] == [1, 2]
    assert _operator_schema("ne", field)["enum"] == [1, 2]
    items = _operator_schema("in", field)["items"]
    assert _rf58_refused(field, "in", "1,3") and not _rf58_refused(field, "in", "1,,2")
    assert items == {"anyOf": [{**items["anyOf"][0]}, {"type": "string", "maxLength": 0}]}
    assert items["anyOf"][0]["enum"] == [1, 2]
    # a bound need not be a choice
    assert not _rf58_refused(field, "gte", "3")
    assert "enum" not in _operator_schema("gte", field)
