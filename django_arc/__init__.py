"""django-arc: declarative resources for Django REST Framework.

Public API: ``arc``, ``ResourceSite``, ``Resource``, ``action``, ``route``, ``ArcError``,
``PermissionResult`` and the modules ``permissions``, ``fields``, ``presets``, ``events``.
Everything else is private by convention.

Names are resolved lazily (PEP 562) so that Django can import ``django_arc`` while loading
apps, before models and DRF are ready.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from . import events as events
    from . import fields as fields
    from . import permissions as permissions
    from . import presets as presets
    from .actions import action as action
    from .actions import route as route
    from .exceptions import ArcError as ArcError
    from .permissions import PermissionResult as PermissionResult
    from .resources import Resource as Resource
    from .sites import ResourceSite as ResourceSite
    from .sites import arc as arc

__version__ = "0.1.0.dev0"

_EXPORTS = {
    "arc": ("django_arc.sites", "arc"),
    "ResourceSite": ("django_arc.sites", "ResourceSite"),
    "Resource": ("django_arc.resources", "Resource"),
    "action": ("django_arc.actions", "action"),
    "route": ("django_arc.actions", "route"),
    "ArcError": ("django_arc.exceptions", "ArcError"),
    "PermissionResult": ("django_arc.permissions", "PermissionResult"),
    "permissions": ("django_arc.permissions", None),
    "fields": ("django_arc.fields", None),
    "presets": ("django_arc.presets", None),
    "events": ("django_arc.events", None),
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'django_arc' has no attribute {name!r}") from None
    module = import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value
