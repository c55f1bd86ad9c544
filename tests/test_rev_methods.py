"""HTTP methods, URLs and routing edges, probed as a client would (rev-methods)."""

import pytest
from django.test import Client
from django.urls import clear_url_caches, include, path
from rest_framework.metadata import SimpleMetadata
from rest_framework.routers import SimpleRouter

from django_arc.idempotency.models import IdempotencyRecord
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory
from tests.helpers import assert_error, client_for
from tests.testapp.resources import TenantProductResource

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_a_write_to_the_sites_prefix_without_its_slash_answers_as_the_root_does(
    settings, debug, method
):
    """``/api`` is the one spelling of a site's route the router has no slashless twin for
    (the root's own pattern is empty; the project's ``path("api/", ...)`` holds the slash).
    Django's ``APPEND_SLASH`` answered a write to it with a 301 a client follows as a GET
    (a 200 listing for a POST), and under ``DEBUG`` with its ``RuntimeError``: a 500. It is
    answered as ``/api/`` answers it now, the envelope's 405 naming what the root serves,
    and a keyed write claims no key."""
    settings.DEBUG = debug
    response = getattr(Client(), method)(
        "/api", content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-root"
    )
    body = assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert body["requestId"] == response["X-Request-Id"]
    assert not IdempotencyRecord.objects.exists()


def test_a_read_of_the_sites_prefix_without_its_slash_is_still_djangos_redirect():
    """A GET (or HEAD) loses nothing when redirected: ``APPEND_SLASH``'s 301 is kept."""
    client = Client()
    for method in ("get", "head"):
        response = getattr(client, method)("/api")
        assert response.status_code == 301 and response["Location"] == "/api/"


def _rev_methods_book():
    from tests.testapp.models import Author, Book

    return Book.objects.create(title="t", author=Author.objects.create(name="a"))


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "BREW", "OPTIONS"])
@pytest.mark.parametrize(
    "path, allow",
    [
        ("/api/books/", "GET, POST, HEAD"),
        ("/api/books/{pk}/", "GET, PUT, PATCH, DELETE, HEAD"),
        ("/api/books/{pk}/action/", "POST"),
        ("/api/books/stats/", "GET, HEAD"),
        ("/api/products/bulk/", "POST, PATCH, DELETE"),
        ("/api/pages/deleted/", "GET, HEAD"),
        ("/api/pages/{pk}/restore/", "POST"),
        ("/api/books", "GET, POST, HEAD"),
    ],
)
def test_a_method_no_route_serves_is_the_envelopes_405_with_the_routes_allow(method, path, allow):
    """Every generated route (list, row, ``action/``, a ``@route``, bulk, a preset's),
    either spelling: a method it does not serve, DRF's unknown ones included, is the
    envelope's 405 with ``Allow`` naming the methods it serves (never a 500, nor DRF's
    ``{"detail": ...}``), for a caller signed in or not."""
    from django.contrib.auth.models import User

    url = path.format(pk=_rev_methods_book().pk)
    signed_in = Client()
    signed_in.force_login(User.objects.create_superuser("su", "su@example.com", "x"))
    for client in (Client(), signed_in):
        response = client.generic(method, url)
        body = assert_error(response, 405, "METHOD_NOT_ALLOWED")
        assert response["Allow"] == allow
        assert body["error"] == f'Method "{method}" not allowed.'


def test_no_method_override_turns_a_post_into_a_delete():
    """DRF 3.x honours neither a form's ``_method`` nor ``X-HTTP-Method-Override`` (nor do
    arc 2.9's routes): a POST to a row is the 405 it is, whatever it names, with a valid
    CSRF token, and the row stays."""
    from django.contrib.auth.models import User
    from django.middleware.csrf import _get_new_csrf_string

    from tests.testapp.models import Book

    book = _rev_methods_book()
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_superuser("su", "su@example.com", "x"))
    token = _get_new_csrf_string()
    client.cookies["csrftoken"] = token
    url = f"/api/books/{book.pk}/"
    for data, headers in [
        ({"_method": "DELETE", "csrfmiddlewaretoken": token}, {}),
        ({"csrfmiddlewaretoken": token}, {"HTTP_X_HTTP_METHOD_OVERRIDE": "DELETE"}),
        ({"csrfmiddlewaretoken": token}, {"HTTP_X_METHOD_OVERRIDE": "DELETE"}),
    ]:
        response = client.post(url, data, HTTP_X_CSRFTOKEN=token, **headers)
        assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert Book.objects.filter(pk=book.pk).exists()


