"""The router behind ``ResourceSite.urls``."""

from typing import Any

from django.urls import re_path
from rest_framework.routers import DefaultRouter


class ResourceRouter(DefaultRouter):
    """DRF's ``DefaultRouter`` (canonical URLs end with a slash, ``reverse()`` gives them)
    plus an unnamed twin of every route without the slash, so ``/products`` answers like
    ``/products/`` instead of redirecting (a redirected POST loses its body, and Django's
    ``APPEND_SLASH`` turns it into an error under ``DEBUG``). No ``.json`` suffix routes."""

    include_format_suffixes = False

    def get_urls(self) -> list[Any]:
        urls = super().get_urls()
        twins = []
        for url in urls:
            regex = url.pattern.regex.pattern
            if regex.endswith("/$"):
                twins.append(re_path(regex[:-2] + "$", url.callback, url.default_args))
        return urls + twins
