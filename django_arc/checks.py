"""System checks: a bad ``ARC`` setting or resource definition is reported by
``manage.py check`` (and at ``runserver``/``migrate`` start-up), naming the resource and key,
instead of surfacing as a 500 at request time.

ids: arc.E001 unknown field in ``fields``/``read_only_fields``; E002 unknown filter field;
E003 unknown/unsuitable operator; E004 unknown sort field (or ``default_sort``); E005 unknown
or non-text search field; E006 bad ``lookup_field``; E007 unknown setting key; E008 bad setting
value; E009 bad ``field_permissions``; E010 bad ``permissions``; E011 preset configuration.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, register
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils.module_loading import import_string

from .fields import FieldPermission
from .query import (
    OPERATOR_ALIASES,
    OPERATORS,
    ORDERING_OPERATORS,
    TEXT_OPERATORS,
    _concrete,
    resolve_path,
)
from .settings import DEFAULTS, IMPORT_STRINGS, arc_settings

_TEXT = (models.CharField, models.TextField)
_UNORDERED = (models.BooleanField, models.JSONField, models.UUIDField)


def _err(msg: str, obj: Any, id_: str, hint: str | None = None) -> Error:
    return Error(msg, hint=hint, obj=obj, id=id_)


@register("django_arc")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors: list[Error] = []
    user = arc_settings.user_settings
    if not isinstance(user, dict):
        return [_err("settings.ARC must be a dict.", "ARC", "arc.E008")]
    for key, value in user.items():
        if key not in DEFAULTS:
            errors.append(
                _err(
                    f"Unknown ARC setting '{key}'.",
                    "ARC",
                    "arc.E007",
                    f"Known keys: {', '.join(sorted(DEFAULTS))}",
                )
            )
        elif isinstance(DEFAULTS[key], dict):
            if not isinstance(value, dict):
                errors.append(_err(f"ARC['{key}'] must be a dict.", "ARC", "arc.E008"))
                continue
            for sub in value:
                if sub not in DEFAULTS[key]:
                    errors.append(
                        _err(
                            f"Unknown ARC setting '{key}.{sub}'.",
                            "ARC",
                            "arc.E007",
                            f"Known keys: {', '.join(sorted(DEFAULTS[key]))}",
                        )
                    )
    merged = arc_settings.merged
    for key in ("DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE"):
        value = merged.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            errors.append(
                _err(f"ARC['{key}'] must be a positive integer, got {value!r}.", "ARC", "arc.E008")
            )
    if merged.get("ON_FIELD_WRITE_DENIED") not in ("reject", "strip"):
        errors.append(
            _err("ARC['ON_FIELD_WRITE_DENIED'] must be 'reject' or 'strip'.", "ARC", "arc.E008")
        )
    for dotted in sorted(IMPORT_STRINGS):
        value: Any = merged
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str):
            try:
                import_string(value)
            except ImportError as exc:
                errors.append(
                    _err(
                        f"ARC['{dotted}'] = {value!r} cannot be imported: {exc}",
                        "ARC",
                        "arc.E008",
                    )
                )
    return errors


@register("django_arc")
def check_resources(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from .sites import _all_sites

    errors: list[Error] = []
    for site in _all_sites:
        for resource in site.resources:
            errors.extend(check_resource(resource))
    return errors


def _field(model: type[models.Model], name: str) -> Any:
    try:
        return resolve_path(model, name)
    except (FieldDoesNotExist, AttributeError):
        return None


def check_resource(resource: Any) -> list[Error]:
    """Every problem with one resource definition, as system-check errors."""
    model = resource.model
    label = f"{type(resource).__qualname__} ('{resource.name}')"
    errors: list[Error] = []

    declared = resource.fields if resource.fields is not None else []
    for name in declared:
        if resource.serializer_class is None and _field(model, name) is None:
            errors.append(
                _err(
                    f"{label}: `fields` names unknown field '{name}' of {model.__name__}.",
                    label,
                    "arc.E001",
                )
            )
    for name in resource.read_only_fields:
        if name not in resource.all_fields:
            errors.append(
                _err(
                    f"{label}: `read_only_fields` names '{name}', which is not in `fields`.",
                    label,
                    "arc.E001",
                )
            )

    filter_fields = resource.filter_fields or {}
    if not isinstance(filter_fields, dict):
        filter_fields = {name: ["eq", "in"] for name in filter_fields}
    for name, ops in filter_fields.items():
        model_field = _field(model, name)
        if model_field is None:
            errors.append(
                _err(f"{label}: `filter_fields` names unknown field '{name}'.", label, "arc.E002")
            )
            continue
        if not isinstance(ops, (list, tuple, set, frozenset)):
            errors.append(
                _err(
                    f"{label}: `filter_fields['{name}']` must be a list of operators.",
                    label,
                    "arc.E003",
                )
            )
            continue
        target = _concrete(model_field)
        for op in ops:
            op_name = OPERATOR_ALIASES.get(op, op)
            if op_name not in OPERATORS:
                errors.append(
                    _err(
                        f"{label}: unknown operator '{op}' for filter field '{name}'.",
                        label,
                        "arc.E003",
                        f"Operators: {', '.join(sorted(OPERATORS))}",
                    )
                )
            elif op_name in TEXT_OPERATORS and not isinstance(target, _TEXT):
                errors.append(
                    _err(
                        f"{label}: operator '{op}' needs a text field; '{name}' is "
                        f"{type(target).__name__}.",
                        label,
                        "arc.E003",
                    )
                )
            elif op_name in ORDERING_OPERATORS and isinstance(target, _UNORDERED):
                errors.append(
                    _err(
                        f"{label}: operator '{op}' cannot compare "
                        f"{type(target).__name__} '{name}'.",
                        label,
                        "arc.E003",
                    )
                )
        if isinstance(target, models.JSONField):
            errors.append(
                _err(f"{label}: JSON field '{name}' cannot be filtered.", label, "arc.E002")
            )

    for name in resource.sort_fields or ():
        if _field(model, name) is None:
            errors.append(
                _err(f"{label}: `sort_fields` names unknown field '{name}'.", label, "arc.E004")
            )
    for part in (resource.default_sort or "").split(","):
        name = part.strip().lstrip("-+")
        if name and _field(model, name) is None:
            errors.append(
                _err(f"{label}: `default_sort` names unknown field '{name}'.", label, "arc.E004")
            )

    for name in resource.search_fields or ():
        model_field = _field(model, name)
        if model_field is None or not isinstance(model_field, _TEXT):
            errors.append(
                _err(
                    f"{label}: `search_fields` entry '{name}' must be a text field "
                    f"of {model.__name__}.",
                    label,
                    "arc.E005",
                )
            )

    lookup = resource.lookup_field
    if lookup != "pk":
        model_field = _field(model, lookup)
        if model_field is None or "__" in lookup:
            errors.append(
                _err(
                    f"{label}: `lookup_field` '{lookup}' is not a field of {model.__name__}.",
                    label,
                    "arc.E006",
                )
            )
        elif not (model_field.primary_key or model_field.unique):
            errors.append(
                _err(
                    f"{label}: `lookup_field` '{lookup}' must be unique.",
                    label,
                    "arc.E006",
                    "Add unique=True to the model field.",
                )
            )

    for name, rule in (resource.field_permissions or {}).items():
        if not isinstance(rule, FieldPermission):
            errors.append(
                _err(
                    f"{label}: `field_permissions['{name}']` must come from "
                    f"django_arc.fields (hidden(), visible_to(), ...).",
                    label,
                    "arc.E009",
                )
            )
        elif name not in resource.all_fields:
            errors.append(
                _err(
                    f"{label}: `field_permissions` names '{name}', which is not in `fields`.",
                    label,
                    "arc.E009",
                )
            )

    for key, value in (resource.permissions or {}).items():
        try:
            if value is not None:
                from .permissions import as_permission

                as_permission(value)
        except TypeError:
            errors.append(
                _err(f"{label}: `permissions['{key}']` is not a permission.", label, "arc.E010")
            )
    if resource.on_field_write_denied not in (None, "reject", "strip"):
        errors.append(
            _err(
                f"{label}: `on_field_write_denied` must be 'reject' or 'strip'.", label, "arc.E008"
            )
        )

    for preset in resource.presets or ():
        for problem in preset.check(resource):
            errors.append(_err(f"{label}: {problem}", label, "arc.E011"))
    return errors
