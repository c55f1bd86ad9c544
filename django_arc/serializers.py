"""Serializers built once per resource.

DRF's ``ModelSerializer`` introspects the model and rebuilds every field on each instantiation,
i.e. on every request. :class:`ArcSerializerMixin` does that introspection once per class and
afterwards only re-instantiates the prototype fields (cheap), so a generated serializer costs
little more than a hand-written plain ``Serializer``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import decimal
import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.utils.encoding import smart_str
from rest_framework import serializers
from rest_framework.relations import MANY_RELATION_KWARGS
from rest_framework.utils import html
from rest_framework.utils.serializer_helpers import JSONBoundField
from rest_framework.validators import UniqueTogetherValidator

from .events.event import unstorable_char
from .parsers import ArcJSONParser, JSONNumber, nested_deeper_than
from .query import (
    MAX_DURATION,
    MAX_INT,
    MIN_DURATION,
    MIN_INT,
    UNSENDABLE,
    ArrayField,
    HStoreField,
    RangeField,
    array_shape,
    beyond_int64,
    foreign_digits,
    foreign_numeral,
    integer_range,
    range_json,
    range_value,
    refuse_json_constant,
    spells_a_duration,
)
from .ranges import InfiniteBoundRange

#: no default of the field's own (``_read_only_defaults``)
_NO_DEFAULT = object()


def _forced_row(column: Any, value: Any, view: Any) -> Any:
    """The row a preset forces on the relation ``column`` (a tenant's ``Organization``) when
    ``value`` is its key (``organization_id``): one query a request (kept on ``view``: a
    bulk write's items share it), asked only for a read-only field with a default of its
    own that does not name that row (``default=None``); ``value`` as it is for any other
    column, a row already, or a key naming no row (the save answers)."""
    related = getattr(column, "related_model", None)
    if not (column.many_to_one or column.one_to_one) or related is None:
        return value
    if value is None or isinstance(value, related):
        return value
    target = column.target_field.attname
    read = view.__dict__.setdefault("_arc_forced_rows", {}) if view is not None else {}
    key = (related, target, str(value))
    if key not in read:
        read[key] = related._base_manager.filter(**{target: value}).first()
    row = read[key]
    return value if row is None else row


class ArcSerializerMixin:
    """Caches the result of DRF's ``get_fields()`` per serializer class (a project's own
    ``get_fields()`` is called for every serializer, as DRF calls it: it may read the
    request).

    Around a project's own serializer it also applies the resource's field rules, which the
    generated serializer gets from its ``Meta``: hidden fields are left out, and fields no
    body may write (``read_only_fields``, the primary key, tenant and other preset-managed
    fields, ``read_only()``) are read-only, so the serializer neither requires nor accepts
    what the write guard keeps out of the body and the presets set themselves."""

    #: names to leave out / make read-only (set on the class built around a user serializer)
    _arc_hidden: frozenset[str] = frozenset()
    _arc_read_only: frozenset[str] = frozenset()

    def get_fields(self) -> dict[str, serializers.Field]:
        cls = type(self)
        proto = cls.__dict__.get("_arc_field_prototypes")
        if proto is None:
            proto = self._arc_adjusted(super().get_fields())
            if not _own_get_fields(cls):
                return proto  # the project's get_fields(): asked for every serializer
            cls._arc_field_prototypes = proto
        return {name: _clone(f) for name, f in proto.items()}

    def __getitem__(self, key: str) -> Any:
        """A range field's form input shows its JSON (as DRF shows a ``JSONField``'s), the
        text :meth:`ArcRangeField.get_value` reads back: DRF's plain ``BoundField`` showed
        the object's Python ``repr`` (``{'lower': 1, ...}``), no JSON, so a form sent back
        as shown was refused."""
        bound = super().__getitem__(key)  # type: ignore[misc]
        if isinstance(bound._field, ArcRangeField) and not isinstance(bound, JSONBoundField):
            return JSONBoundField(bound._field, bound.value, bound.errors, bound._prefix)
        return bound

    def build_standard_field(self, field_name: str, model_field: Any) -> tuple[Any, dict]:
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        return _db_default_optional(model_field, field_class, _called_path(kwargs))

    def build_relational_field(self, field_name: str, relation_info: Any) -> tuple[Any, dict]:
        return _db_default_optional(
            relation_info.model_field,
            *super().build_relational_field(field_name, relation_info),
        )

    def get_uniqueness_extra_kwargs(
        self, field_names: Any, declared_fields: Any, extra_kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        # DRF makes every field of a unique set (``unique_together``, a ``UniqueConstraint``)
        # required unless ``has_default()``, which knows ``default`` only: a field with a
        # ``db_default`` in one was required again, after :func:`_db_default_optional`
        # made it optional. A nullable one was given ``default=None`` instead, so a create
        # leaving it out stored NULL, not the database's default: optional too, nothing
        # sent for it. A project's own ``required`` or ``default`` in ``extra_kwargs`` stays.
        asked = {
            name
            for name, kwargs in extra_kwargs.items()
            if "required" in kwargs or "default" in kwargs
        }
        extra_kwargs, hidden = super().get_uniqueness_extra_kwargs(
            field_names, declared_fields, extra_kwargs
        )
        model = self.Meta.model
        for name, kwargs in extra_kwargs.items():
            if name in asked or _database_default(model, name) is _NO_DATABASE_DEFAULT:
                continue
            if kwargs.get("required") is True:
                kwargs["required"] = False
            elif "default" in kwargs and kwargs["default"] is None:
                if not model._meta.get_field(name).has_default():
                    del kwargs["default"]
                    kwargs["required"] = False
        return extra_kwargs, hidden

    def get_unique_together_validators(self) -> list[Any]:
        validators = super().get_unique_together_validators()
        model = self.Meta.model
        for index, validator in enumerate(validators):
            defaults = {}
            for name in (*validator.fields, *getattr(validator, "condition_fields", ())):
                field = self.fields.get(name)
                value = _database_default(model, getattr(field, "source", name))
                if value is not _NO_DATABASE_DEFAULT:
                    defaults[name] = value
            if defaults:
                validators[index] = _DatabaseDefaultedUnique(validator, defaults)
        return validators

    def _arc_adjusted(self, fields: dict[str, serializers.Field]) -> dict[str, serializers.Field]:
        cls = type(self)
        for name in cls._arc_hidden:
            fields.pop(name, None)
        for name in cls._arc_read_only & fields.keys():
            # a ``HiddenField`` takes nothing from a body: its value is the project's
            # default (``CurrentUserDefault()``), which read-only it never set, so that
            # ``owner`` listed in ``read_only_fields`` (or ruled ``read_only()``) was saved
            # null (or refused by the database) on every create
            if not isinstance(fields[name], serializers.HiddenField):
                _make_read_only(fields[name])
        read_many_in_batches(fields)
        refuse_non_finite_floats(fields)
        read_decimals_as_written(fields)
        return fields

    def _read_only_defaults(self) -> dict[str, Any]:
        # DRF hands its validators (``Meta.validators``: a project's
        # ``UniqueTogetherValidator(fields=["organization", "sku"])``) the read-only fields'
        # defaults besides the body's values; the values presets force on the write (the
        # tenant, the owner) are those fields' values too, which the validator's
        # "required" check and its lookup need: without them, every create was 400
        # ``organization: This field is required`` and the check never ran
        defaults = super()._read_only_defaults()
        view = self.context.get("view")
        write_values = getattr(view, "write_values", None)
        if write_values is None or not self.validators:
            return defaults
        forced = write_values(self.instance)
        if not forced:
            return defaults
        model = getattr(getattr(self, "Meta", None), "model", None)
        for field in self.fields.values():
            source = field.source
            # a forced value wins over the field's own default: it is what ``save()`` stores
            # (``save(**write_values)``), so it is what the validator must judge; with the
            # default (``default=None``) a taken set passed it and the row's constraint
            # answered 409 instead of the validator's 400
            if not field.read_only or "." in source or source == "*":
                continue
            try:
                column = model._meta.get_field(source) if model else None
                attname = column.attname if column is not None else source
            except Exception:  # noqa: BLE001 - not a model column
                continue
            if attname in forced:
                value = forced[attname]
            elif source in forced:
                value = forced[source]
            else:
                continue
            own = defaults.get(source, _NO_DEFAULT)
            if own is not _NO_DEFAULT and (
                own == value
                or (
                    isinstance(own, getattr(column, "related_model", None) or ())
                    and str(own.pk) == str(value)
                )
            ):
                # the field's own default names the forced row (the caller's
                # ``Organization``, where the preset forces its id): a project's validator
                # may read it (``attrs["organization"].slug``), which an id made a 500
                continue
            if column is not None and (
                own is not _NO_DEFAULT or field.default is not serializers.empty
            ):
                # a default of its own (``None``, another row; DRF skips it on a partial
                # update, where it still is the field's): the field hands its validators a
                # row, so the forced one is handed as a row too, not its id
                value = _forced_row(column, value, view)
            defaults[source] = value
        return defaults

    def to_representation(self, instance: Any) -> Any:
        # a row's non-finite number rendered by a field arc did not build (a project's own
        # ``FloatField``, a method field's ``inf``, a decimal DRF's encoder makes a float
        # NaN) renders as ``null``, as :class:`ArcFloatField` renders its own: DRF's strict
        # renderer raised on it, and every page holding the row was a 500 (decisions.md)
        data = super().to_representation(instance)
        if not isinstance(data, dict):
            data = _row_mapping(type(self), data)
        data = json_finite(data)
        # a ``DecimalField`` a project declares renders a ``numeric`` NaN as DRF's string
        # "NaN", a number no reader parses as one: ``null``, as arc's own renders it
        for name in self._decimal_names:
            # a string only: a subclass may render a structure (an amount and its
            # currency), which is its own and no set member (unhashable)
            rendered = data.get(name)
            if isinstance(rendered, str) and rendered in _DECIMAL_NON_FINITE:
                data[name] = None
        return data

    @property
    def _decimal_names(self) -> list[str]:
        names = self.__dict__.get("_arc_decimals")
        if names is None:
            names = [
                f.field_name
                for f in self._readable_fields
                if isinstance(f, serializers.DecimalField) and not isinstance(f, ArcDecimalField)
            ]
            self.__dict__["_arc_decimals"] = names
        return names

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


def _row_mapping(serializer_class: type, data: Any) -> dict[str, Any]:
    """A row a project's ``to_representation()`` rendered as a mapping that is no ``dict``
    (a ``MappingProxyType``, a ``Mapping`` of its own), as a ``dict``: the pass making
    non-finite numbers ``null`` reads dicts only, and a declared ``DecimalField``'s
    ``"NaN"`` is replaced in place. Anything else (a list, a string) is the project's error,
    said at first use: a row is an object on the wire, which every part of arc reads by
    field name, and DRF's own ``serializer.data`` refuses it (``ReturnDict``); no system
    check can tell, since what the method returns is known only when it runs on a row."""
    if isinstance(data, Mapping):
        return dict(data)
    raise ImproperlyConfigured(
        f"{serializer_class.__qualname__}.to_representation() returned a "
        f"{type(data).__name__}; a resource's serializer renders a row as a mapping "
        "(a dict) of its fields"
    )


#: what DRF's ``ModelSerializer.get_fields()`` asks the serializer while building its fields:
#: a project overriding one (``get_field_names()`` adding a staff-only field,
#: ``get_extra_kwargs()`` making one read-only on update) chooses its fields per serializer
#: as surely as one overriding ``get_fields()`` itself
FIELD_HOOKS = (
    "get_field_names",
    "get_default_field_names",
    "get_extra_kwargs",
    "include_extra_kwargs",
    "get_uniqueness_extra_kwargs",
    "build_field",
    "build_standard_field",
    "build_relational_field",
    "build_nested_field",
    "build_property_field",
    "build_url_field",
    "build_unknown_field",
)


#: how DRF's ``DecimalField`` writes a non-finite decimal as a string (``str(Decimal)``)
_DECIMAL_NON_FINITE = frozenset(("NaN", "-NaN", "sNaN", "-sNaN", "Infinity", "-Infinity"))


def json_finite(value: Any) -> Any:
    """``value`` with each non-finite ``float`` or ``Decimal`` in it (``NaN``, the
    infinities; in nested dicts and lists too) as ``None``, which JSON can carry; ``value``
    itself, not a copy, when it holds none (a project's own structure is never changed; a
    tuple holding one comes back a list, which JSON writes alike)."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return value if value.is_finite() else None
    if isinstance(value, dict):
        out = None
        for key, item in value.items():
            if type(item) in _PLAIN:
                continue
            new = json_finite(item)
            if new is not item:
                if out is None:
                    out = copy.copy(value)
                out[key] = new
        return value if out is None else out
    if isinstance(value, (list, tuple)):
        changed = None
        for at, item in enumerate(value):
            if type(item) in _PLAIN:
                continue
            new = json_finite(item)
            if new is not item:
                if changed is None:
                    changed = list(value)
                changed[at] = new
        return value if changed is None else changed
    return value


