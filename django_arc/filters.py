"""The query language as a DRF filter backend.

``QueryLanguageFilter`` reads ``?field[op]=value``, ``?search=``, ``?sort=`` and ``?select=``
against the resource's compiled :class:`~django_arc.query.QuerySpec` and the caller's field
access (a field the caller cannot read cannot be filtered, sorted or searched on). It keeps the
parsed request on the view as ``view.list_query``: ``select`` narrows what is rendered, and the
keyset pagination pages by the same ordering. A request is parsed once: whoever reads the
query first (this backend, or the query cache building its key) leaves it there for the other.

Search goes to the presets first (:meth:`Preset.search`: full text, ranking) and falls back to
``icontains`` over ``search_fields``.

The backend holds no per-request state, so each generated ViewSet builds its backends once
(``ResourceGenericViewSet.filter_queryset``).
"""

from __future__ import annotations

import re
from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from rest_framework import serializers
from rest_framework.filters import BaseFilterBackend

from .query import (
    MAX_IN_VALUES,
    MAX_TEXT_PATTERN,
    RANGE_BOUNDS,
    TEXT_OPERATORS,
    ArrayField,
    HStoreField,
    _concrete,
    integer_range,
    structured,
)


class QueryLanguageFilter(BaseFilterBackend):
    """Filters, search, sort and select of SPEC §3 (see ``docs/query-language.md``)."""

    def parse(self, request: Any, view: Any) -> Any:
        access = view.field_access
        return view.resource.query_spec.parse(
            request.query_params,
            set(view.resource.output_fields) - access.unreadable,
            restricted=access.restricted,
        )

    def filter_queryset(self, request: Any, queryset: Any, view: Any) -> Any:
        query = getattr(view, "list_query", None)
        if query is None:  # not parsed yet in this request (the query cache parses first)
            query = self.parse(request, view)
            view.list_query = query
        searched = False
        if query.search:
            for preset in view.resource.preset_list:
                result = preset.search(view, queryset, query.search)
                if result is not None:
                    queryset, searched = result, True
                    break
        return view.resource.query_spec.apply(queryset, query, searched=searched)

    # -- OpenAPI (DRF's schema hook; drf-spectacular calls it for list routes) ------------------

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """One query parameter per allowed filter operator (``price[gte]``, ``status[in]``),
        then ``search``, ``sort`` and ``select``, each with a schema that accepts exactly the
        values the parser does (:func:`query_value_schema`).

        The schema is the same for every caller: a field that some callers may not read
        (``visible_to``, ``redact_for``) is documented, with the restriction in its
        description, and ``select`` lists only the fields everyone may read."""
        resource = view.resource
        spec = resource.query_spec
        # ``select`` names fields, the filters columns: a field some callers may not read is
        # no choice of everyone's though its name is a column a readable field renders
        restricted = _restricted(resource) | _restricted_fields(resource)
        # what no caller may filter, sort or search on is not offered at all
        refused = _refused_to_all(resource)
        parameters = filter_parameters(resource)
        searched = [p for p, root in spec.search_roots.items() if root not in refused]
        if searched or presets_search(resource):
            fields = ", ".join(f"`{p.rsplit('__', 1)[0]}`" for p in searched)
            parameters.append(
                _query_parameter(
                    "search",
                    {"type": "string", "pattern": NO_NUL, "maxLength": MAX_TEXT_PATTERN},
                    "Case-insensitive substring match over "
                    + (fields or "the resource's text")
                    + ". Empty: ignored.",
                )
            )
        names = [name for name, sort in spec.sorts.items() if sort.root not in refused]
        if names:
            parameters.append(
                _query_parameter(
                    "sort",
                    {"type": "array", "items": _list_item(names, "[+-]*")},
                    f"Comma-separated sort keys among {_names(names)}, `-` for descending; "
                    f"the primary key breaks ties. Default: {_default_sort_text(resource)}.",
                    style_form=True,
                )
            )
        selectable = [
            f
            for f in resource.output_fields
            if f not in restricted and f not in resource.field_rules.write_only
        ]
        parameters.append(
            _query_parameter(
                "select",
                {"type": "array", "items": _list_item(selectable)},
                f"Comma-separated fields to return, among {_names(selectable)}; the "
                "identifiers always come along. Fields the caller may not read are refused "
                "(400)"
                + (
                    f" (`{'`, `'.join(sorted(restricted))}` depend on the caller)."
                    if restricted
                    else "."
                ),
                style_form=True,
            )
        )
        return parameters


