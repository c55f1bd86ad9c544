"""Presets: reusable behaviour bundles for resources (``presets = [MultiTenant(), ...]``).

Write your own by subclassing :class:`Preset`; see ``docs/presets.md``.
"""

from .audited import Audited
from .base import Preset
from .bulk import Bulk
from .ownership import OwnedBy
from .slug import SlugLookup
from .softdelete import SoftDelete
from .tenancy import MultiTenant

__all__ = ["Preset", "MultiTenant", "SoftDelete", "SlugLookup", "OwnedBy", "Bulk", "Audited"]