#: what :func:`json_finite` passes over at once: most of a row
_PLAIN = frozenset({str, int, bool, type(None)})


def project_defines(classes: Any, names: Any) -> bool:
    """Whether one of ``names`` is answered, among ``classes`` (an MRO, or its tail), by a
    class other than DRF's own: the first class defining it, the one Python calls
    (:class:`ArcSerializerMixin` is passed over). A project mixin listed after
    ``ModelSerializer`` defines ``get_fields()`` in vain: DRF's answers."""
    for name in names:
        owner = next(
            (k for k in classes if name in k.__dict__ and k is not ArcSerializerMixin), None
        )
        if (
            owner is not None
            and owner is not object
            and not owner.__module__.startswith("rest_framework.")
        ):
            return True
    return False


#: where a serializer may choose its fields per request: ``get_fields()``, the hooks it calls,
#: and the constructor (DRF's own "dynamically modifying fields" example pops and adds
#: ``self.fields`` in ``__init__``, the request in its context)
PER_REQUEST_HOOKS = ("get_fields", "__init__", *FIELD_HOOKS)


def chooses_fields_per_request(cls: type) -> bool:
    """Whether a serializer of ``cls`` may have other fields per request than built without
    one (:data:`PER_REQUEST_HOOKS` defined by a class other than DRF's or arc's mixin): what
    is read of it once, without a request, does not tell what a request's serializer holds."""
    return project_defines(cls.__mro__, PER_REQUEST_HOOKS)


def _own_get_fields(cls: type) -> bool:
    """Whether the ``get_fields()`` :class:`ArcSerializerMixin` answers for is DRF's own,
    a function of the class alone, which may be kept for the class. A project's override
    may choose fields by the request or the context (as DRF allows: it calls it for every
    serializer); kept for the class, the first caller's fields were every caller's — a
    staff-only field served to everyone once a staff member had asked. So may an override
    of a method DRF's ``get_fields()`` calls (:data:`FIELD_HOOKS`), wherever it sits in
    the MRO, as long as it is the one called (:func:`project_defines`)."""
    known = cls.__dict__.get("_arc_own_get_fields")
    if known is None:
        mro = cls.__mro__
        after = mro[mro.index(ArcSerializerMixin) + 1 :]
        known = not project_defines(after, ("get_fields",)) and not project_defines(
            mro, FIELD_HOOKS
        )
        cls._arc_own_get_fields = known
    return known


