"""Input checks shared by django-arc's admin pages (outbox, dead letters, audit log, service
clients).

Django's changelist hands its query string to the database as it comes: on PostgreSQL a NUL
character in a filter value (``?type=%00``, ``?resource=%00``) fails the query when the page
renders, and a selected row id that is not a primary key (``_selected_action=abc``, or one past
the column's range) fails the action's query. Each is a 500 with a traceback. These checks
answer them with a 400 that names the parameter before any query runs.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import HttpResponseBadRequest

#: The range of a 64-bit integer column, for backends that declare no range of their own
#: (Django 4.2's SQLite, whose driver raises ``OverflowError`` past it).
_INT64 = (-(2**63), 2**63 - 1)


def is_primary_key(model: type[models.Model], value: Any) -> bool:
    """``value`` converts to a primary key of ``model`` that its column can hold."""
    pk = model._meta.pk
    try:
        converted = pk.to_python(value)
        pk.run_validators(converted)
    except (ValidationError, ValueError, TypeError, OverflowError):
        return False
    if isinstance(converted, int) and not _INT64[0] <= converted <= _INT64[1]:
        return False
    return converted is not None


def refused_input(request: Any, model: type[models.Model]) -> HttpResponseBadRequest | None:
    """A 400 naming the first parameter a changelist request may not carry, else ``None``."""
    for source in (request.GET, request.POST):
        for name, values in source.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                return HttpResponseBadRequest(
                    f"Parameter {name!r} contains a NUL character.", content_type="text/plain"
                )
    for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
        if not is_primary_key(model, value):
            return HttpResponseBadRequest(
                f"Parameter {helpers.ACTION_CHECKBOX_NAME!r} must hold ids of "
                f"{model._meta.verbose_name_plural}; {value[:40]!r} is not one.",
                content_type="text/plain",
            )
    return None


class RefuseOddInputMixin:
    """For a ``ModelAdmin``: its changelist (list, filters, search, actions) answers odd
    input with a 400 from :func:`refused_input` instead of a 500."""

    def changelist_view(self, request: Any, extra_context: Any = None) -> Any:
        if not self.has_view_or_change_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied  # a caller without access learns nothing from a 400
        refused = refused_input(request, self.model)  # type: ignore[attr-defined]
        if refused is not None:
            return refused
        return super().changelist_view(request, extra_context)  # type: ignore[misc]
