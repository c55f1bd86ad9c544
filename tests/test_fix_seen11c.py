"""fix-seen11c: HTTP edges, throttling outages and hard deletes, as the last reviewers saw them."""

from __future__ import annotations

import pytest
from django.test import Client

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