def _clone(field: serializers.Field) -> serializers.Field:
    # A prototype field is never bound: a copy of its attribute dict is a field in the state
    # its constructor left it in, without re-running that constructor (error-message MRO
    # walk, validator set-up) — that is what makes a cached serializer cheap. ``bind()`` and
    # per-request changes (a narrowed related queryset) then only touch the copy's own
    # attributes; the values that change in place (validators, error messages, style, a
    # mutable default, a declared queryset's rows) are copied, as DRF's deep copy gives them
    # to each serializer. Fields holding other fields (nested serializers, ``ListField.child``,
    # ``many=True`` relations) bind those children in ``__init__``, so they get a real copy.
    state = field.__dict__  # read once: this runs for every field of every serializer
    reading = state.get("to_internal_value")
    if isinstance(field, serializers.BaseSerializer) or _has_children(field):
        clone = copy.deepcopy(field)
        if field.read_only and not clone.read_only:
            # DRF's deep copy rebuilds a field from its constructor's arguments: a field
            # ``read_only_fields`` made read-only after construction would be writable again
            _make_read_only(clone)
    else:
        clone = _shallow_copy(field, state)
    if reading is not None and isinstance(reading, _OwnReading):
        # the prototype's reading ran the prototype's own ``to_internal_value``: a project
        # field reading ``self.context`` (the request) saw the cached field's, none; a deep
        # copy is rebuilt from the constructor's arguments, without it
        clone.to_internal_value = type(reading)(clone)
    return clone


def _shallow_copy(field: serializers.Field, state: dict[str, Any]) -> serializers.Field:
    """A field holding no other field: its attribute dict copied, and the values in it that
    change in place given their own copy."""
    clone = object.__new__(field.__class__)
    clone.__dict__.update(state)
    if "_validators" in state:
        validators = state["_validators"]
        holding = state.get("_arc_validators_hold_rows")
        if holding is None:  # looked at once per cached field, not per copy
            holding = field.__dict__["_arc_validators_hold_rows"] = any(
                map(_holds_queryset, validators)
            )
        clone._validators = [_own_validator(v) for v in validators] if holding else list(validators)
    messages = state.get("error_messages")
    if type(messages) is dict:
        # a serializer may reword a field's errors as it is built, for its caller (DRF
        # gives each its own fields): in the prototype's dict, one caller's wording was
        # every later caller's
        clone.error_messages = messages.copy()
    style = state.get("style")
    if type(style) is dict:
        # so may it restyle a field's form input (a placeholder for staff): the browsable
        # API drew one caller's for every later caller
        clone.style = style.copy()
    # the default is handed to the write as it is (``validated_data``): DRF's deep copy of
    # declared fields gives each serializer its own ``default={}``, which a ``create()``
    # completing it changed for every later request (another caller's row stamped with
    # the first caller's name). ``empty`` and a callable default are classes or factories.
    default = state.get("default", serializers.empty)
    if (
        default is not serializers.empty
        and type(default) not in _UNCHANGEABLE
        and not callable(default)
    ):
        clone.default = copy.deepcopy(default)
    queryset = state.get("queryset")
    if queryset is not None and isinstance(queryset, models.QuerySet):
        # a queryset keeps the rows it was evaluated for (``in``, ``list()``, a loop over
        # ``self.fields[...].queryset``): in the prototype's, the first request's rows were
        # every later request's. DRF's deep copy gives each its own, unevaluated; a
        # ``Manager`` (what a model serializer's relations hold) keeps no rows
        clone.queryset = queryset.all()
    return clone


def _own_validator(validator: Any) -> Any:
    """``validator``, or a copy of it when it holds a queryset (DRF's ``UniqueValidator``, a
    project's own): DRF builds a model field's validators afresh for every serializer, and
    a serializer narrowing one for its request (``validator.queryset =
    validator.queryset.filter(...)`` in ``__init__``) narrowed the cached field's, so every
    later request's check ran on all the narrowings at once (a taken value passed it: the
    database's 409 where the field's own 400 names it). Validators holding no queryset
    (lengths, patterns, functions) keep nothing a request changes."""
    if not _holds_queryset(validator):
        return validator
    own = object.__new__(type(validator))  # as the field itself is copied: its dict
    own.__dict__.update(validator.__dict__)
    return own


def _holds_queryset(validator: Any) -> bool:
    return "queryset" in getattr(validator, "__dict__", ())


#: the types of a default no caller can change in place
_UNCHANGEABLE = frozenset({type(None), bool, int, float, str, bytes, decimal.Decimal})


def _has_children(field: serializers.Field) -> bool:
    return "child" in field.__dict__ or "child_relation" in field.__dict__


