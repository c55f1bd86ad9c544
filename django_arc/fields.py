"""Field permissions: ``field_permissions = {"cost": F.visible_to("admin"), ...}``.

Read rules shape every response (list, get, write responses, ``select``); write rules are
enforced on the request body *before* validation, so a forbidden write is refused whole
(403 ``FIELD_WRITE_DENIED``) or stripped, never half-applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FieldPermission", "hidden", "visible_to", "writable_by", "read_only", "redact_for"]


def _holds(scope: Any, roles: frozenset[str]) -> bool:
    """Role test for field rules. Inside an organization the org roles decide (a member's
    global Django groups do not widen what it sees of a tenant's rows, and checking them would
    cost a query per request); service clients are judged by their scopes; callers without an
    org context by their user roles."""
    if scope.kind == "member":
        return bool(roles & frozenset(scope.org_roles or ()))
    if scope.kind == "service":
        return bool(roles & frozenset(scope.scopes or ()))
    return any(role in roles for role in (scope.user_roles or ()))


@dataclass(frozen=True)
class FieldPermission:
    """What a caller may do with one field.

    ``read_roles``/``write_roles`` of ``None`` mean everyone; an empty set means no one.
    Elevated callers (platform admins) pass every role test but never see ``hidden`` fields.
    """

    kind: str
    read_roles: frozenset[str] | None = None
    write_roles: frozenset[str] | None = None
    redact_roles: frozenset[str] = field(default_factory=frozenset)
    mask: Any = "***"

    @property
    def is_hidden(self) -> bool:
        return self.kind == "hidden"

    def can_read(self, scope: Any) -> bool:
        if self.is_hidden:
            return False
        if self.read_roles is None or scope.kind == "elevated":
            return True
        return _holds(scope, self.read_roles)

    def can_write(self, scope: Any) -> bool:
        if self.is_hidden or self.write_roles == frozenset():
            return False
        if self.write_roles is None or scope.kind == "elevated":
            return True
        return _holds(scope, self.write_roles)

    def redacts_for(self, scope: Any) -> bool:
        if not self.redact_roles or scope.kind == "elevated":
            return False
        return _holds(scope, self.redact_roles)


def hidden() -> FieldPermission:
    """Never read or written through the API; also refused in filter/sort/select/search as if
    the field did not exist, so it cannot be probed."""
    return FieldPermission("hidden", read_roles=frozenset(), write_roles=frozenset())


def visible_to(*roles: str) -> FieldPermission:
    """Omitted from output for callers without one of ``roles``. Those callers may not write
    it either: a field you cannot see is not yours to set."""
    r = frozenset(roles)
    return FieldPermission("visible_to", read_roles=r, write_roles=r)


def writable_by(*roles: str) -> FieldPermission:
    """Readable by everyone who can read the row; writable only with one of ``roles``."""
    return FieldPermission("writable_by", write_roles=frozenset(roles))


def read_only() -> FieldPermission:
    """Readable; never writable through the API (like ``read_only_fields``)."""
    return FieldPermission("read_only", write_roles=frozenset())


def redact_for(*roles: str, mask: Any = "***") -> FieldPermission:
    """Callers holding one of ``roles`` see ``mask`` instead of the value."""
    return FieldPermission("redact_for", redact_roles=frozenset(roles), mask=mask)
