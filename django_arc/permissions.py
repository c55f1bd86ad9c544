"""Permission builders for resources: ``permissions = {"list": P.require_auth(), ...}``.

A permission answers ``(request, resource, action, obj=None)`` with ``True``/``False`` or a
:class:`PermissionResult`. A result may carry ``filters`` (a dict of field lookups or a ``Q``):
the resource ANDs them into list querysets and into the single-object lookup of
get/update/delete/actions, so a row the caller may not touch is simply not found (404, never
403: no existence leak). Missing permission keys deny (fail closed), except ``list``/``get``
which default to :func:`require_auth`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

__all__ = [
    "PermissionResult",
    "Permission",
    "allow_public",
    "require_auth",
    "require_roles",
    "require_org_membership",
    "require_org_role",
    "require_service_scope",
    "require_owner",
    "any_of",
    "all_of",
    "deny_all",
    "when",
    "as_permission",
    "never_grants",
    "has_any_role",
    "permission_problem",
]


@dataclass(frozen=True)
class PermissionResult:
    """The outcome of a check; ``reason`` becomes the 403 message, ``filters`` narrow rows."""

    granted: bool
    reason: str = ""
    filters: dict[str, Any] | Q | None = None

    def __bool__(self) -> bool:
        return self.granted


GRANTED = PermissionResult(True)

#: no such attribute (``require_owner``: the field is no foreign key)
_UNSET = object()


def _scope(request: Any) -> Any:
    from .scope import get_scope

    return get_scope(request)


def has_any_role(scope: Any, roles: frozenset[str]) -> bool:
    """Whether the caller holds one of ``roles``. Org roles (already resolved with the
    membership) and service scopes are tried first; user roles may cost a query (groups), so
    they are loaded only when nothing cheaper matched."""
    if roles & frozenset(scope.org_roles or ()):
        return True
    if scope.kind == "service" and roles & frozenset(scope.scopes or ()):
        return True
    return any(role in roles for role in (scope.user_roles or ()))


class Permission:
    """Base class: subclass and implement :meth:`check`, or wrap a callable with
    :func:`as_permission`. Instances are shared between requests: keep them stateless."""

    def check(
        self, request: Any, resource: Any, action: str, obj: Any = None
    ) -> bool | PermissionResult:
        """Override in subclasses; the base class denies (fail closed)."""
        return PermissionResult(False, "Permission denied")

    def __call__(
        self, request: Any, resource: Any, action: str, obj: Any = None
    ) -> PermissionResult:
        return _normalize(self.check(request, resource, action, obj))

    def __or__(self, other: Any) -> Permission:
        return any_of(self, other)

    def __and__(self, other: Any) -> Permission:
        return all_of(self, other)


def _normalize(result: Any) -> PermissionResult:
    if isinstance(result, PermissionResult):
        return result
    if isinstance(result, Permission) or callable(result):
        # A builder used without calling it (``P.require_org_role`` in place of
        # ``P.require_org_role("admin")``) returns a permission when called with the request:
        # truthy, so it would grant everyone. ``manage.py check`` reports it (arc.E010);
        # should one slip through, refuse to guess.
        raise TypeError(
            f"a permission returned {result!r} instead of a bool or PermissionResult; "
            "was a permission builder used without calling it?"
        )
    return GRANTED if result else PermissionResult(False, "Permission denied")


class _FunctionPermission(Permission):
    def __init__(self, func: Callable[..., Any], name: str | None = None) -> None:
        self.func = func
        self.name = name or getattr(func, "__name__", "permission")

    def check(self, request, resource, action, obj=None):
        return self.func(request, resource, action, obj)

    def __repr__(self) -> str:
        return f"<Permission {self.name}>"


class _DRFPermission(Permission):
    """Adapter for a DRF ``BasePermission`` class: ``has_permission`` without an object,
    ``has_object_permission`` with one."""

    def __init__(self, permission_class: type) -> None:
        self.permission_class = permission_class
        permission_class()  # a class that cannot be made fails at declaration, not per request

    def check(self, request, resource, action, obj=None):
        # One instance per check, as DRF makes one per request: a permission may keep what
        # it found on ``self`` (its refusal's ``message``, naming the caller's organization),
        # which a shared instance handed to the next caller, on any thread.
        permission = self.permission_class()
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if obj is None:
            allowed = permission.has_permission(request, view)
        else:
            allowed = permission.has_object_permission(request, view, obj)
        message = getattr(permission, "message", None) or "Permission denied"
        return GRANTED if allowed else PermissionResult(False, str(message))


def _is_drf_permission(value: Any) -> bool:
    """A DRF permission class, or DRF's composition of them (``IsAuthenticated & IsAdmin``),
    which is instantiated like a class."""
    from rest_framework.permissions import BasePermission, OperationHolderMixin

    if isinstance(value, type):
        return issubclass(value, BasePermission)
    return isinstance(value, OperationHolderMixin)


def as_permission(value: Any) -> Permission:
    """Turn any accepted permission spelling into a :class:`Permission`."""
    if isinstance(value, Permission):
        return value
    if _is_drf_permission(value):
        return _DRFPermission(value)
    if callable(value) and not isinstance(value, type):
        return _FunctionPermission(value)
    raise TypeError(f"Not a permission: {value!r}")


def allow_public() -> Permission:
    """Anyone, including anonymous callers. Does not lift tenancy (see MultiTenant)."""
    return _FunctionPermission(lambda request, resource, action, obj: True, "allow_public")


def _authenticated(scope: Any) -> bool:
    return scope.kind != "public"


def require_auth() -> Permission:
    """Any authenticated caller: user, service client or elevated admin."""

    def check(request, resource, action, obj):
        if _authenticated(_scope(request)):
            return GRANTED
        return PermissionResult(False, "Authentication required")

    return _FunctionPermission(check, "require_auth")


def require_roles(*roles: str) -> Permission:
    """Caller holds one of ``roles`` as a user role or an org role; elevated callers pass."""
    wanted = frozenset(roles)

    def check(request, resource, action, obj):
        scope = _scope(request)
        if scope.kind == "elevated" or has_any_role(scope, wanted):
            return GRANTED
        return PermissionResult(False, f"Requires one of roles: {', '.join(sorted(wanted))}")

    return _FunctionPermission(check, f"require_roles{roles}")


def require_org_membership() -> Permission:
    """Caller acts inside an organization: a member, a service client of it, or elevated."""

    def check(request, resource, action, obj):
        scope = _scope(request)
        if scope.kind in ("member", "service", "elevated"):
            return GRANTED
        return PermissionResult(False, "Organization membership required")

    return _FunctionPermission(check, "require_org_membership")


def require_org_role(*roles: str) -> Permission:
    """A human member holding one of ``roles`` in the current org; elevated callers pass,
    service clients do not (give them :func:`require_service_scope`)."""
    wanted = frozenset(roles)

    def check(request, resource, action, obj):
        scope = _scope(request)
        if scope.kind == "elevated":
            return GRANTED
        if scope.kind == "member" and wanted & frozenset(scope.org_roles or ()):
            return GRANTED
        return PermissionResult(False, f"Requires organization role: {', '.join(sorted(wanted))}")

    return _FunctionPermission(check, f"require_org_role{roles}")


def require_service_scope(*scopes: str) -> Permission:
    """A service client holding any of ``scopes``; elevated callers pass."""
    wanted = frozenset(scopes)

    def check(request, resource, action, obj):
        scope = _scope(request)
        if scope.kind == "elevated":
            return GRANTED
        if scope.kind == "service" and wanted & frozenset(scope.scopes or ()):
            return GRANTED
        return PermissionResult(False, f"Requires service scope: {', '.join(sorted(wanted))}")

    return _FunctionPermission(check, f"require_service_scope{scopes}")


def require_owner(field: str = "owner") -> Permission:
    """Only rows whose ``field`` is the caller: a filter on lists and lookups, a comparison
    when an object is given. Elevated callers see every row."""

    def check(request, resource, action, obj):
        scope = _scope(request)
        if scope.kind == "elevated":
            return GRANTED
        if scope.user_id is None:
            return PermissionResult(False, "Authentication required")
        if obj is not None:
            # the column when the field is a foreign key: its row is not loaded to compare
            owner_id = getattr(obj, f"{field}_id", _UNSET)
            if owner_id is _UNSET:
                owner_id = getattr(obj, field, None)
                owner_id = getattr(owner_id, "pk", owner_id)
            if str(owner_id) != str(scope.user_id):
                return PermissionResult(False, "Only the owner may do this")
            return GRANTED
        return PermissionResult(True, filters={field: scope.user_id})

    return _FunctionPermission(check, f"require_owner({field})")


class _DenyAll(Permission):
    def check(self, request, resource, action, obj=None):
        return PermissionResult(False, "Not permitted")

    def __repr__(self) -> str:
        return "<Permission deny_all>"


def deny_all() -> Permission:
    """Nobody, elevated callers included. ``manage.py check`` knows it never grants
    (:func:`never_grants`)."""
    return _DenyAll()


def _as_q(filters: dict[str, Any] | Q) -> Q:
    return filters if isinstance(filters, Q) else Q(**filters)


class _Invalid(Permission):
    """What a combinator was given that is no permission. Kept (rather than raised at import
    time, a traceback while apps load) so ``manage.py check`` names it (arc.E010); should a
    request reach it anyway, it refuses to decide."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def check(self, request, resource, action, obj=None):
        raise TypeError(f"Not a permission: {self.value!r}")


