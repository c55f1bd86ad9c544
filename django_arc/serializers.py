"""Serializers built once per resource.

DRF's ``ModelSerializer`` introspects the model and rebuilds every field on each instantiation,
i.e. on every request. :class:`ArcSerializerMixin` does that introspection once per class and
afterwards only re-instantiates the prototype fields (cheap), so a generated serializer costs
little more than a hand-written plain ``Serializer``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from django.db import models
from rest_framework import serializers

from .events.event import unstorable_char


class ArcSerializerMixin:
    """Caches the result of ``get_fields()`` per serializer class."""

    def get_fields(self) -> dict[str, serializers.Field]:
        cls = type(self)
        proto = cls.__dict__.get("_arc_field_prototypes")
        if proto is None:
            proto = super().get_fields()
            cls._arc_field_prototypes = proto
        return {name: _clone(f) for name, f in proto.items()}

    @property
    def _readable_fields(self):
        # DRF walks ``fields`` for every row; the resource's read plan (field permissions,
        # ``?select=``) names fields this caller must not get, so they are never rendered.
        readable = self.__dict__.get("_arc_readable")
        if readable is None:
            omit = self.context.get("arc_omit") or ()
            readable = [
                f for f in self.fields.values() if not f.write_only and f.field_name not in omit
            ]
            self.__dict__["_arc_readable"] = readable
        return readable


def _clone(field: serializers.Field) -> serializers.Field:
    # A prototype field is never bound: a copy of its attribute dict is a field in the state
    # its constructor left it in, without re-running that constructor (error-message MRO
    # walk, validator set-up) — that is what makes a cached serializer cheap. ``bind()`` and
    # per-request changes (a narrowed related queryset) then only touch the copy's own
    # attributes. Fields holding other fields (nested serializers, ``ListField.child``,
    # ``many=True`` relations) bind those children in ``__init__``, so they get a real copy.
    if isinstance(field, serializers.BaseSerializer) or _has_children(field):
        return copy.deepcopy(field)
    clone = object.__new__(field.__class__)
    clone.__dict__.update(field.__dict__)
    if "_validators" in clone.__dict__:
        clone._validators = list(clone._validators)
    return clone


def _has_children(field: serializers.Field) -> bool:
    return "child" in field.__dict__ or "child_relation" in field.__dict__


class ArcPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """DRF's related field, with an out-of-range integer id refused as "does not exist".

    DRF turns ``TypeError``/``ValueError`` from the lookup into a validation error but not
    ``OverflowError``, which Django 4.2's SQLite backend raises for an id beyond 64 bits
    (Django 5 answers "no such row" itself): without this, ``{"author": 1e19}`` is a 500.
    """

    def to_internal_value(self, data: Any) -> Any:
        try:
            return super().to_internal_value(data)
        except OverflowError:
            self.fail("does_not_exist", pk_value=data)


class ArcFloatField(serializers.FloatField):
    """DRF's float field without ``"NaN"``/``"Infinity"``/``"1e999"``, which it accepts: JSON
    cannot carry them back (DRF's renderer and PostgreSQL's ``jsonb`` refuse them), so the
    row's event could not be stored and the row could not be rendered. Django's form
    ``FloatField`` refuses them the same way."""

    def to_internal_value(self, data: Any) -> float:
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        return value


#: what a 64-bit integer column holds (SQLite, PostgreSQL ``bigint``)
_INT64 = (-(2**63), 2**63 - 1)


class ArcIntegerField(serializers.IntegerField):
    """DRF's integer field, bounded to 64 bits when the model field sets no range: Django 4.2
    gives SQLite integer fields no range validators, so ``{"quantity": 10**40}`` reached the
    database driver (``OverflowError``, a 500) instead of being a 400 naming the field."""

    def __init__(self, **kwargs: Any) -> None:
        if not kwargs.get("read_only"):
            kwargs.setdefault("min_value", _INT64[0])
            kwargs.setdefault("max_value", _INT64[1])
        super().__init__(**kwargs)


class ArcJSONField(serializers.JSONField):
    """DRF's JSON field, refusing NUL characters and lone surrogates as DRF's ``CharField``
    does: PostgreSQL's ``jsonb`` cannot store them (and a surrogate is not even UTF-8, so the
    response could not be rendered), so they are a 400 naming the field on every database
    rather than a 500. (``NaN`` cannot arrive: request JSON is parsed strictly, and form
    bodies reach the field as plain strings.)"""

    default_error_messages = {
        "null_characters": "Null characters are not allowed.",
        "surrogate_characters": "Surrogate characters are not allowed: U+{code_point:X}.",
    }

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        char = unstorable_char(value)
        if char == "\x00":
            self.fail("null_characters")
        if char is not None:
            self.fail("surrogate_characters", code_point=ord(char))
        return value


def build_serializer_class(resource: Any) -> type[serializers.BaseSerializer]:
    """The serializer a resource uses: the user's ``serializer_class`` (with field caching
    mixed in) or a ``ModelSerializer`` over ``resource.serializer_fields``.

    Fields a ``ModelSerializer`` builds from the model are the stricter ones below, in a
    user's class too unless it chose its own ``serializer_field_mapping`` or
    ``serializer_related_field``; fields a class declares are left alone."""
    user_class = resource.serializer_class
    if user_class is not None:
        if issubclass(user_class, ArcSerializerMixin):
            return user_class
        attrs: dict[str, Any] = {"__module__": user_class.__module__}
        if issubclass(user_class, serializers.ModelSerializer):
            model_serializer = serializers.ModelSerializer
            if user_class.serializer_field_mapping is model_serializer.serializer_field_mapping:
                attrs["serializer_field_mapping"] = _FIELD_MAPPING
            if user_class.serializer_related_field is model_serializer.serializer_related_field:
                attrs["serializer_related_field"] = ArcPrimaryKeyRelatedField
        return type(user_class.__name__, (ArcSerializerMixin, user_class), attrs)

    meta = type(
        "Meta",
        (),
        {
            "model": resource.model,
            "fields": list(resource.serializer_fields),
            "read_only_fields": sorted(resource.read_only_set & set(resource.serializer_fields)),
        },
    )
    name = f"{resource.model.__name__}ResourceSerializer"
    return type(
        name,
        (ArcSerializerMixin, serializers.ModelSerializer),
        {
            "Meta": meta,
            "__module__": __name__,
            "serializer_related_field": ArcPrimaryKeyRelatedField,
            "serializer_field_mapping": _FIELD_MAPPING,
        },
    )


_FIELD_MAPPING = {
    **serializers.ModelSerializer.serializer_field_mapping,
    **{
        model_field: ArcIntegerField
        for model_field, field in serializers.ModelSerializer.serializer_field_mapping.items()
        if field is serializers.IntegerField
    },
    models.FloatField: ArcFloatField,
    models.JSONField: ArcJSONField,
}