def _db_default_optional(
    model_field: Any, field_class: Any, kwargs: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """A model field with a database default (``db_default``, Django 5.0+) is optional, as
    one with a ``default`` is: DRF asks ``has_default()``, which knows only ``default``, so
    the generated serializer required it (400 ``This field is required.``) though the
    database fills it in. Left out of a body, the INSERT stores the database's default."""
    has_db_default = getattr(model_field, "has_db_default", None)
    if has_db_default is not None and has_db_default() and not kwargs.get("read_only"):
        kwargs["required"] = False
    return field_class, kwargs


_NO_DATABASE_DEFAULT = object()
#: a database default Python cannot compute (an expression: ``Now()``, ``Lower("name")``)
_COMPUTED_BY_THE_DATABASE = object()


def _database_default(model: Any, name: str) -> Any:
    """The value the database stores in ``model``'s column ``name`` when an INSERT leaves it
    out (its ``db_default``, Django 5.0+): the constant, :data:`_COMPUTED_BY_THE_DATABASE`
    for an expression, :data:`_NO_DATABASE_DEFAULT` for a column without one (or a name
    that is no column)."""
    try:
        field = model._meta.get_field(name)
    except Exception:  # noqa: BLE001 - a serializer field that is no model field
        return _NO_DATABASE_DEFAULT
    has_db_default = getattr(field, "has_db_default", None)
    if has_db_default is None or not has_db_default():
        return _NO_DATABASE_DEFAULT
    default = field.db_default
    if isinstance(default, models.Value):
        return default.value
    if hasattr(default, "resolve_expression"):
        return _COMPUTED_BY_THE_DATABASE
    return default


class _DatabaseDefaultedUnique(UniqueTogetherValidator):
    """DRF's validator of a unique set holding a field with a database default (``defaults``:
    field name → its :func:`_database_default`), which a create may leave out. DRF's
    refused such a create (``This field is required.``); this one judges the value the
    database will store: a constant is looked up as if sent (a taken one is the 400 naming
    the set, as a sent one is), and for an expression the database judges alone (a
    violation is the write's 409, as for any constraint the serializer cannot check)."""

    def __init__(self, validator: UniqueTogetherValidator, defaults: dict[str, Any]) -> None:
        self.__dict__.update(validator.__dict__)
        self.arc_database_defaults = defaults

    def __call__(self, attrs: dict[str, Any], serializer: Any) -> None:
        if serializer.instance is None:
            left_out = {
                serializer.fields[name].source: value
                for name, value in self.arc_database_defaults.items()
                if serializer.fields[name].source not in attrs
            }
            if _COMPUTED_BY_THE_DATABASE in left_out.values():
                return
            attrs = {**attrs, **left_out}
        super().__call__(attrs, serializer)


def _called_path(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A ``FilePathField``'s directory as Django's own form field gets it: its ``path`` may
    be a callable (Django 3.0+, so a migration names no machine's directory), which DRF
    hands on as it is, and listing a function's files raised ``TypeError``: every serializer
    of the resource, so its routes, failed to build."""
    path = kwargs.get("path")
    if callable(path):
        kwargs["path"] = path()
    return kwargs


def _make_read_only(field: serializers.Field) -> None:
    # What ``read_only=True`` in the constructor would have set; a read-only field is
    # skipped by validation and by ``_writable_fields`` (so also by DRF's unique-together
    # validators, as for the generated serializer's ``Meta.read_only_fields``).
    field.read_only = True
    field.required = False


def _fraction_for_an_integer(pk: Any, data: Any) -> bool:
    """Whether ``data``, a JSON number with a fraction, is sent for an integer key, which
    ``int()`` would read as another row's (``1.5`` as 1; ``1.0000000000000000001`` is the
    float 1.0, and its text no integer). ``1.0`` is the integer 1, as ``"07"`` is 7."""
    if isinstance(data, bool) or not isinstance(data, float):
        return False
    if not isinstance(_concrete_key(pk), models.IntegerField):
        return False
    return not data.is_integer() or (isinstance(data, JSONNumber) and not data.exact())


def _concrete_key(pk: Any) -> Any:
    """The field holding a key's values: a multi-table child's parent link is its parent's
    key (the target's own key, followed to the end)."""
    while pk.is_relation and pk.target_field is not pk:
        pk = pk.target_field
    return pk


class ArcPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """DRF's related field, with an out-of-range integer id refused as "does not exist".

    DRF turns ``TypeError``/``ValueError`` from the lookup into a validation error but not
    ``OverflowError``, which Django 4.2's SQLite backend raises for an id beyond 64 bits
    (Django 5 answers "no such row" itself): without this, ``{"author": 1e19}`` is a 500.
    """

    def to_internal_value(self, data: Any) -> Any:
        # the related model's key, read once (each get_queryset() builds the narrowed rows)
        pk = self.get_queryset().model._meta.pk if self.pk_field is None else None
        if pk is not None and foreign_numeral(pk, data):
            # "1_0" or Arabic-Indic digits named row 10 or 1 (as the URL's id did)
            self.fail("does_not_exist", pk_value=data)
        if pk is not None and _fraction_for_an_integer(pk, data):
            # int() truncates: 1.5 (and 1.0000000000000000001, the float 1.0) named row 1,
            # where the URL's /1.5/ names none
            self.fail("does_not_exist", pk_value=data)
        known = self.preloaded()
        if known is not None:
            return self.from_preloaded(known, data)
        if pk is not None and isinstance(data, str):
            try:
                self.refuse_unmatchable(pk.to_python(data), data)
            except (TypeError, ValueError, DjangoValidationError):
                pass  # DRF's lookup refuses it, with the pk field's message
        try:
            return super().to_internal_value(data)
        except OverflowError:
            self.fail("does_not_exist", pk_value=data)

    def refuse_unmatchable(self, pk: Any, data: Any) -> None:
        """Refuse a parsed text ``pk`` no database compares, as DRF refuses it on SQLite: a
        NUL character (PostgreSQL raises ``DataError``, a 500 in DRF's lookup too) matches
        no row; a lone surrogate (no driver encodes it: DRF catches the ``ValueError``) is
        an incorrect type."""
        if isinstance(pk, str) and (found := UNSENDABLE.search(pk)) is not None:
            if found.group() == "\x00":
                self.fail("does_not_exist", pk_value=data)
            self.fail("incorrect_type", data_type=type(data).__name__)

    @classmethod
    def many_init(cls, *args: Any, **kwargs: Any) -> ArcManyRelatedField:
        """DRF's ``many=True``, as :class:`ArcManyRelatedField`."""
        list_kwargs = {"child_relation": cls(*args, **kwargs)}
        for key in kwargs:
            if key in MANY_RELATION_KWARGS:
                list_kwargs[key] = kwargs[key]
        return ArcManyRelatedField(**list_kwargs)

    def preloaded(self) -> dict[Any, Any] | None:
        """The targets a batch write loaded for this field in one query
        (``context["arc_related"][field name]``: pk → row), or ``None``. Keyed by the pk's
        value, not its text: ``1`` finds the decimal pk the database answers as ``1.00``,
        and ``null`` never the text pk ``"None"``."""
        cache = self.context.get("arc_related")
        if not cache:
            return None
        owner = self.parent if isinstance(self.parent, serializers.ManyRelatedField) else self
        return cache.get(owner.field_name)

    def from_preloaded(self, known: dict[Any, Any], data: Any) -> Any:
        """What ``super().to_internal_value`` answers, from rows already loaded."""
        if isinstance(data, bool):
            self.fail("incorrect_type", data_type=type(data).__name__)
        if data is None:  # no row's pk; as text, it would be the row whose pk is "None"
            self.fail("does_not_exist", pk_value=data)
        model = self.get_queryset().model
        try:
            pk = model._meta.pk.to_python(data)
        except (TypeError, ValueError, DjangoValidationError, OverflowError):
            # refused by DRF's own lookup, with the pk field's message ("is not a valid
            # UUID"): it cannot parse the id either, so it fails before any SQL; a float
            # beyond any integer (JSON's 1e999) is no row, as for one relation
            try:
                super().to_internal_value(data)
            except OverflowError:
                self.fail("does_not_exist", pk_value=data)
            self.fail("incorrect_type", data_type=type(data).__name__)
        self.refuse_unmatchable(pk, data)
        obj = known.get(pk)
        if obj is None:
            self.fail("does_not_exist", pk_value=data)
        return obj


class ArcSlugRelatedField(serializers.SlugRelatedField):
    """DRF's relation by a unique non-pk field (``to_field``), with a text value holding a
    NUL character refused as no row: PostgreSQL refuses to compare one (``DataError``, which
    DRF does not catch: a 500); SQLite finds no row, DRF's "does not exist"."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=smart_str(data))
        return super().to_internal_value(data)


#: how many items of a ``many=True`` relation's list one query reads the rows of: any database
#: takes that many parameters (SQLite refuses a statement past 32,766)
MANY_IDS_PER_QUERY = 500


class ArcManyRelatedField(serializers.ManyRelatedField):
    """DRF's ``many=True`` relation, its rows read 500 items to a query.

    DRF looks each id up with a query of its own (``queryset.get(pk=…)``): a body
    ``{"tags": [1, 1, 1, …]}`` as large as ``DATA_UPLOAD_MAX_MEMORY_SIZE`` allows was about a
    million ``SELECT``s from one request. Here the items are read in order, 500 at a time,
    each batch's ids not read yet in one query from the field's own (narrowed) queryset: the
    same few rows named a million times cost one query, and the first id that is no row is
    refused, with DRF's message, before any id after its batch is read. A child with a
    ``pk_field``, or rows a batch write loaded already (``context["arc_related"]``), is read
    as DRF reads it."""

    def to_internal_value(self, data: Any) -> list[Any]:
        child = self.child_relation
        if (
            isinstance(data, str)
            or not hasattr(data, "__iter__")
            or child.pk_field is not None
            or child.preloaded() is not None
        ):
            return super().to_internal_value(data)  # DRF's refusals, or DRF's own lookups
        items = list(data)  # an object's keys, as DRF iterates it
        if not self.allow_empty and not items:
            self.fail("empty")
        queryset = child.get_queryset()
        model = queryset.model
        known: dict[Any, Any] = {}
        found: list[Any] = []
        for start in range(0, len(items), MANY_IDS_PER_QUERY):
            batch = items[start : start + MANY_IDS_PER_QUERY]
            wanted: set[Any] = set()
            for item in batch:
                # no row's pk (DRF refuses both); a list or an object is read as its text
                # by a text pk, as DRF's lookup reads it (``{}``: the row ``"{}"``), and
                # refused by any other pk's to_python below
                if item is None or isinstance(item, bool):
                    continue
                try:
                    pk = model._meta.pk.to_python(item)
                except (TypeError, ValueError, DjangoValidationError, OverflowError):
                    continue
                if matchable(pk) and pk not in known:
                    wanted.add(pk)
            if wanted:
                known.update({row.pk: row for row in queryset.filter(pk__in=wanted)})
            found.extend(child.from_preloaded(known, item) for item in batch)
        return found


def read_many_in_batches(fields: Any) -> None:
    """The project's own ``PrimaryKeyRelatedField(many=True)`` among ``fields`` (a
    ``serializer_class``'s, an action ``input``'s: DRF's ``ManyRelatedField`` of DRF's
    ``PrimaryKeyRelatedField``, exactly) made :class:`ArcManyRelatedField` of
    :class:`ArcPrimaryKeyRelatedField`, which read its ids 500 to a query where DRF's read
    one per query. Same state, same messages, same queryset (narrowed as before: the class
    changes, not the instance); a subclass of either, which may look rows up its own way,
    is left as it is, and so is a relation inside a nested serializer."""
    for field in fields.values():
        if (
            type(field) is serializers.ManyRelatedField
            and type(field.child_relation) is serializers.PrimaryKeyRelatedField
            and not field.read_only
        ):
            field.child_relation.__class__ = ArcPrimaryKeyRelatedField
            field.__class__ = ArcManyRelatedField


def refuse_non_finite_floats(fields: Any) -> None:
    """The project's own writable ``FloatField`` among ``fields`` (a ``serializer_class``'s,
    an action ``input``'s; not arc's :class:`ArcFloatField`, which refuses them itself)
    refuses ``"NaN"``, ``"Infinity"`` and ``"1e999"`` with its own "A valid number is
    required.", as DRF's does from 3.18 on (encode/django-rest-framework#9998). Before it,
    DRF took them: SQLite stores a NaN as ``NULL``, so a ``NOT NULL`` column's write was the
    database's ``IntegrityError`` (a 409 naming nothing) where PostgreSQL stored the NaN,
    and no JSON carries the value back. Refused where DRF 3.18 refuses it, as the field's
    ``to_internal_value`` returns (a subclass's own runs first), so before the field's
    validators: as one more validator it ran after the project's own, which DRF runs
    every one of, and a project validator doing arithmetic on the value (``int(value)``)
    was a 500 on DRF 3.17. A float field inside a nested serializer or a list is the
    project's (decisions.md)."""
    _install_reading(fields, serializers.FloatField, ArcFloatField, _FiniteReading)


def read_decimals_as_written(fields: Any) -> None:
    """The project's own writable ``DecimalField`` among ``fields`` (a ``serializer_class``'s,
    an action ``input``'s; not arc's :class:`ArcDecimalField`, which does it itself) reads a
    JSON number by the text it was written as (:class:`~django_arc.parsers.JSONNumber`).
    DRF's reads ``str()`` of the float JSON readers make of it, 15 to 17 significant
    digits: ``0.1000000000000000055511151231257827`` was ``0.1`` (taken by a field of 10
    places, which refuses the same text as a string), and a 20-digit number was stored
    with its last digits changed, silently, where the generated field keeps every digit.
    The field's own ``to_internal_value`` (a project subclass's included) is handed the
    text, as :func:`refuse_non_finite_floats` wraps a float field's: the field keeps its
    class. Swapping it for a generated subclass (fix-seen11d) changed what ``type(field)``
    is, so a drf-spectacular extension naming the project's field class (matched by exact
    class, its default) no longer applied and the OpenAPI schema changed (rev-fixes63).

    A decimal field inside a nested serializer, or the child of a ``ListField`` or a
    ``DictField``, at any depth, reads so too (fix-seen12b): it is the same number in the
    same body, and DRF's reading lost its digits there alike. Such a container field gets a
    reading (:class:`_ChildrenWritten`) that does this to its children when it first reads,
    bound by then: a nested serializer's fields are built lazily, from its context."""
    _install_reading(fields, serializers.DecimalField, ArcDecimalField, _WrittenReading)
    _install_reading(fields, _CONTAINERS, (), _ChildrenWritten)


#: fields whose reading hands values to fields of their own (``child``, ``fields``)
_CONTAINERS = (serializers.BaseSerializer, serializers.ListField, serializers.DictField)


def _install_reading(fields: Any, kind: Any, arc_kind: Any, reading: type) -> None:
    """``reading`` as the ``to_internal_value`` of each writable field of ``kind`` among
    ``fields`` that is the project's (not arc's ``arc_kind``) and has no instance-level
    reading yet (one :func:`_clone` installed)."""
    for field in fields.values():
        if (
            isinstance(field, kind)
            and not isinstance(field, arc_kind)
            and not field.read_only
            and "to_internal_value" not in vars(field)
        ):
            field.to_internal_value = reading(field)


class _OwnReading:
    """An instance-level ``to_internal_value`` running the field's class's own (a project
    subclass's included) on the field it is installed on; :func:`_clone` installs a new one
    on each copy of a cached field, so the reading sees the copy's serializer (its context,
    the request), not the cached field's. The field keeps its class (a drf-spectacular
    extension or a ``type()`` check matching the project's class still does)."""

    __slots__ = ("field",)

    def __init__(self, field: serializers.Field) -> None:
        self.field = field

    def own(self, data: Any) -> Any:
        return type(self.field).to_internal_value(self.field, data)


class _WrittenReading(_OwnReading):
    """A decimal field's own reading, handed a JSON number's text, not its float.

    The text has no float's bounds, and a project's field without ``max_digits`` sets none:
    ``1e999999999`` (eleven characters) was taken, and writing it back as DRF does
    (``f"{value:f}"``: the answer, an action's event) built a string of a billion digits
    and failed (SQLite's "string or blob too big": a 500); before fix-seen12b a
    nested field read it as the infinity its float is and refused it. Such a value is
    refused with DRF's own ``max_string_length``: its text is longer than DRF reads. DRF
    quantizing to ``decimal_places`` under the default context's 28 digits when there is
    no ``max_digits`` raised ``InvalidOperation`` (``1e30`` for 2 places: a 500, as text
    too), refused here as the field's ``invalid``."""

    __slots__ = ()

    def __call__(self, data: Any) -> Any:
        field = self.field
        try:
            value = self.own(data.text if isinstance(data, JSONNumber) else data)
        except decimal.InvalidOperation:
            field.fail("invalid")
        if isinstance(value, decimal.Decimal) and _written_length(value) > field.MAX_STRING_LENGTH:
            field.fail("max_string_length")
        return value


def _written_length(value: decimal.Decimal) -> int:
    """The length of ``f"{value:f}"``, the text DRF writes a decimal as, without building it."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):  # NaN, infinities: DRF's reading refuses them itself
        return 0
    if exponent >= 0:
        return sign + (1 if value.is_zero() else len(digits) + exponent)  # 0E+5 is "0"
    return sign + max(len(digits), 1 - exponent) + 1


class _ChildrenWritten(_OwnReading):
    """A nested serializer's, a ``ListSerializer``'s, a ``ListField``'s or a ``DictField``'s
    own reading, after :func:`read_decimals_as_written` has been applied to its children
    (once per field: a ``many=True`` list reads every item with one child)."""

    __slots__ = ("walked",)

    def __init__(self, field: serializers.Field) -> None:
        super().__init__(field)
        self.walked = False

    def __call__(self, data: Any) -> Any:
        if not self.walked:
            self.walked = True
            field = self.field
            child = getattr(field, "child", None)
            read_decimals_as_written(
                {"": child} if isinstance(child, serializers.Field) else field.fields
            )
        return self.own(data)


class _FiniteReading(_OwnReading):
    """A float field's own reading, refusing a non-finite float it returns with the field's
    own ``invalid`` message (a project's ``error_messages`` included)."""

    __slots__ = ()

    def __call__(self, data: Any) -> Any:
        value = self.own(data)
        if isinstance(value, float) and not math.isfinite(value):
            self.field.fail("invalid")
        return value


def matchable(pk: Any) -> bool:
    """Whether a parsed pk may be sent to the database in a lookup: not an integer beyond
    64 bits (no column holds one), not text holding a NUL character or a lone surrogate
    (PostgreSQL refuses the one, no driver encodes the other)."""
    if isinstance(pk, str):
        return UNSENDABLE.search(pk) is None
    return not beyond_int64(pk)


def preload_related(serializer: Any, items: list[dict[str, Any]]) -> dict[str, dict[Any, Any]]:
    """For a batch of bodies validated with (copies of) ``serializer``: every writable
    related field's targets, loaded with one query per field from the field's own queryset
    (already narrowed to the tenant), keyed for :class:`ArcPrimaryKeyRelatedField`. Ids that
    do not parse are left out (the field then refuses them as it would)."""
    loaded: dict[str, dict[Any, Any]] = {}
    for name, field in serializer.fields.items():
        relation = getattr(field, "child_relation", field)
        if field.read_only or not isinstance(relation, ArcPrimaryKeyRelatedField):
            continue
        model = relation.get_queryset().model
        wanted: set[Any] = set()
        for item in items:
            values = item.get(name) if isinstance(item, dict) else None
            many = relation is not field  # one relation's value is one id, a list too
            for value in values if many and isinstance(values, list) else [values]:
                if value is None or isinstance(value, bool):
                    continue  # no row's pk; a list or an object: as for a many=True list
                try:
                    pk = model._meta.pk.to_python(value)
                except (TypeError, ValueError, DjangoValidationError, OverflowError):
                    continue
                if matchable(pk):
                    wanted.add(pk)
        rows = relation.get_queryset().filter(pk__in=wanted) if wanted else []
        loaded[name] = {row.pk: row for row in rows}
    return loaded


class ArcFloatField(serializers.FloatField):
    """DRF's float field without ``"NaN"``/``"Infinity"``/``"1e999"``, which it accepts: JSON
    cannot carry them back (DRF's renderer and PostgreSQL's ``jsonb`` refuse them), so the
    row's event could not be stored and the row could not be rendered. Django's form
    ``FloatField`` refuses them the same way.

    A row written outside the API may hold one all the same (PostgreSQL's ``float8`` holds
    ``NaN`` and both infinities, SQLite's ``REAL`` the infinities): it renders as ``null``,
    JSON's one value that is no number (``JSON.stringify`` writes ``NaN`` so; SQLite stores a
    ``NaN`` as ``NULL`` already), where DRF's strict renderer raised (every list holding the
    row a 500) and a lax one wrote ``Infinity``, which is no JSON (docs/decisions.md)."""

    def to_representation(self, value: Any) -> float | None:
        number = super().to_representation(value)
        return number if math.isfinite(number) else None

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or foreign_digits(data):
            # float(True) is 1.0 (DRF's integer and decimal fields refuse a boolean), and
            # float() reads "1_0" and Arabic-Indic digits, which no JSON number spells
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        # -0.0 as 0.0: SQLite and jsonb (events, audit) store no negative zero, so the write's
        # response and event would say -0.0 where every later read says 0.0
        return value or 0.0


class ArcDecimalField(serializers.DecimalField):
    """DRF's decimal field with a zero always unsigned: ``"-0"`` is ``Decimal("-0.00")``,
    which no database stores (PostgreSQL's ``numeric`` has no negative zero, SQLite keeps
    ``0``). The write's response and event said ``"-0.00"`` where every later read says
    ``"0.00"``, and an update sending ``"-0"`` to a row at ``0.00`` was reported as a change
    of the field (event ``changed``, audit entry) while the row stayed as it was."""

    def to_internal_value(self, data: Any) -> Any:
        if foreign_digits(data):
            # Decimal() reads "1_0" as 10 and Arabic-Indic digits as ASCII ones: no JSON
            # number spells them, and the query language refuses them as filter values
            self.fail("invalid")
        if isinstance(data, JSONNumber):
            # the number as written, not the binary float JSON readers make of it (which
            # has 15 to 17 significant digits, and no 1e-400)
            data = data.text
        value = super().to_internal_value(data)
        return value.copy_abs() if value is not None and value.is_zero() else value

    def to_representation(self, value: Any) -> Any:
        # PostgreSQL's ``numeric`` holds NaN, which DRF wrote as the string "NaN", or (with
        # COERCE_DECIMAL_TO_STRING off) as the float NaN its strict renderer refused: null,
        # as a float's (decisions.md)
        if isinstance(value, decimal.Decimal) and not value.is_finite():
            return None
        return super().to_representation(value)


class ArcIntegerField(serializers.IntegerField):
    """DRF's integer field, bounded to what the column holds on every database: the range
    Django declares for the model field's type (:func:`django_arc.query.integer_range`; 32
    bits for an ``IntegerField``), within any range the model sets itself. DRF takes the
    current database's range: Django 4.2's SQLite backend reports none, so
    ``{"pages": 2**63}`` reached the database and its ``OverflowError`` was a 500, and
    Django 5's SQLite reports 64 bits for every integer type, so ``{"pages": 3000000000}``
    was stored on SQLite and refused on PostgreSQL. Same message as DRF gives for a model's
    own range. A read-only field validates nothing, so it carries no bounds (nor does its
    schema)."""

    #: (min, max) of the column on every database; set per model field type (``_FIELD_MAPPING``)
    column_range: tuple[int, int] = (MIN_INT, MAX_INT)

    def __init__(self, **kwargs: Any) -> None:
        if not kwargs.get("read_only"):
            low, high = self.column_range
            given_max, given_min = kwargs.get("max_value"), kwargs.get("min_value")
            kwargs["max_value"] = high if given_max is None else min(given_max, high)
            kwargs["min_value"] = low if given_min is None else max(given_min, low)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if foreign_digits(data):
            # int() reads "1_000" as 1000 and Arabic-Indic digits as ASCII ones: no JSON
            # number spells them, and the query language refuses them as filter values
            self.fail("invalid")
        if isinstance(data, JSONNumber) and not data.exact():
            # 1.0000000000000000001 is the float 1.0, stored as 1 (its text, sent as a
            # string or a filter, is refused): read as written
            data = data.text
        return super().to_internal_value(data)


def _integer_field(
    model_field: type[models.Field], drf_field: type[serializers.IntegerField]
) -> type[ArcIntegerField]:
    """The :class:`ArcIntegerField` of one model field type, bounded by its column, over the
    DRF field DRF maps it to (its ``BigIntegerField`` keeps ``coerce_to_string``)."""
    low, high = integer_range(model_field())
    bases = (
        (ArcIntegerField,)
        if drf_field is serializers.IntegerField
        else (ArcIntegerField, drf_field)
    )
    return type(f"Arc{model_field.__name__}", bases, {"column_range": (low, high)})


_DRF_MAPPING = serializers.ModelSerializer.serializer_field_mapping
#: DRF's integer fields: DRF 3.16 maps ``BigIntegerField`` (and ``BigAutoField``) to its own
#: ``BigIntegerField``, which a bound made for its ``IntegerField`` alone skipped
_DRF_INTEGERS = (serializers.IntegerField, getattr(serializers, "BigIntegerField", None))


class ArcJSONField(serializers.JSONField):
    """DRF's JSON field, refusing NUL characters and lone surrogates as DRF's ``CharField``
    does: PostgreSQL's ``jsonb`` cannot store them (and a surrogate is not even UTF-8, so the
    response could not be rendered), so they are a 400 naming the field on every database
    rather than a 500. (A form's text is parsed as strictly as a JSON body (``NaN``,
    ``Infinity`` and nesting past 128 levels are invalid JSON), where DRF's ``json.loads``
    takes ``NaN``, which no database's JSON column holds.)"""

    default_error_messages = {
        "null_characters": "Null characters are not allowed.",
        "surrogate_characters": "Surrogate characters are not allowed: U+{code_point:X}.",
    }

    def to_internal_value(self, data: Any) -> Any:
        if getattr(data, "is_json_string", False) and not self.binary:
            # a form's text, which DRF's get_value() marks to be parsed: parsed as strictly as
            # a JSON body (no NaN or Infinity, which no database's JSON holds; bounded nesting)
            data = _form_json(data, self.decoder)
            if data is _INVALID:
                self.fail("invalid")
            if data is None and not self.allow_null:
                self.fail("null")  # the form's "null": DRF's check of null saw text
        value = super().to_internal_value(data)
        char = unstorable_char(value)
        if char == "\x00":
            self.fail("null_characters")
        if char is not None:
            self.fail("surrogate_characters", code_point=ord(char))
        return value


class ArcDurationField(serializers.DurationField):
    """DRF's duration field, bounded to what the column holds on every database: SQLite (and
    MySQL) store a duration as a 64-bit count of microseconds, about 292 000 years
    (:data:`django_arc.query.MAX_DURATION`), where Python's ``timedelta`` reaches 999 999 999
    days: ``{"span": "999999999 00:00:00"}`` reached SQLite's driver, whose
    ``OverflowError`` was a 500 (and PostgreSQL stored it). Now 400 naming the field, on
    every database, within any bound the model sets itself."""

    def __init__(self, **kwargs: Any) -> None:
        if not kwargs.get("read_only"):
            given_max, given_min = kwargs.get("max_value"), kwargs.get("min_value")
            kwargs["max_value"] = (
                MAX_DURATION if given_max is None else min(given_max, MAX_DURATION)
            )
            kwargs["min_value"] = (
                MIN_DURATION if given_min is None else max(given_min, MIN_DURATION)
            )
        super().__init__(**kwargs)

    def to_internal_value(self, value: Any) -> Any:
        """DRF's reading, but text without a digit (``""``, ``"P"``) is refused: DRF's
        ``parse_duration`` read it as zero, so ``{"span": ""}`` stored a zero duration
        where a date, time, number or UUID field refuses ``""``."""
        if isinstance(value, str) and not spells_a_duration(value):
            self.fail("invalid", format="[DD] [HH:[MM:]]ss[.uuuuuu]")
        return super().to_internal_value(value)


class ArcBinaryField(serializers.ModelField):
    """What DRF renders a ``BinaryField`` with (its ``ModelField``: base64 text, the model
    field's ``value_to_string()``), reading a body's value as strictly: base64 text only.
    DRF handed the value to ``BinaryField.to_python()``, so text that is not base64
    (``binascii.Error``) or not ASCII, and a number or an object (stored as the column got
    them, or a driver's error), were 500s; now they are a 400 naming the field."""

    default_error_messages = {"invalid": "Enter base64-encoded text."}

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            base64.b64decode(data.encode("ascii"), validate=True)
        except (UnicodeError, binascii.Error):
            self.fail("invalid")
        return super().to_internal_value(data)


class ArcListField(serializers.ListField):
    """What an ``ArrayField`` is written with (DRF's ``ListField``), refusing an array of
    arrays whose arrays differ in length: PostgreSQL's arrays are rectangular, and
    ``[[1], [2, 3]]`` was its ``DataError``, a 500; now a 400 naming the field."""

    default_error_messages = {"ragged": "Its arrays must all have the same length."}

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if isinstance(self.child, serializers.ListField):
            shapes = {array_shape(item) for item in value if item is not None}
            if len(shapes) > 1 or (shapes and None in value):
                self.fail("ragged")
        return value


class ArcHStoreField(serializers.HStoreField):
    """DRF's ``HStoreField``, refusing a key with a NUL character or a lone surrogate as it
    refuses such a value: PostgreSQL's ``hstore`` cannot hold one (``{"\u0000": "v"}`` was
    its ``DataError``, a 500); now a 400 naming the field."""

    default_error_messages = {
        "null_characters": "Null characters are not allowed.",
        "surrogate_characters": "Surrogate characters are not allowed: U+{code_point:X}.",
    }

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        for key in value:
            char = unstorable_char(key)
            if char == "\x00":
                self.fail("null_characters")
            if char is not None:
                self.fail("surrogate_characters", code_point=ord(char))
        return value


class ArcRangeField(serializers.ModelField):
    """A range field (``IntegerRangeField``, ``DateTimeRangeField``...) as a JSON object,
    ``{"lower": 1, "upper": 5, "bounds": "[)"}`` (``{"empty": true}`` for the empty range),
    the spelling its query-string filters take. DRF has no field for one: its
    ``ModelField`` rendered the range as a string of JSON and handed a body's object to
    the driver, which sent it as an hstore (a 500), and text to ``json.loads`` (a 500)."""

    default_error_messages = {
        "invalid": 'Expected an object of "lower", "upper" and "bounds".',
        "invalid_json": "Value must be valid JSON.",
    }

    def __init__(self, model_field: Any, **kwargs: Any) -> None:
        # a form shows the range as JSON text (:meth:`ArcSerializerMixin.__getitem__`),
        # in a box as a ``JSONField``'s: one object, edited as such
        kwargs.setdefault("style", {"base_template": "textarea.html"})
        super().__init__(model_field, **kwargs)

    def get_value(self, dictionary: Any) -> Any:
        """A form body's value is the range's JSON text, which the browsable form shows
        (``{"lower": 1, "upper": 5, "bounds": "[)"}``): DRF handed the text to
        :meth:`to_internal_value`, which refused every text, so no form could write a
        range (400 whatever was typed). A JSON body's value is the object itself, never
        text holding one."""
        if html.is_html_input(dictionary) and self.field_name in dictionary:
            return _FormJSON(dictionary[self.field_name])
        return super().get_value(dictionary)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, _FormJSON):
            data = _form_json(data, None)
            if data is _INVALID:
                self.fail("invalid_json")
        if not isinstance(data, Mapping):
            self.fail("invalid")
        try:
            value = range_value(self.model_field, dict(data))
        except ValueError as exc:
            raise serializers.ValidationError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None
        return self._as_held(value)

    def _as_held(self, value: Any) -> Any:
        """``value``, or the row's own range when ``value`` is that range as rendered: a
        bound PostgreSQL holds as ``infinity`` renders unbounded
        (:class:`~django_arc.ranges.InfiniteBoundRange`), so a client sending the row back
        as it read it (a ``PUT`` of the whole body, a ``PATCH`` naming the range unchanged)
        rewrote ``infinity`` as unbounded, a change of a value the API showed unchanged."""
        instance = getattr(self.parent, "instance", None)
        if not isinstance(instance, models.Model):
            return value
        held = self.model_field.value_from_object(instance)
        if not isinstance(held, InfiniteBoundRange) or isinstance(value, InfiniteBoundRange):
            return value
        shown = (held.lower, held.upper, held.bounds, held.isempty)
        return held if shown == (value.lower, value.upper, value.bounds, value.isempty) else value

    def to_representation(self, obj: Any) -> Any:
        value = self.model_field.value_from_object(obj)
        if value is None:
            return None
        if isinstance(value, (list, tuple, str)):
            # Django takes a pair for a range (``row.span = (1, 5)``, a default) and a
            # fixture's JSON text, which a row keeps as assigned until read again:
            # rendering one was an AttributeError (a 500), after the write was saved
            value = self.model_field.to_python(value)
        rendered = range_json(value)
        for end in ("lower", "upper"):
            if rendered.get(end) is not None:
                rendered[end] = _RANGE_BOUND.to_representation(rendered[end])
        return rendered


class _RangeBound(serializers.Field):
    """A range's bound as the base field's DRF field renders it (a datetime in the
    project's format and time zone, a decimal as text unless ``COERCE_DECIMAL_TO_STRING``
    is off)."""

    def to_representation(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return serializers.DateTimeField().to_representation(value)
        if isinstance(value, date):
            return serializers.DateField().to_representation(value)
        if isinstance(value, decimal.Decimal):
            return serializers.DecimalField(None, None).to_representation(value)
        return value


_RANGE_BOUND = _RangeBound()


class _FormJSON(str):
    """A form's text for a field taking a JSON value (:meth:`ArcRangeField.get_value`):
    JSON to parse, and shown as sent when the form is shown again (DRF's
    ``JSONBoundField`` reads ``is_json_string``)."""

    is_json_string = True


_INVALID = object()


def _blank_json(field: Any, sent: Any) -> bool:
    return (
        (
            isinstance(field, serializers.JSONField)
            and not field.binary
            or isinstance(field, ArcRangeField)
        )
        and isinstance(sent, str)
        and sent.strip() in ("", "null")
    )


def _form_json(text: str, decoder: Any) -> Any:
    """``text`` (a form field's) parsed as :class:`~django_arc.parsers.ArcJSONParser` parses
    a body, or ``_INVALID``."""
    try:
        value = json.loads(text, cls=decoder, parse_constant=refuse_json_constant)
        if not nested_deeper_than(value, ArcJSONParser.max_depth):
            return value
    except (ValueError, RecursionError):
        pass
    return _INVALID


def build_serializer_class(resource: Any) -> type[serializers.BaseSerializer]:
    """The serializer a resource uses: the user's ``serializer_class`` (with field caching
    and the resource's hidden and read-only fields mixed in) or a ``ModelSerializer`` over
    ``resource.serializer_fields``.

    Fields a ``ModelSerializer`` builds from the model are the stricter ones below, in a
    user's class too unless it chose its own ``serializer_field_mapping`` or
    ``serializer_related_field`` (``serializer_related_to_field``); fields a class declares
    are left alone."""
    user_class = resource.serializer_class
    if user_class is not None:
        attrs: dict[str, Any] = {
            "__module__": user_class.__module__,
            "_arc_hidden": resource.hidden_fields,
            "_arc_read_only": resource.read_only_set,
        }
        if issubclass(user_class, serializers.ModelSerializer):
            model_serializer = serializers.ModelSerializer
            if user_class.serializer_field_mapping is model_serializer.serializer_field_mapping:
                attrs["serializer_field_mapping"] = _FIELD_MAPPING
            if user_class.serializer_related_field is model_serializer.serializer_related_field:
                attrs["serializer_related_field"] = ArcPrimaryKeyRelatedField
            if (
                user_class.serializer_related_to_field
                is model_serializer.serializer_related_to_field
            ):
                attrs["serializer_related_to_field"] = ArcSlugRelatedField
        bases = (user_class,) if issubclass(user_class, ArcSerializerMixin) else None
        return type(user_class.__name__, bases or (ArcSerializerMixin, user_class), attrs)

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
    declared: dict[str, serializers.Field] = {}
    pk = resource.model._meta.pk
    if pk.remote_field is not None and pk.remote_field.parent_link:
        # a multi-table child's primary key is the link to its parent row, which DRF
        # renders as the parent *instance* (it is no relation to it: ``serialize=False``),
        # so every answer was a 500; it is written as its value, the parent's pk
        if pk.name in resource.serializer_fields:
            declared[pk.name] = serializers.ReadOnlyField(source=pk.attname)
    return type(
        name,
        (ArcSerializerMixin, serializers.ModelSerializer),
        {
            **declared,
            "Meta": meta,
            "__module__": __name__,
            "serializer_related_field": ArcPrimaryKeyRelatedField,
            "serializer_related_to_field": ArcSlugRelatedField,
            "serializer_field_mapping": _FIELD_MAPPING,
        },
    )


_FIELD_MAPPING = {
    **_DRF_MAPPING,
    **{
        model_field: _integer_field(model_field, field)
        for model_field, field in _DRF_MAPPING.items()
        if field in _DRF_INTEGERS
    },
    # not in DRF's mapping (found through its BigIntegerField parent), but never negative
    models.PositiveBigIntegerField: _integer_field(
        models.PositiveBigIntegerField,
        _DRF_MAPPING.get(models.BigIntegerField, serializers.IntegerField),
    ),
    models.FloatField: ArcFloatField,
    models.DecimalField: ArcDecimalField,
    models.JSONField: ArcJSONField,
    models.DurationField: ArcDurationField,
    models.BinaryField: ArcBinaryField,
    **(
        {}
        if RangeField is None
        else {ArrayField: ArcListField, HStoreField: ArcHStoreField, RangeField: ArcRangeField}
    ),
}


def form_values(
    data: Any, fields: Any, partial: bool = False, may_write: Any = None
) -> dict[str, Any]:
    """A form body (urlencoded or multipart) as a dict, each name's last value as Django's
    ``QueryDict.dict()`` gives it, except each writable field of ``fields``, which gets what
    DRF's ``get_value()`` reads of a form: every value sent where it reads a list
    (``getlist()``: a ``ManyRelatedField``, ``ListField``, ``MultipleChoiceField``), a
    blank as ``null`` where null is allowed (or as not sent where the field is optional), a
    ``JSONField``'s text as JSON to parse, and, unless ``partial``, a box a browser leaves
    out when unchecked as ``False`` (a list left out as ``[]``) where ``may_write(name)``: a
    field the caller may not write is not on its form."""
    body = data.dict()
    for name, field in fields.items():
        if field.read_only or isinstance(
            field, (serializers.HiddenField, serializers.BaseSerializer)
        ):
            continue  # a nested serializer's form names are kept as sent
        if name not in data and (partial or may_write is not None and not may_write(name)):
            continue  # an update's body leaves it alone, and a field not the caller's
        if _blank_json(field, data.get(name)):
            # a JSON field's blank textarea, or the "null" a form shows for one with no
            # initial value: null where allowed, else not sent where it is optional
            if field.allow_null:
                body[name] = None
                continue
            if not field.required:
                body.pop(name, None)
                continue
        value = field.get_value(data)
        if isinstance(field, _LISTS_OF_CHOICES) and isinstance(value, list):
            # the browsable form's "nothing selected" (a hidden blank before its select):
            # no row's key nor a choice
            value = [item for item in value if item != ""]
        if value is serializers.empty:
            body.pop(name, None)
        else:
            body[name] = value
    return body


#: the list fields a form fills from a multiple select: a blank among their values is the
#: browsable form's "nothing selected", no value
_LISTS_OF_CHOICES = (serializers.ManyRelatedField, serializers.MultipleChoiceField)