class QueryFilterField(serializers.DictField):
    """The query language's filters of ``resource`` as a body's object (``{"status":
    "active", "price[gte]": 10}``: a bulk update's ``filter``). Documents the body only: its
    reader parses it with the resource's query spec. OpenAPI types each entry as its query
    parameter (``django_arc.openapi.QueryFilterFieldExtension``)."""

    def __init__(self, resource: Any, **kwargs: Any) -> None:
        self.resource = resource
        super().__init__(**kwargs)


def _default_sort_text(resource: Any) -> str:
    """``default_sort`` as the schema documents it, unless it names a ``hidden()`` field or
    a column no caller may sort by: the schema is public, and a hidden field must not be
    confirmed to exist."""
    spec = resource.query_spec
    # a column no caller may sort by (a hidden field's, renamed) is no secret to confirm
    # either: the order is then described, not named
    hidden = resource.field_rules.hidden | _refused_to_all(resource)
    if not spec.default_sort:
        # the order is then the primary key's, which a resource looked up by another
        # field may hide
        return "the resource's own order" if spec.pk_names & hidden else f"`{resource.pk_name}`"
    if any(sort_field.root in hidden for sort_field, _desc in spec.default_ordering):
        return "the resource's own order"
    return f"`{spec.default_sort}`"


def _restricted_fields(resource: Any) -> set[str]:
    """Fields some callers may not read (``visible_to``, ``redact_for``)."""
    return {
        name
        for name, rule in resource.field_rules.rules.items()
        if not rule.is_hidden and (rule.read_roles is not None or rule.redact_roles)
    }


def _restricted(resource: Any) -> set[str]:
    """The query string's columns some callers, not all, may not filter or sort on: those
    :meth:`FieldRules.restricted_columns` maps the fields of :func:`_restricted_fields` to,
    with the hidden and write-only fields every caller's refusal holds (a column the
    restricted field shares with them is refused only with them), less
    :func:`_refused_to_all`."""
    rules = resource.field_rules
    names = _restricted_fields(resource) | rules.hidden | rules.write_only
    return set(rules.restricted_columns(names)) - _refused_to_all(resource)


def _refused_to_all(resource: Any) -> frozenset[str]:
    """The query string's columns every caller is refused: those of ``hidden()`` and
    write-only fields, which no caller reads, as :meth:`FieldRules.restricted_columns` maps
    them (a hidden ``unit_cost = ...(source="cost")`` refuses ``cost``). A field named like
    its own column is never in the query spec; a column renamed from it was documented as
    a filter and sort key open to all, which every caller was refused (400)."""
    rules = resource.field_rules
    return rules.restricted_columns(rules.hidden | rules.write_only)


def filter_parameters(resource: Any) -> list[dict[str, Any]]:
    """One query parameter per allowed filter operator of ``resource`` (``price[gte]``,
    ``status[in]``), typed like the parser: the list's query string, and a bulk update's
    ``filter`` object (``django_arc.openapi``)."""
    restricted = _restricted(resource)
    refused = _refused_to_all(resource)
    parameters: list[dict[str, Any]] = []
    for param, filter_field in resource.query_spec.filters.items():
        if filter_field.path != param:
            continue  # ``product_id`` is an alias of ``product``
        if filter_field.root in refused:
            continue
        note = ""
        if filter_field.root in restricted:
            note = f" Refused (400) for callers who may not read `{filter_field.root}`."
        json_text = structured(filter_field.model_field)
        for op in _OPERATOR_TEXT:
            if op not in filter_field.operators:
                continue
            name = param if op == "eq" else f"{param}[{op}]"
            text = _OPERATOR_TEXT[op].format(field=f"`{param}`") + note
            if json_text and op != "exists":
                text = _JSON_TEXT.get(op, _OPERATOR_TEXT[op]).format(field=f"`{param}`")
                text += " The value is JSON text." + note
                parameters.append(_json_parameter(name, op, filter_field.model_field, text))
                continue
            parameters.append(
                _query_parameter(
                    name,
                    _operator_schema(op, filter_field.model_field),
                    text,
                    style_form=op in ("in", "nin"),
                )
            )
    return parameters


