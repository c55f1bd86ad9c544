"""Presets: reusable behaviour bundles for resources (``presets = [MultiTenant(), ...]``).

Write your own by subclassing :class:`Preset`; see ``docs/presets.md``.
"""

from .base import Preset
from .tenancy import MultiTenant

__all__ = ["Preset", "MultiTenant"]
