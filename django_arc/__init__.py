"""django-arc: declarative resources for Django REST Framework.

Public API: ``arc``, ``ResourceSite``, ``Resource``, ``action``, ``route``, ``ArcError``,
``PermissionResult`` and the modules ``permissions``, ``fields``, ``presets``, ``events``.
Everything else is private by convention.
"""

from . import events, fields, permissions, presets
from .actions import action, route
from .exceptions import ArcError
from .permissions import PermissionResult
from .resources import Resource
from .sites import ResourceSite, arc

__all__ = [
    "arc",
    "ResourceSite",
    "Resource",
    "action",
    "route",
    "ArcError",
    "PermissionResult",
    "permissions",
    "fields",
    "presets",
    "events",
]
__version__ = "0.1.0.dev0"
