"""Which organizations exist, for the places that bind a service client to one
(``manage.py arc_create_client``, the client's admin form).

django-arc does not own the organization model, so it asks the resources' presets
(``Preset.organization_models``) which models their rows' organization ids point at (e.g.
``Product.organization`` → ``shop.Organization``). A client for an organization that does
not exist would be a key that can never read anything, or one waiting for whatever
organization is created under that id later.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from .sites import _all_sites


def organization_models() -> list[type[models.Model]]:
    """The models organization ids point at, as the presets of every registered resource
    name them (:meth:`~django_arc.presets.base.Preset.organization_models`)."""
    found: list[type[models.Model]] = []
    for site in _all_sites:
        for resource in site.resources:
            for preset in resource.preset_list:
                for model in sorted(
                    preset.organization_models(resource), key=lambda m: m._meta.label
                ):
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