def _coerce(value: Any) -> Permission:
    try:
        return as_permission(value)
    except TypeError:
        return _Invalid(value)


class _AllOf(Permission):
    def __init__(self, checks: Iterable[Any]) -> None:
        self.checks = [_coerce(c) for c in checks]

    def check(self, request, resource, action, obj=None):
        combined: Q | None = None
        for permission in self.checks:
            result = permission(request, resource, action, obj)
            if not result.granted:
                return result
            if result.filters:
                q = _as_q(result.filters)
                combined = q if combined is None else combined & q
        return PermissionResult(True, filters=combined)


class _AnyOf(Permission):
    def __init__(self, checks: Iterable[Any]) -> None:
        self.checks = [_coerce(c) for c in checks]

    def check(self, request, resource, action, obj=None):
        reasons: list[str] = []
        filtered: Q | None = None
        for permission in self.checks:
            result = permission(request, resource, action, obj)
            if result.granted:
                if not result.filters:
                    return GRANTED  # an unrestricted grant beats any filtered one
                q = _as_q(result.filters)
                filtered = q if filtered is None else filtered | q
            elif result.reason:
                reasons.append(result.reason)
        if filtered is not None:
            return PermissionResult(True, filters=filtered)
        return PermissionResult(False, "; ".join(reasons) or "Permission denied")


