"""The router behind ``ResourceSite.urls``."""

from rest_framework.routers import DefaultRouter


class ResourceRouter(DefaultRouter):
    """DRF's ``DefaultRouter`` with the trailing slash optional (``/products`` and
    ``/products/`` both resolve, so neither form can turn into a redirect or an
    ``APPEND_SLASH`` error for a POST) and no ``.json`` format-suffix routes."""

    include_format_suffixes = False

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"  # DRF's constructor only takes a bool
