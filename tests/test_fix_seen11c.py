"""fix-seen11c: HTTP edges, throttling outages and hard deletes, as the last reviewers saw them."""

from __future__ import annotations

import logging

import pytest
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.test import Client
from django.utils.module_loading import import_string
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from django_arc.exceptions import exception_handler
from django_arc.redis_alias import reset_outage_warnings
from django_arc.throttling import ScopeRateThrottle
from shop.models import Product
from tests.factories import ProductFactory
from tests.helpers import assert_error

_FS11C_SCOPE = "django_arc.middleware.ScopeMiddleware"
_FS11C_SECURITY = "django.middleware.security.SecurityMiddleware"
_FS11C_FRAMES = "django.middleware.clickjacking.XFrameOptionsMiddleware"
#: Django's ``startproject`` order, arc's middleware after authentication: the security
#: middleware outside it, the clickjacking one inside it (last)
_FS11C_DEFAULT_ORDER = [
    _FS11C_SECURITY,
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    _FS11C_SCOPE,
    "django.contrib.messages.middleware.MessageMiddleware",
    _FS11C_FRAMES,
]
#: both header-setting middlewares inside arc's
_FS11C_SECURITY_INSIDE = [m for m in _FS11C_DEFAULT_ORDER if m != _FS11C_SECURITY] + [
    _FS11C_SECURITY
]
_FS11C_SECURITY_HEADERS = (
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
)


@pytest.mark.django_db
@pytest.mark.parametrize("order", [_FS11C_DEFAULT_ORDER, _FS11C_SECURITY_INSIDE])
@pytest.mark.parametrize("method", ["post", "delete"])
def test_fs11c_the_slashless_roots_405_passes_through_the_projects_middleware(
    settings, order, method
):
    """``POST /api`` is answered as ``POST /api/`` (rev-methods); ``ScopeMiddleware`` called
    the root's view itself, after the middlewares inside it had answered their 404, so
    their ``process_response`` never saw the 405: no ``X-Frame-Options`` (the clickjacking
    middleware is last in Django's order), none of ``SecurityMiddleware``'s headers when it
    is placed inside. The 405 carries the headers the slashed route's 405 carries."""
    settings.MIDDLEWARE = order
    settings.X_FRAME_OPTIONS = "DENY"
    slashed = getattr(Client(), method)("/api/", content_type="application/json")
    slashless = getattr(Client(), method)("/api", content_type="application/json")
    assert_error(slashed, 405, "METHOD_NOT_ALLOWED")
    assert_error(slashless, 405, "METHOD_NOT_ALLOWED")
    for header in _FS11C_SECURITY_HEADERS:
        assert header in slashed, header
        assert slashless.get(header) == slashed[header], header
    assert slashless["X-Frame-Options"] == "DENY"
    assert slashless["X-Content-Type-Options"] == "nosniff"
    assert slashless["Allow"] == slashed["Allow"] == "GET, HEAD, OPTIONS"


class Fs11cUnreachableCacheError(Exception):
    """What a cache client of no family arc knows raises (``pylibmc.Error``,
    pymemcache's ``MemcacheUnexpectedCloseError``: neither is an ``OSError``)."""


class Fs11cDownCache(BaseCache):
    """A cache backend whose server is away: every read and write raises, as
    ``PyMemcacheCache`` raises ``ConnectionRefusedError`` for a memcached that is down
    (``OPTIONS["error"]`` names the exception class raised, by its dotted path)."""

    def __init__(self, location, params):
        super().__init__(params)
        self.error = import_string(params.get("OPTIONS", {}).get("error", "builtins.OSError"))

    def get(self, key, default=None, version=None):
        raise self.error("connection refused")

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        raise self.error("connection refused")


class _Fs11cThrottledView(APIView):
    """Throttled by ``ScopeRateThrottle``, then reads the database."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes = [ScopeRateThrottle]

    def get_exception_handler(self):
        return exception_handler

    def get(self, request):
        return Response({"products": Product.objects.count()})


@pytest.mark.django_db
@pytest.mark.parametrize(
    "error",
    ["builtins.ConnectionRefusedError", f"{__name__}.Fs11cUnreachableCacheError"],
)
def test_fs11c_any_throttle_cache_that_fails_lets_requests_through_with_one_warning(
    settings, caplog, error
):
    """A throttle cache that is neither Redis nor a database cache (memcached, a project's
    backend) whose server is away raised its client's error from DRF's cache read: a 500
    on every throttled request, where a Redis or database-cache outage lets it through
    (fix-seen10c). Any backend's failure is the same outage now: the request is let through
    uncounted, and the log warns once per interval naming the backend."""
    reset_outage_warnings()
    caplog.set_level(logging.WARNING, logger="django_arc.redis")
    ProductFactory()
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"arc_anon": "1/min"},
    }
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": f"{__name__}.Fs11cDownCache", "OPTIONS": {"error": error}},
    }
    view = _Fs11cThrottledView.as_view()
    answers = [view(APIRequestFactory().get("/t/", REMOTE_ADDR="10.0.0.1")) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.data for a in answers] == [{"products": 1}] * 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "django_arc.redis"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        "throttling: the throttle cache (Fs11cDownCache) unavailable ("
    ), warnings