def all_of(*checks: Any) -> Permission:
    """Every check must grant; their filters are ANDed."""
    return _AllOf(checks)


def any_of(*checks: Any) -> Permission:
    """One check must grant; an unfiltered grant wins, otherwise the filters are ORed."""
    return _AnyOf(checks)


class _When(Permission):
    def __init__(self, predicate: Callable[..., bool], check: Any) -> None:
        self.predicate = predicate
        self.inner = _coerce(check)

    def check(self, request, resource, action, obj=None):
        if self.predicate(request, resource, action, obj):
            return self.inner(request, resource, action, obj)
        return GRANTED

    def __repr__(self) -> str:
        return "<Permission when>"


def when(predicate: Callable[..., bool], check: Any) -> Permission:
    """Apply ``check`` only when ``predicate(request, resource, action, obj)`` holds;
    otherwise grant. E.g. ``when(lambda r, *_: r.method == "DELETE", require_org_role("admin"))``."""
    return _When(predicate, check)


def never_grants(value: Any) -> bool:
    """Whether ``value`` denies every request whatever it is, as declared: ``None``,
    :func:`deny_all`, an :func:`all_of` with such a check, an :func:`any_of` of only such
    checks. A rule that denies at request time only (a callable returning ``False``, a
    ``when()`` whose predicate always holds) is not known to: it may grant tomorrow."""
    if value is None or isinstance(value, _DenyAll):
        return True
    if isinstance(value, _AllOf):
        return any(never_grants(check) for check in value.checks)
    if isinstance(value, _AnyOf):
        return all(never_grants(check) for check in value.checks)
    return False


# -- validation at start-up (``manage.py check``, arc.E010) ---------------------------------