def test_head_is_throttled_as_get_is_and_answers_no_body(settings):
    """``HEAD`` runs the GET route (DRF maps it): it counts against the route's throttle and
    is refused by it as GET is, with GET's headers and no body."""
    client = Client()
    first, second = client.head("/api/throttled-authors/"), client.get("/api/throttled-authors/")
    assert first.status_code == second.status_code == 200
    assert first.content == b"" and first["Content-Length"] == second["Content-Length"]
    refused = client.head("/api/throttled-authors/")
    assert refused.status_code == 429 and refused.content == b""
    assert "Retry-After" in refused
    assert_error(client.get("/api/throttled-authors/"), 429, "THROTTLED")


def test_a_keyed_request_a_route_does_not_serve_claims_no_key():
    """A keyed PUT to a list route (405) or keyed write of an unknown method stores no
    idempotency record: nothing ran, and the same key stays free for the real request."""
    from django.contrib.auth.models import User

    client = Client()
    client.force_login(User.objects.create_superuser("su", "su@example.com", "x"))
    for method in ("PUT", "PATCH", "DELETE", "BREW"):
        response = client.generic(
            method, "/api/idem-products/", HTTP_IDEMPOTENCY_KEY="k-405", HTTP_X_ARC_SCOPE="platform"
        )
        assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert not IdempotencyRecord.objects.exists()


# -- a project's OPTIONS metadata (DRF's seam: ``metadata_class`` on a ViewSet subclass) -------


class RevMethodsMetadataProducts(TenantProductResource.as_viewset()):
    metadata_class = SimpleMetadata


@pytest.fixture
def rev_methods_metadata_routes(settings):
    import tests.urls

    router = SimpleRouter()
    router.register("products", RevMethodsMetadataProducts, basename="rev-methods-meta")
    patterns = [*tests.urls.urlpatterns, path("meta/", include(router.urls))]
    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": patterns})
    clear_url_caches()
    yield "/meta/products/"
    clear_url_caches()


def test_a_projects_options_metadata_is_judged_as_the_routes_read_and_writes_are(
    rev_methods_metadata_routes,
):
    """A project re-enabling DRF's metadata on a ViewSet subclass got it unjudged: the
    ``metadata`` action skipped the resource's permission (there for the 405 it answers
    without metadata), so an anonymous caller was described a members-only resource, and
    DRF's own check of each write it describes (the request cloned as POST/PUT) passed for
    a viewer the create is refused to; the described serializer listed the fields field
    rules hide (a viewer's and an editor's ``cost``, ``visible_to("admin")``). Now OPTIONS is
    judged as the route's GET, each described write as that write, and the fields are those
    the caller may read or write."""
    url = rev_methods_metadata_routes
    org, other = OrganizationFactory(), OrganizationFactory()
    product = ProductFactory(organization=org)
    foreign = ProductFactory(organization=other)
    assert_error(client_for().options(url), 401, "UNAUTHORIZED")
    outsider = client_for(MembershipFactory(organization=other, role="viewer").user)
    assert_error(outsider.options(url, HTTP_X_ORGANIZATION_ID=str(org.pk)), 403, "ORG_REQUIRED")

    def caller(role):
        user = MembershipFactory(organization=org, role=role).user
        return client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))

    viewer, editor, admin = caller("viewer"), caller("editor"), caller("admin")
    described = viewer.options(url)
    assert described.status_code == 200 and "actions" not in described.json()
    assert "actions" not in viewer.options(f"{url}{product.pk}/").json()
    posted = editor.options(url).json()["actions"]["POST"]
    assert "cost" not in posted and "secret_notes" not in posted and "name" in posted
    assert "cost" in admin.options(url).json()["actions"]["POST"]
    assert set(editor.options(f"{url}{product.pk}/").json()["actions"]) == {"PUT"}
    # another tenant's row: no write of it is described (DRF's PUT check finds no row)
    assert "actions" not in editor.options(f"{url}{foreign.pk}/").json()


def test_a_405_counts_against_the_throttle_as_drf_counts_it():
    """DRF throttles in ``initial()``, before it looks for the method's handler: a method
    the route does not serve takes from the caller's bucket as a GET does, and is 429 once
    the bucket is empty (docs/decisions.md, "A 405 counts against the throttle")."""
    client = Client()
    assert_error(client.generic("TRACE", "/api/throttled-authors/"), 405, "METHOD_NOT_ALLOWED")
    assert client.get("/api/throttled-authors/").status_code == 200
    assert_error(client.generic("TRACE", "/api/throttled-authors/"), 429, "THROTTLED")


@pytest.mark.django_db(transaction=True)
def test_a_write_to_the_sites_prefix_without_its_slash_under_asgi(settings):
    """The same answer through ``ASGIHandler`` as a server runs it."""
    from tests.asgi_support import serve

    settings.DEBUG = True
    answer = serve("POST", "/api", {"content-type": "application/json"}, b"{}")
    assert answer.status == 405, answer
    assert b'"METHOD_NOT_ALLOWED"' in answer.content