def _json_parameter(name: str, op: str, model_field: Any, text: str) -> dict[str, Any]:
    """A structured field's parameter (:func:`~django_arc.query.structured`): its value is
    JSON text, which OpenAPI says with ``content`` (the value serialised as
    ``application/json``) and the value's schema. A plain string told clients nothing of
    the spelling, nor a generator what to send."""
    schema = structured_value_schema(model_field)
    if op in ("in", "nin"):
        schema = {"type": "array", "items": schema, "maxItems": MAX_IN_VALUES}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": text,
        "content": {"application/json": {"schema": schema}},
    }


#: a structured field's ``in``/``nin`` text: one JSON array of values, not comma-separated
_JSON_TEXT = {
    "in": "{field} is one of the values, a JSON array of at most 500.",
    "nin": "{field} is none of the values, a JSON array of at most 500.",
}


def structured_value_schema(model_field: Any) -> dict[str, Any]:
    """The JSON schema of a structured field's value (an ``ArrayField``'s array, an
    ``HStoreField``'s object of strings, a range's object), each element or bound typed as
    :func:`django_arc.query.parse_value` reads it: what the query string takes as JSON
    text, and a range field's body value (:class:`~django_arc.serializers.ArcRangeField`)."""
    target = _concrete(model_field)
    if ArrayField is not None and isinstance(target, ArrayField):
        base = target.base_field
        if structured(base):
            items = structured_value_schema(base)
        else:
            items = _json_element_schema(base)
            if base.null:
                items = {**items, "nullable": True}
        return {"type": "array", "items": items}
    if HStoreField is not None and isinstance(target, HStoreField):
        return {
            "type": "object",
            "additionalProperties": {"type": "string", "pattern": NO_NUL, "nullable": True},
        }
    bound = {**_json_element_schema(target.base_field), "nullable": True}
    return {
        "type": "object",
        "properties": {
            "lower": bound,
            "upper": bound,
            "bounds": {"type": "string", "enum": sorted(RANGE_BOUNDS), "default": "[)"},
            "empty": {"type": "boolean", "enum": [True]},
        },
        "additionalProperties": False,
        "description": 'A range: `{"lower", "upper", "bounds"}` (a bound null is '
        'unbounded), or `{"empty": true}` alone.',
    }


def _json_element_schema(model_field: Any) -> dict[str, Any]:
    """One element of a structured value as JSON spells it: as the query value's schema,
    but a boolean is JSON's ``true``/``false``."""
    if isinstance(_concrete(model_field), models.BooleanField):
        return {"type": "boolean"}
    return query_value_schema(model_field)


#: each operator's parameter description, in the order they are documented (``eq`` is the
#: plain ``?field=value``)
_OPERATOR_TEXT = {
    "eq": "{field} equals the value (also `[eq]`).",
    "ne": "{field} differs from the value.",
    "gt": "{field} is greater than the value.",
    "gte": "{field} is greater than or equal to the value.",
    "lt": "{field} is less than the value.",
    "lte": "{field} is less than or equal to the value.",
    "in": "{field} is one of the comma-separated values (at most 500).",
    "nin": "{field} is none of the comma-separated values (at most 500).",
    "contains": "{field} contains the text (case-sensitive).",
    "icontains": "{field} contains the text, ignoring case (`[like]` is an alias).",
    "startswith": "{field} starts with the text (case-sensitive).",
    "exists": "{field} is set (`true`) or null (`false`).",
}
#: a string without NUL characters (the parser refuses them: no database stores them)
NO_NUL = "^[^\\x00]*$"
#: ``true``/``false``/``1``/``0``, any case: what the parser reads as a boolean
BOOLEAN_TEXT = "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|[01])$"


def _query_parameter(
    name: str, schema: dict[str, Any], description: str, style_form: bool = False
) -> dict[str, Any]:
    parameter = {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }
    if style_form:
        parameter.update(style="form", explode=False)
    return parameter


def presets_search(resource: Any) -> bool:
    """Whether a preset of ``resource`` answers ``?search=`` itself (full text, ranking)."""
    from .presets.base import Preset

    return any(type(p).search is not Preset.search for p in resource.preset_list)


