"""Declaring extra endpoints on a resource: ``@route`` (custom routes) and ``@action``
(domain actions behind ``POST /<name>/{id}/action/``).

Both decorators only record a :class:`RouteSpec`/:class:`ActionSpec` on the method; the
resource turns the specs (its own and those its presets contribute) into DRF ViewSet actions
when it builds its ViewSet, so presets and user code share one routing mechanism.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["action", "route", "RouteSpec", "ActionSpec"]


@dataclass
class RouteSpec:
    """An extra route: ``GET /<name>/<path>/`` (``detail=False``) or
    ``/<name>/{id}/<path>/`` (``detail=True``, the handler gets the looked-up instance).

    ``handler(resource, request[, instance])`` returns a JSON-able value (wrapped in the
    success envelope) or a DRF ``Response`` (sent as is). ``raw=True`` skips the envelope.
    ``permission_key`` names the entry of ``Resource.permissions`` to check when
    ``permissions`` is not given.
    """

    methods: list[str]
    path: str
    handler: Callable[..., Any]
    name: str = ""
    detail: bool = False
    permissions: Any = None
    permission_key: str | None = None
    raw: bool = False
    status: int = 200
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ActionSpec:
    """A domain action: ``POST /<name>/{id}/action/`` with ``{"action": name, ...input}``."""

    name: str
    handler: Callable[..., Any]
    permissions: Any = None
    input: Any = None


def route(
    method: str | list[str],
    path: str,
    *,
    permissions: Any = None,
    detail: bool = False,
    raw: bool = False,
    status: int = 200,
) -> Callable[[Callable], Callable]:
    """Add a custom route: ``@route("GET", "stats", permissions=P.require_auth())``."""
    methods = [method] if isinstance(method, str) else list(method)

    def decorator(func: Callable) -> Callable:
        func._arc_route = RouteSpec(
            methods=[m.upper() for m in methods],
            path=path.strip("/"),
            handler=func,
            name=func.__name__,
            detail=detail,
            permissions=permissions,
            raw=raw,
            status=status,
        )
        return func

    return decorator


def action(
    func: Callable | None = None,
    *,
    name: str | None = None,
    permissions: Any = None,
    input: Any = None,
) -> Any:
    """Declare a domain action: ``@action(permissions=P.require_org_role("admin"),
    input=ApproveInput)``; the method receives ``(request, instance, data)``."""

    def decorator(f: Callable) -> Callable:
        f._arc_action = ActionSpec(
            name=name or f.__name__, handler=f, permissions=permissions, input=input
        )
        return f

    return decorator(func) if func is not None else decorator