#: the builders of this module: each must be *called* to give a permission
BUILDERS = (
    allow_public,
    require_auth,
    require_roles,
    require_org_membership,
    require_org_role,
    require_service_scope,
    require_owner,
    any_of,
    all_of,
    deny_all,
    when,
)
_CALL = "(request, resource, action, obj=None)"
#: what a permission may be, for check hints
PERMISSION_KINDS = (
    "A permission is a builder of django_arc.permissions, called (P.require_auth(), "
    f"P.require_org_role('admin')), a callable {_CALL} returning a bool or "
    "PermissionResult, or a DRF BasePermission class; None denies."
)


def _is_builder(func: Any) -> bool:
    """One of ours, or a project's own builder (annotated ``-> Permission``)."""
    if func in BUILDERS:
        return True
    try:
        returns = inspect.signature(func).return_annotation
    except (TypeError, ValueError):
        return False
    return returns is Permission or returns == "Permission"


def _callable_name(func: Any) -> str:
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if name is None:
        return repr(func)
    return "the lambda " if name.endswith("<lambda>") else name


def _signature_problem(func: Any, role: str) -> str | None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None  # a builtin without introspectable signature: judged at request time
    try:
        signature.bind(None, None, None, None)
    except TypeError:
        name = getattr(func, "__name__", "check")
        name = "check" if name == "<lambda>" else name
        return (
            f"{role} {_callable_name(func)}{signature}, which cannot be called as {_CALL}; "
            f"define it as def {name}{_CALL}."
        )
    return None


def permission_problem(value: Any) -> str | None:
    """Why ``value`` cannot guard a route, or ``None`` when it can (``None`` itself denies).

    Catches at start-up what would otherwise fail at request time: a builder used without
    calling it (for ``require_org_role`` that would even *grant* everyone), a callable that
    cannot take ``(request, resource, action, obj)``, a permission class given where an
    instance is needed (and the reverse for DRF), or something that is no permission at all.
    Combinators (``any_of``, ``all_of``, ``when``) are checked through."""
    if value is None:
        return None
    if isinstance(value, Permission):
        return _inner_problem(value)
    if _is_drf_permission(value):
        return None
    if isinstance(value, type):
        if issubclass(value, Permission):
            return (
                f"is the class {value.__name__}, not a permission: instantiate it, "
                f"{value.__name__}()."
            )
        return f"is the class {value.__name__}, which is not a permission."
    if callable(value):
        if _is_builder(value):
            name = ("P." if value in BUILDERS else "") + getattr(value, "__name__", "builder")
            args = "()" if not inspect.signature(value).parameters else "(...)"
            return f"is the builder {name} itself, not a permission: call it, {name}{args}."
        return _signature_problem(value, "is")
    from rest_framework.permissions import BasePermission

    if isinstance(value, BasePermission):
        name = type(value).__name__
        return f"is an instance of the DRF permission {name}: pass the class, {name}."
    if isinstance(value, (list, tuple, set, frozenset)):
        return (
            "is a collection, not a permission: combine permissions with P.any_of(...) "
            "or P.all_of(...)."
        )
    return f"is {value!r}, which is not a permission."


def _inner_problem(permission: Permission) -> str | None:
    if isinstance(permission, _Invalid):
        return permission_problem(permission.value) or "is not a permission."
    if isinstance(permission, _FunctionPermission):
        return permission_problem(permission.func)
    if isinstance(permission, (_AllOf, _AnyOf)):
        combinator = "all_of" if isinstance(permission, _AllOf) else "any_of"
        for position, inner in enumerate(permission.checks, 1):
            problem = _inner_problem(inner)
            if problem:
                return f"{combinator}() argument {position} {problem}"
        return None
    if isinstance(permission, _When):
        problem = _signature_problem(permission.predicate, "when() predicate")
        if problem:
            return f"has a {problem}"
        problem = _inner_problem(permission.inner)
        return f"when() check {problem}" if problem else None
    # A project's own subclass: ``__call__`` passes ``obj`` to ``check`` on every request, so a
    # ``check(self, request, resource, action)`` would be a TypeError (a 500) on every call.
    if type(permission).__call__ is not Permission.__call__:
        return _signature_problem(permission, "is")
    if type(permission).check is not Permission.check:
        return _signature_problem(permission.check, "has the check method")
    return None
