"""rev-fixes61: review of fix-seen11c (middleware, throttling, deletes) and rev-fixes59
(generic pairs judged after handlers)."""

from __future__ import annotations

import json

import pytest
from django.http import HttpResponseNotFound
from django.test import Client
from django.urls import include, path

from django_arc import arc
from tests.helpers import assert_error
from tests.testapp.models import Author, Book

# -- the unrouted 404 under a site: headers describing the replaced body ------------------------

_RF61_GZIP = "django.middleware.gzip.GZipMiddleware"
_RF61_CONDITIONAL = "django.middleware.http.ConditionalGetMiddleware"
_RF61_FRAMES = "django.middleware.clickjacking.XFrameOptionsMiddleware"


def rf61_page_not_found(request, exception=None):
    """A project's own 404 page, long enough for ``GZipMiddleware`` to compress (200 bytes
    and more), as a real site's template is."""
    return HttpResponseNotFound("<html><body>" + "Nothing here. " * 40 + "</body></html>")


#: this module as a URLconf: the API, and the project's own 404 page
urlpatterns = [path("api/", include(arc.urls))]
handler404 = rf61_page_not_found


@pytest.mark.django_db
@pytest.mark.parametrize("inner", [_RF61_GZIP, _RF61_CONDITIONAL])
def test_rf61_the_unrouted_404_takes_no_header_describing_the_replaced_body(settings, inner):
    """fix-seen11c copies onto the envelope's 404 the headers the middlewares inside arc's
    set on the 404 it replaces (``X-Frame-Options``), leaving out only ``Content-Type`` and
    ``Content-Length``. A ``GZipMiddleware`` placed inside arc's compressed the project's
    404 page and said so: the envelope, plain JSON, was sent with ``Content-Encoding: gzip``
    (a client decoding it fails). A ``ConditionalGetMiddleware`` there (as the suite's
    query-cache tests place it) gave the envelope the ``ETag`` of the HTML page. The
    headers that describe the replaced body are left out; the others are still kept."""
    settings.ROOT_URLCONF = __name__
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, inner, _RF61_FRAMES]
    settings.X_FRAME_OPTIONS = "DENY"
    row = Book.objects.create(title="t", author=Author.objects.create(name="a"))
    unknown_row = Client().get(f"/api/books/{row.pk + 1000}/", HTTP_ACCEPT_ENCODING="gzip")
    unrouted = Client().get("/api/no-such-resource/", HTTP_ACCEPT_ENCODING="gzip")
    assert_error(unknown_row, 404, "NOT_FOUND")
    body = assert_error(unrouted, 404, "NOT_FOUND")  # the bytes are the JSON they say
    assert unrouted["Content-Type"] == unknown_row["Content-Type"]
    assert unrouted.get("Content-Encoding") is None
    assert unrouted.get("ETag") is None  # the HTML page's; the envelope's is not known
    assert unrouted.get("Last-Modified") is None
    assert unrouted["X-Frame-Options"] == "DENY"  # what fix-seen11c keeps, still kept
    assert body["requestId"] == unrouted["X-Request-Id"]
    json.loads(unrouted.content)
