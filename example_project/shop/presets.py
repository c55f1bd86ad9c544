"""A custom preset, written against django-arc's preset contract (``docs/presets.md``).

``ArchiveOnDelete`` keeps rows instead of deleting them: ``DELETE`` sets a field to a value,
archived rows drop out of the API, and ``GET /<name>/archived/`` lists them with the full query
language and pagination. Everything it reads goes through the view, so the archived list is
exactly as tenant-scoped and permission-filtered as the normal one.
"""

from django.core.exceptions import FieldDoesNotExist
from django.db.models import Q

from django_arc import presets
from django_arc.actions import PAGE, RouteSpec


class ArchiveOnDelete(presets.Preset):
    """DELETE sets ``field`` to ``value`` instead of deleting; archived rows leave the API."""

    name = "archive_on_delete"

    def __init__(self, field: str = "status", value: str = "archived") -> None:
        self.field, self.value = field, value

    def check(self, resource):
        try:
            resource.model._meta.get_field(self.field)
        except FieldDoesNotExist:
            return [
                f"ArchiveOnDelete field '{self.field}' is not a field of {resource.model.__name__}"
            ]
        return []

    def row_filter(self, view):
        archived = Q(**{self.field: self.value})
        return archived if view.action == "archived" else ~archived  # "archived": see routes()

    def perform_delete(self, view, instance):
        setattr(instance, self.field, self.value)
        instance.save(update_fields=[self.field])
        return True  # "soft": true, no hard delete

    def routes(self, resource):
        return [
            RouteSpec(
                methods=["GET"],
                path="archived",
                handler=self.archived,
                name="archived",
                permission_key="list",  # whoever may list may list the archive
                response=PAGE,
                summary="List archived rows",
            )
        ]

    def archived(self, view, request):
        # The list's own machinery: the view's queryset (tenancy, permission filters, and
        # row_filter above), the query language, the pagination classes and the envelope.
        return view.list_response(view.filter_queryset(view.get_queryset()))