def _operator_schema(op: str, model_field: Any) -> dict[str, Any]:
    if op == "exists":
        return {"type": "string", "pattern": BOOLEAN_TEXT}
    if op in TEXT_OPERATORS:
        return {"type": "string", "pattern": NO_NUL, "maxLength": MAX_TEXT_PATTERN}
    value = query_value_schema(model_field)
    if op in _EQUALITY:
        value = _one_of_the_choices(value, model_field)
    if op in ("in", "nin"):
        if value.get("pattern") == NO_NUL and "" not in value.get("enum", ("",)):
            value = {**value, "enum": [*value["enum"], ""]}  # empty items are skipped
        elif value.get("pattern") != NO_NUL:
            # empty items ("1,,2") are skipped, not refused
            value = {"anyOf": [value, {"type": "string", "maxLength": 0}]}
        return {"type": "array", "items": value, "maxItems": MAX_IN_VALUES}
    return value


#: the operators whose value on a field with choices must be one of them
_EQUALITY = ("eq", "ne", "in", "nin")


def _one_of_the_choices(schema: dict[str, Any], model_field: Any) -> dict[str, Any]:
    """``schema`` for an equality's value on a text field with choices: one of them, or
    empty where the field may be blank, as the parser's choice check reads it (anything
    else is a 400: a schema allowing any text made schemathesis send ``?status=`` and
    report the 400 as a valid request refused). A bound (``gte``) keeps the text schema:
    it need not be a choice."""
    if not getattr(model_field, "choices", None):
        return schema
    if schema.get("type") == "integer":
        # an ``IntegerField(choices=...)``: the parser refuses ``?priority=3`` as well
        choices = [key for key, _label in model_field.flatchoices if _an_integer(key)]
        return {**schema, "enum": choices} if choices else schema
    if schema.get("pattern") != NO_NUL:
        return schema
    choices = [str(key) for key, _label in model_field.flatchoices]
    if getattr(model_field, "blank", False) and "" not in choices:
        choices.append("")
    return {**schema, "enum": choices}


def _an_integer(key: Any) -> bool:
    """Whether a choice's key is an integer an integer schema's ``enum`` may list."""
    return isinstance(key, int) and not isinstance(key, bool)


def _names(names: list[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def _list_item(names: list[str], prefix: str = "") -> dict[str, Any]:
    """One item of a comma-separated list of names, as the parser reads it: stripped, and
    skipped when empty. (A pattern, not an ``enum``: ``" name"`` is accepted too.)"""
    choices = "|".join(re.escape(name) for name in names)
    return {"type": "string", "pattern": f"^\\s*({prefix}({choices}))?\\s*$"}


def query_value_schema(model_field: Any) -> dict[str, Any]:
    """The JSON schema of one query value for ``model_field``: what
    :func:`django_arc.query.parse_value` accepts, no more (a value the schema allows is
    never a 400) and, for the usual spellings, no less."""
    target = _concrete(model_field)
    if isinstance(target, models.BooleanField):
        return {"type": "string", "pattern": BOOLEAN_TEXT}
    if isinstance(target, models.DecimalField):
        whole = target.max_digits - target.decimal_places
        fraction = f"(\\.\\d{{1,{target.decimal_places}}})?" if target.decimal_places else ""
        return {"type": "string", "format": "decimal", "pattern": f"^-?\\d{{1,{whole}}}{fraction}$"}
    if isinstance(target, models.FloatField):
        return {"type": "number"}
    if isinstance(target, (models.IntegerField, models.AutoField)):
        low, high = integer_range(target)
        for validator in target.validators:
            if isinstance(validator, MinValueValidator):
                low = max(low, validator.limit_value)
            elif isinstance(validator, MaxValueValidator):
                high = min(high, validator.limit_value)
        return {"type": "integer", "minimum": low, "maximum": high}
    if isinstance(target, models.DateTimeField):
        return {"type": "string", "format": "date-time"}
    if isinstance(target, models.DateField):
        return {"type": "string", "format": "date"}
    if isinstance(target, models.TimeField):
        return {"type": "string", "format": "time"}
    if isinstance(target, models.UUIDField):
        return {"type": "string", "format": "uuid"}
    schema: dict[str, Any] = {"type": "string", "pattern": NO_NUL}
    choices = [str(value) for value, _label in (getattr(target, "flatchoices", None) or ())]
    if choices:
        # Not an ``enum``: one schema serves every operator of the field, and a bound
        # (``gte``, ``lt``) need not be a choice, while ``eq``/``ne``/``in``/``nin`` refuse
        # a value outside them (docs/decisions.md, "choices are checked by equality").
        schema["description"] = "One of: " + ", ".join(f"`{c}`" for c in choices) + "."
    return schema
