"""Serializers built once per resource.

DRF's ``ModelSerializer`` introspects the model and rebuilds every field on each instantiation,
i.e. on every request. :class:`ArcSerializerMixin` does that introspection once per class and
afterwards only re-instantiates the prototype fields (cheap), so a generated serializer costs
little more than a hand-written plain ``Serializer``.
"""

from __future__ import annotations

import copy
from typing import Any

from rest_framework import serializers


class ArcSerializerMixin:
    """Caches the result of ``get_fields()`` per serializer class."""

    def get_fields(self) -> dict[str, serializers.Field]:
        cls = type(self)
        proto = cls.__dict__.get("_arc_field_prototypes")
        if proto is None:
            proto = super().get_fields()
            cls._arc_field_prototypes = proto
        return {name: _clone(f) for name, f in proto.items()}


def _clone(field: serializers.Field) -> serializers.Field:
    # Plain fields are rebuilt from their constructor arguments (what DRF's own
    # ``Field.__deepcopy__`` does, minus deep-copying shared, read-only arguments such as a
    # related field's queryset, which DRF clones with ``.all()`` on use anyway). Nested
    # serializers carry bound children, so they get a real deep copy.
    if isinstance(field, serializers.BaseSerializer):
        return copy.deepcopy(field)
    return field.__class__(*field._args, **field._kwargs)


def build_serializer_class(resource: Any) -> type[serializers.BaseSerializer]:
    """The serializer a resource uses: the user's ``serializer_class`` (with field caching
    mixed in) or a ``ModelSerializer`` over ``resource.serializer_fields``."""
    user_class = resource.serializer_class
    if user_class is not None:
        if issubclass(user_class, ArcSerializerMixin):
            return user_class
        return type(
            user_class.__name__,
            (ArcSerializerMixin, user_class),
            {"__module__": user_class.__module__},
        )

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
        {"Meta": meta, "__module__": __name__},
    )
