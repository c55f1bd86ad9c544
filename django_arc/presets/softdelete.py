"""``SoftDelete``: ``DELETE`` keeps the row, stamped, out of every route but its own two."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import Q
from django.db.models.lookups import IsNull
from django.db.models.sql.where import AND, WhereNode
from django.utils import timezone

from ..actions import INSTANCE, PAGE, RouteSpec
from ..exceptions import NotFound, RowsGone
from ..transactions import lockable
from .base import Preset

if TYPE_CHECKING:
    from ..resources import Resource

#: the preset's own routes (``view.action`` names them)
DELETED_ROUTE = "deleted"
RESTORE_ROUTE = "restore"


class SoftDelete(Preset):
    """``SoftDelete(field="deleted_at")`` (a nullable ``DateTimeField``).

    - ``DELETE /<name>/{id}/`` sets ``field`` to now and answers ``"soft": true``; the
      ``<name>.deleted`` event says ``"soft": true``.
    - Every other route (list, get, update, actions, other presets' routes) sees only rows
      whose ``field`` is null: a deleted row is 404 there.
    - ``GET /<name>/deleted/`` lists the caller's visible deleted rows (``list`` permission,
      the whole query language and pagination); ``POST /<name>/{id}/restore/`` clears the
      field (``update`` permission) and emits ``<name>.restored``.
    - ``field`` is never writable from a body.
    """

    name = "soft_delete"
    routes_by_action = (DELETED_ROUTE, RESTORE_ROUTE)

    def __init__(self, field: str = "deleted_at") -> None:
        self.field = field

    def check(self, resource: Resource) -> list[str]:
        try:
            model_field = resource.model._meta.get_field(self.field)
        except FieldDoesNotExist:
            return [f"SoftDelete field '{self.field}' is not a field of {resource.model.__name__}"]
        if not isinstance(model_field, models.DateTimeField) or not model_field.null:
            return [f"SoftDelete field '{self.field}' must be a DateTimeField with null=True"]
        base = (
            resource.queryset if resource.queryset is not None else resource.model._default_manager
        )
        try:
            queryset = base.all()
            # The alias the row's own column has in this query: a self-referential relation
            # (``filter(parent__deleted_at=None)``) reaches the same field through a join.
            own = queryset.filter(**{f"{self.field}__isnull": True}).query.where
            while isinstance(own, WhereNode):
                own = own.children[-1]
            alias = own.lhs.alias
            where = queryset.query.where
        except Exception:  # noqa: BLE001 - a project's manager the check cannot build: not judged
            return []
        if _keeps_only_null(where, model_field, alias):
            # Every route starts from this queryset (the trash and restore too): with the
            # deleted rows already left out, the trash is always empty and no row can be
            # restored, while each DELETE still answers "soft": true.
            return [
                f"The base queryset of {type(resource).__name__} (its `queryset`, or "
                f"{resource.model.__name__}'s default manager) leaves out the rows SoftDelete "
                f"field '{self.field}' marks deleted, so its trash is always empty and no row "
                "can be restored: start from every row (e.g. `queryset = "
                f"{resource.model.__name__}.all_objects.all()`, a manager that hides none)"
            ]
        return []

    def event_verbs(self, resource: Resource) -> set[str]:
        return {"restored"}

    def managed_fields(self, resource: Resource) -> set[str]:
        return {self.field}

    def row_filter(self, view: Any) -> Q:
        # a refused restore asks whether the caller may read its row as the ``deleted``
        # list reads it (``reading_route``): ``view.action`` is then ``deleted``
        deleted = view.action in self.routes_by_action
        return Q(**{f"{self.field}__isnull": not deleted})

    def reading_route(self, action: str | None) -> str | None:
        # a restore writes a deleted row, which the ``deleted`` list reads (``list``
        # permission and filters), never a GET of the row
        return DELETED_ROUTE if action == RESTORE_ROUTE else None

    def perform_delete(self, view: Any, instance: Any) -> bool:
        # One conditional UPDATE: a row another request deleted (softly or not) since this
        # one read it is 404, as it would be read now, with no second stamp and no event.
        now = timezone.now()
        if not self._stamp(instance, deleted=False, value=now):
            raise NotFound(f"{view.resource.name} row deleted while the request ran")
        setattr(instance, self.field, now)
        return True

    def _stamp(self, instance: Any, *, deleted: bool, value: Any) -> int:
        """Set ``field`` to ``value`` on ``instance``'s row if it is still (not) deleted;
        the number of rows written (0 or 1)."""
        rows = type(instance)._base_manager.filter(
            pk=instance.pk, **{f"{self.field}__isnull": not deleted}
        )
        return rows.update(**{self.field: value})

    def perform_delete_many(self, view: Any, instances: list[Any]) -> bool:
        now = timezone.now()
        model = type(instances[0])
        pks = [i.pk for i in instances]
        live = model._base_manager.filter(pk__in=pks, **{f"{self.field}__isnull": True})
        # locked first, in primary-key order, as a bulk write's rows are: the UPDATE alone
        # locks them in the order its plan reads them, so two bulk deletes over overlapping
        # rows could each hold a row the other waits for (PostgreSQL's deadlock, a 500)
        # (``lockable``: a base manager reading ``distinct()`` cannot be locked as it is)
        locked = lockable(live).select_for_update().order_by("pk")
        present = set(locked.values_list("pk", flat=True))
        if len(present) < len(instances):
            # some were deleted (softly or not) by another request since this one read
            # them: refused as a bulk delete naming them now would be, nothing stamped
            raise RowsGone("ids", pks, present)
        live.update(**{self.field: now})
        for instance in instances:
            setattr(instance, self.field, now)
        return True

    def routes(self, resource: Resource) -> list[RouteSpec]:
        return [
            RouteSpec(
                methods=["GET"],
                path="deleted",
                handler=self.deleted,
                name=DELETED_ROUTE,
                permission_key="list",
                response=PAGE,
                summary="List soft-deleted rows",
            ),
            RouteSpec(
                methods=["POST"],
                path="restore",
                handler=self.restore,
                name=RESTORE_ROUTE,
                detail=True,
                permission_key="update",
                response=INSTANCE,
                summary="Restore a soft-deleted row",
            ),
        ]

    def deleted(self, view: Any, request: Any) -> Any:
        return view.list_response(view.filter_queryset(view.get_queryset()))

    def restore(self, view: Any, request: Any) -> Any:
        # A POST route: already inside the route's transaction, with its event.
        instance = view.get_object()
        observed = bool(view.resource.write_observers)
        before = view.snapshot(instance) if observed else None
        if not self._stamp(instance, deleted=True, value=None):
            # restored (or deleted for good) by another request since this one read it
            raise NotFound(f"{view.resource.name} row restored while the request ran")
        setattr(instance, self.field, None)
        after = view.snapshot(instance) if observed else None
        view.after_write("restored", instance, {"id": view.id_value(instance)}, before, after)
        return instance


def _keeps_only_null(
    node: WhereNode, field: models.Field, alias: str, negated: bool = False
) -> bool:
    """Whether the ``WHERE`` tree ``node`` requires ``field IS NULL`` of every row it keeps:
    an ``isnull`` lookup on ``field`` reached through ``AND``s only (a negation of one
    condition flips it), as ``filter(field=None)``, ``filter(field__isnull=True)`` and
    ``exclude(field__isnull=False)`` build it. Anything under an ``OR``, or a negated group
    of several, may keep a deleted row: not judged. Only ``field`` under ``alias``, the
    row's own column, counts: the same field reached through a join (a self-referential
    foreign key's ``parent__deleted_at``) is another row's."""
    negated ^= node.negated
    if len(node.children) > 1 and (node.connector != AND or negated):
        return False
    for child in node.children:
        if isinstance(child, WhereNode):
            if _keeps_only_null(child, field, alias, negated):
                return True
        elif (
            isinstance(child, IsNull)
            and getattr(child.lhs, "target", None) is field
            and getattr(child.lhs, "alias", None) == alias
            and isinstance(child.rhs, bool)
            and child.rhs is not negated
        ):
            return True
    return False
