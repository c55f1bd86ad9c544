"""Which organizations exist, for the places that bind a service client to one
(``manage.py arc_create_client``, the client's admin form).

django-arc does not own the organization model, so it asks the resources' presets
(``Preset.organization_models``) which models their rows' organization ids point at (e.g.
``Product.organization`` → ``shop.Organization``). A client for an organization that does
not exist would be a key that can never read anything, or one waiting for whatever
organization is created under that id later.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from .query import UNREADABLE, column_value
from .sites import registry_state, served_resources


def organization_models() -> list[type[models.Model]]:
    """The models organization ids point at, as the presets of every served resource (on a
    site or routed by hand) name them
    (:meth:`~django_arc.presets.base.Preset.organization_models`)."""
    found: list[type[models.Model]] = []
    for resource in served_resources():
        for preset in resource.preset_list:
            for model in sorted(preset.organization_models(resource), key=lambda m: m._meta.label):
                if model not in found:
                    found.append(model)
    return found


def organization_exists(model: type[models.Model], org: str) -> bool:
    """Whether ``org`` names a row of ``model``: an id its primary key cannot hold (not a
    number, out of the column's range) names none, rather than failing the query."""
    pk = model._meta.pk
    try:
        value = pk.to_python(org)
        pk.run_validators(value)  # out of the column's range: no such row
        # (Django 4.2's SQLite backend has no range to validate: its driver overflows)
        return model._default_manager.filter(pk=value).exists()
    except (ValidationError, ValueError, TypeError, OverflowError):
        return False


#: (registry state, the fields organization ids are read with): see :func:`_id_fields`
_fields_memo: tuple[Any, tuple[Any, ...]] = (None, ())
_UNREAD = object()


def _id_fields() -> tuple[Any, ...]:
    """Every field a registered resource's presets read the scope's organization id with
    (:meth:`~django_arc.presets.base.Preset.organization_id_fields`), listed once per
    change of the served resources. A resource routed by hand counts: listed from the
    sites only, its column was not asked, so where it reads ``01`` as a slug and the
    registered ones as the id ``1``, ``01`` became ``1`` for it too, the rows of the
    organization slugged ``1``."""
    global _fields_memo
    state = registry_state()
    if _fields_memo[0] != state:
        found: list[Any] = []
        for resource in served_resources():
            try:
                presets = resource.preset_list
                fields = [f for p in presets for f in p.organization_id_fields(resource)]
            except Exception:  # noqa: BLE001 - a broken preset is manage.py check's
                continue
            found.extend(f for f in fields if f not in found)
        _fields_memo = (state, tuple(found))
    return _fields_memo[1]


def _read(field: Any, raw: str) -> Any:
    try:
        return column_value(field, raw)
    except UNREADABLE:
        return _UNREAD


def canonical_organization_id(raw: str) -> str:
    """The one spelling of the organization ``raw`` names, as the tenant columns read it:
    ``X-Organization-Id: 01`` is ``"1"`` where every tenant column is an integer, a UUID in
    capitals or without dashes is its lowercase dashed form. The scope carries it, so the
    query cache, idempotency keys, events, audit rows and ``has_org_access`` see one
    identity for one organization (the membership resolver is asked first, with the header
    as sent: who is admitted does not change).

    Never another organization: ``raw`` becomes the spelling ``s`` only when every field
    reading organization ids (what each resource's presets name in
    ``organization_id_fields``) reads ``s`` exactly as it reads ``raw`` (the same value, or
    unreadable by both). Where they differ (``"01"`` is organization 1 to an ``id`` and the
    organization whose slug is ``"01"`` to a ``to_field="slug"`` relation), or no preset
    reads organization ids, ``raw`` is kept as sent."""
    fields = _id_fields()
    if not fields:
        return raw
    readings = [_read(field, raw) for field in fields]
    spellings = {str(value) for value in readings if value is not _UNREAD}
    if len(spellings) != 1:
        return raw
    canonical = spellings.pop()
    if canonical == raw:
        return raw
    for field, value in zip(fields, readings, strict=True):
        again = _read(field, canonical)
        if (again is _UNREAD) != (value is _UNREAD) or (value is not _UNREAD and again != value):
            return raw
    return canonical
