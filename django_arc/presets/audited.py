"""``Audited``: one ``AuditLog`` row per written row, in the write's transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import audit
from ..scope import get_scope
from .base import Preset
from .tenancy import MultiTenant

if TYPE_CHECKING:
    from ..resources import Resource


class Audited(Preset):
    """``Audited()``: every create, update, delete, restore and action of the resource
    leaves an :class:`~django_arc.audit.models.AuditLog` row — actor (user or service
    client), organization (the caller's, else the row's tenant), action (the event's verb), resource, object id, the changed
    fields before and after (never ``hidden()`` ones), request id, time. The row is written
    inside the write's transaction: a refused or rolled-back write leaves none."""

    name = "audited"

    def check(self, resource: Resource) -> list[str]:
        """The resource's name and each action's are written into the audit log's
        ``resource`` and ``action`` columns on every write: one longer than its column is
        stored by SQLite and refused by PostgreSQL, the write a 500."""
        from ..audit.models import AuditLog  # a model: importable only once apps are ready

        limits = {
            name: AuditLog._meta.get_field(name).max_length for name in ("resource", "action")
        }
        name = str(resource.name)
        problems = []
        if len(name) > limits["resource"]:
            problems.append(
                f"Audited(): `name` is {len(name)} characters; the audit log stores at most "
                f"{limits['resource']}."
            )
        problems += [
            f"Audited(): the action `{action}` is {len(str(action))} characters; the audit "
            f"log stores at most {limits['action']}."
            for action in resource.actions
            if len(str(action)) > limits["action"]
        ]
        return problems

    def after_write(
        self,
        view: Any,
        verb: str,
        instance: Any,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        self.entry(view, verb, instance, before, after).save(force_insert=True)

    def after_write_many(self, view: Any, verb: str, records: list[tuple[Any, Any, Any]]) -> None:
        """A bulk write's rows in one INSERT (:func:`django_arc.audit.record_many`); when
        the caller named no organization (an elevated bulk write across tenants) each
        entry names its row's (:meth:`organization`), in the same INSERT."""
        organizations = None
        if records and get_scope(view.request).organization_id is None:
            organizations = [self.organization(view, record[0]) for record in records]
        audit.record_many(
            view.request,
            verb,
            [self.recorded(view, *record) for record in records],
            resource=view.resource.name,
            organization_ids=organizations,
        )

    def organization(self, view: Any, instance: Any) -> Any:
        """The organization an entry of ``instance`` names when the caller named none: the
        row's tenant (``MultiTenant``'s organization column), else ``None``. A platform
        admin's elevated write without ``X-Organization-Id`` reaches every tenant's rows;
        its entries named no organization, so a tenant's history (the log filtered by
        ``organization_id``) left out every change a platform admin made to its rows."""
        for preset in view.resource.preset_list:
            if isinstance(preset, MultiTenant):
                value = preset.row_organization_id(instance)
                if value is not None:
                    return value
        return None

    def entry(
        self,
        view: Any,
        verb: str,
        instance: Any,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> Any:
        object_id, before, after = self.recorded(view, instance, before, after)
        organization = None
        if get_scope(view.request).organization_id is None:
            organization = self.organization(view, instance)
        return audit.entry(
            view.request,
            verb,
            resource=view.resource.name,
            object_id=object_id,
            before=before,
            after=after,
            organization_id=organization,
        )

    def recorded(
        self,
        view: Any,
        instance: Any,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> tuple[Any, dict[str, Any] | None, dict[str, Any] | None]:
        """What one row's entry records, for single and bulk writes alike: its id as the
        URL names it and the fields that changed, as events carry them (no hidden ones)."""
        return (
            view.id_value(instance),
            *audit.changed(
                None if before is None else view.event_data(before),
                None if after is None else view.event_data(after),
            ),
        )
