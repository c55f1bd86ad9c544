"""``OwnedBy``: rows belong to whoever created them; only they (or a bypass role) change them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from rest_framework.permissions import SAFE_METHODS

from ..exceptions import ArcError
from ..permissions import has_any_role
from .base import Preset

if TYPE_CHECKING:
    from ..resources import Resource


class OwnedBy(Preset):
    """``OwnedBy(field="owner", bypass_roles=())``.

    - Create sets ``field`` to the caller: the user, for a foreign key to the user model; the
      service client, for a foreign key to ``ServiceClient``. A caller of the other kind
      leaves a nullable owner empty, and is refused (403 ``OWNERSHIP_DENIED``) where the
      field is required: a row must not get an arbitrary owner.
    - Every unsafe request on one row — update, delete, actions, preset routes such as
      restore — by anyone but the owner is 403 ``OWNERSHIP_DENIED`` when the caller may read
      the row (the resource's ``get`` permission), else the 404 of a missing row (no
      existence leak), unless the caller holds one of ``bypass_roles`` (org roles, user
      roles or service scopes) or is elevated. A row without an owner is changed only by
      those.
    - Reads are not narrowed: that is ``P.require_owner()``'s job.
    - ``field`` is never writable from a body.
    """

    name = "owned_by"
    needs_transaction = False  # the owner rides on the create's own INSERT

    def __init__(self, field: str = "owner", bypass_roles: tuple[str, ...] = ()) -> None:
        self.field = field
        self.bypass_roles = frozenset(bypass_roles)
        self.attname = field
        self.owned_by_clients = False
        self.nullable = False

    def bind(self, resource: Resource) -> None:
        # Imported here, not at the top: presets are importable before the app registry is
        # ready, and ServiceClient is a model.
        from ..clients import ServiceClient

        try:
            model_field = resource.model._meta.get_field(self.field)
        except FieldDoesNotExist:
            return
        self.attname = getattr(model_field, "attname", self.field)
        self.owned_by_clients = getattr(model_field, "related_model", None) is ServiceClient
        self.nullable = bool(model_field.null)

    def check(self, resource: Resource) -> list[str]:
        from ..clients import ServiceClient

        try:
            model_field = resource.model._meta.get_field(self.field)
        except FieldDoesNotExist:
            return [f"OwnedBy field '{self.field}' is not a field of {resource.model.__name__}"]
        target = getattr(model_field, "related_model", None)
        if not model_field.many_to_one or target not in (get_user_model(), ServiceClient):
            return [
                f"OwnedBy field '{self.field}' must be a foreign key to the user model or to "
                "django_arc.ServiceClient"
            ]
        return []

    def managed_fields(self, resource: Resource) -> set[str]:
        return {self.field, self.attname}

    def owner_of(self, view: Any) -> Any:
        """The primary key the caller owns rows under, or ``None``."""
        scope = view.scope
        if scope.kind == "service":
            return getattr(view.request.auth, "pk", None) if self.owned_by_clients else None
        return None if self.owned_by_clients else scope.user_id

    def check_request(self, view: Any) -> None:
        if view.permission_key == "create" and not self.nullable and self.owner_of(view) is None:
            raise ArcError("OWNERSHIP_DENIED", "This caller cannot own rows here", 403)

    def write_values(self, view: Any, instance: Any = None) -> dict[str, Any]:
        return {self.attname: self.owner_of(view)} if instance is None else {}

    def check_object(self, view: Any, obj: Any) -> None:
        if view.request.method in SAFE_METHODS:
            return
        scope = view.scope
        if scope.kind == "elevated" or (
            self.bypass_roles and has_any_role(scope, self.bypass_roles)
        ):
            return
        owner = getattr(obj, self.attname, None)
        caller = self.owner_of(view)
        if owner is None or caller is None or str(owner) != str(caller):
            # a row the caller may not read is the view's 404 instead (check_object_permissions)
            raise ArcError("OWNERSHIP_DENIED", "Only the owner may do this", 403)
