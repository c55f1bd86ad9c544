"""The router's unnamed no-slash twins answer like the canonical routes but stay out of
schemas: documenting both spellings gave every operation two operationIds."""

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import clear_url_caches, include, path
from drf_spectacular.generators import EndpointEnumerator

from django_arc.idempotency.models import IdempotencyRecord
from shop.models import Product
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


def test_twins_answer_but_are_not_enumerated_for_schemas(api):
    assert api.get("/api/books").status_code == 200
    assert api.get("/api/books/").status_code == 200
    paths = {path for path, _regex, _method, _callback in EndpointEnumerator().get_api_endpoints()}
    assert "/api/books/" in paths and "/api/books/{id}/" in paths
    assert not [path for path in paths if not path.endswith("/")]


# -- paths no route matches ------------------------------------------------------------------------


def _envelope_404(response):
    body = assert_error(response, 404, "NOT_FOUND")
    assert response["Content-Type"] == "application/json"
    assert body == {
        "success": False,
        "error": "Resource not found",
        "code": "NOT_FOUND",
        "requestId": response["X-Request-Id"],
    }


def test_a_path_under_the_sites_prefix_that_matches_no_route_is_the_envelopes_404(api):
    """``/api/books.json`` (DRF's format-suffix spelling, which the router does not serve),
    a route's unknown sub-path or an unknown resource answered the project's HTML 404 page;
    under the site's prefix they are the error envelope's 404 now, on every method, and a
    keyed write to one claims nothing and writes nothing."""
    from django.contrib.auth.models import User

    api.force_authenticate(User.objects.create_user("u"))
    for method, url in [
        ("get", "/api/books.json"),
        ("get", "/api/books.json/"),
        ("get", "/api/books/1/nope/"),
        ("get", "/api/idem-products/1/action.json"),
        ("get", "/api/nope/"),
        ("delete", "/api/books.json"),
        ("head", "/api/books.json"),
    ]:
        response = getattr(api, method)(url)
        if method == "head":
            assert response.status_code == 404 and response["Content-Type"] == "application/json"
        else:
            _envelope_404(response)
    keyed = api.post(
        "/api/idem-products.json",
        {"name": "W", "sku": "W-1", "price": "1"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    _envelope_404(keyed)
    assert not IdempotencyRecord.objects.exists() and not Product.objects.exists()
    # the request id sent is the one answered
    traced = api.get("/api/books.json", HTTP_X_REQUEST_ID="trace-1")
    assert traced["X-Request-Id"] == "trace-1" and traced.json()["requestId"] == "trace-1"


@pytest.mark.parametrize("compact", [True, False])
def test_the_middlewares_envelopes_render_as_the_views_do_under_the_projects_json_settings(
    api, monkeypatch, compact
):
    """``REST_FRAMEWORK["COMPACT_JSON"]`` (DRF reads it into ``JSONRenderer.compact`` on
    import, as the test sets it) shapes every envelope a view answers; the envelopes
    ``ScopeMiddleware`` answers were written by ``JsonResponse``: the 404 of an unknown path
    under the site's prefix always compact, a session caller's scope refusal always with
    spaces. Both are the bytes the view answers the same request with now, under either
    setting: an unknown row's 404, the view's own ``ORG_REQUIRED``."""
    from django.contrib.auth.models import User
    from rest_framework.renderers import JSONRenderer

    from tests.factories import OrganizationFactory

    monkeypatch.setattr(JSONRenderer, "compact", compact)
    user = User.objects.create_user("u")
    api.force_authenticate(user)
    trace = {"HTTP_X_REQUEST_ID": "trace-1"}
    unknown_path = api.get("/api/nope/", **trace)
    unknown_row = api.get("/api/books/999999/", **trace)
    assert (unknown_path.status_code, unknown_row.status_code) == (404, 404)
    assert unknown_path.content == unknown_row.content
    assert unknown_path["Content-Type"] == unknown_row["Content-Type"]
    assert (b'"success": false' in unknown_path.content) is not compact
    # an indent asked for in Accept indents both, as DRF's negotiation hands it on
    indented = {**trace, "HTTP_ACCEPT": "application/json; indent=2"}
    unknown_path = api.get("/api/nope/", **indented)
    unknown_row = api.get("/api/books/999999/", **indented)
    assert unknown_path.content == unknown_row.content
    assert unknown_path.content.startswith(b'{\n  "success": false')
    assert unknown_path["Content-Type"] == unknown_row["Content-Type"] == "application/json"
    # an Accept entry the JSON renderer does not answer (a browser's): its own media type
    for accept in ("text/html", "application/xml"):
        browser = api.get("/api/nope/", HTTP_ACCEPT=accept)
        assert browser.status_code == 404 and browser["Content-Type"] == "application/json"
        assert browser.json()["code"] == "NOT_FOUND"

    org = OrganizationFactory()
    header = {**trace, "HTTP_X_ORGANIZATION_ID": str(org.pk)}
    by_the_view = api.get("/api/t-products/", **header)
    session = Client()
    session.force_login(user)
    by_the_middleware = session.get("/api/t-products/", **header)
    assert_error(by_the_middleware, 403, "ORG_REQUIRED")
    assert by_the_middleware.content == by_the_view.content
    assert by_the_middleware["Content-Type"] == by_the_view["Content-Type"]


def _health(request):
    return HttpResponse("ok")


def test_paths_outside_the_site_and_project_routes_under_its_prefix_are_left_alone(settings):
    """Only what resolves to nothing under a site's prefix is answered: a project's own route
    mounted after the site under the same prefix is served, and a path outside it is still
    the project's 404 page."""
    import tests.urls

    settings.ROOT_URLCONF = type(
        "urls", (), {"urlpatterns": [*tests.urls.urlpatterns, path("api/health/", _health)]}
    )
    clear_url_caches()
    try:
        client = Client()
        assert client.get("/api/health/").content == b"ok"
        outside = client.get("/nope/")
        assert outside.status_code == 404 and outside["Content-Type"].startswith("text/html")
        _envelope_404(client.get("/api/books.json"))
    finally:
        clear_url_caches()


def test_every_mount_of_a_site_in_every_language_and_script_name_is_the_envelopes_404(settings):
    """Where a site's routes start was remembered once per URLconf, from ``reverse()`` of its
    root: one mount of a site mounted twice (``/v2/``), the language active at the first 404
    under ``i18n_patterns`` (``/fr/api/books.json`` was the HTML page after ``/en/…``) and the
    first request's ``SCRIPT_NAME``. Every spelling of a site's prefix is answered now."""
    from django.conf.urls.i18n import i18n_patterns
    from django.urls import include, set_script_prefix

    import tests.urls
    from django_arc import arc

    settings.USE_I18N = True
    settings.LANGUAGES = [("en", "English"), ("fr", "French")]
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.locale.LocaleMiddleware"]
    settings.ROOT_URLCONF = type(
        "urls",
        (),
        {
            "urlpatterns": [
                *tests.urls.urlpatterns,
                path("v2/", include((arc.get_urls(), "arc"), namespace="v2")),
                *i18n_patterns(path("intl/", include((arc.get_urls(), "arc"), namespace="intl"))),
            ]
        },
    )
    clear_url_caches()
    client = Client()
    try:
        for url in ("/api/books.json", "/v2/books.json", "/en/intl/books.json"):
            _envelope_404(client.get(url))
        _envelope_404(client.get("/fr/intl/books.json", HTTP_ACCEPT_LANGUAGE="fr"))
        assert client.get("/fr/intl/books/").status_code == 200
        # the WSGI handler sets the script prefix of each request; the test client does not
        for script in ("/app", "/"):
            set_script_prefix(script)
            _envelope_404(client.get("/api/books.json", SCRIPT_NAME=script.rstrip("/")))
        outside = client.get("/nope/")
        assert outside.status_code == 404 and outside["Content-Type"].startswith("text/html")
    finally:
        set_script_prefix("/")
        clear_url_caches()


def test_a_project_include_whose_app_name_is_a_sites_keeps_its_own_404(settings):
    """A mount of a site was recognised by its include's app name alone (1d0adfb): a
    project's include whose app is named as a site is (a site ``ResourceSite("shop")``
    beside the project's ``shop`` app, ``app_name = "shop"``) had every 404 under it
    answered with the envelope instead of the project's page. Only an include holding a
    site's routes is a mount of it."""
    import tests.urls

    shop = ([path("ping/", _health)], "arc")
    settings.ROOT_URLCONF = type(
        "urls",
        (),
        {"urlpatterns": [*tests.urls.urlpatterns, path("shop/", include(shop, namespace="shop"))]},
    )
    clear_url_caches()
    try:
        client = Client()
        assert client.get("/shop/ping/").content == b"ok"
        page = client.get("/shop/nope/")
        assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
        _envelope_404(client.get("/api/books.json"))
    finally:
        clear_url_caches()


class _StatusJSONRenderer:
    """A project's JSON renderer of a common shape: it reads the answer's status from the
    ``response`` of its ``renderer_context``, as every view's call passes it."""

    media_type = "application/json"
    format = "json"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        import json

        response = renderer_context["response"]
        request = renderer_context["request"]
        assert request is not None and renderer_context["view"] is not None
        # as DRF marks the answer of a view's exception
        exception = getattr(response, "exception", False)
        return json.dumps({**data, "status": response.status_code, "exception": exception}).encode()


def test_the_middlewares_envelopes_render_with_a_renderer_reading_its_context(api, settings):
    """The middleware renders its envelopes with the project's JSON renderer, which a view
    calls with ``renderer_context`` holding the ``request``, the ``view`` and the
    ``response``; the middleware passed ``{}``, so a renderer reading its answer's status
    from ``renderer_context["response"]`` raised KeyError: every unknown path under the
    site's prefix and every session caller's scope refusal was a 500. It is given the
    request and the response (and a view of its own: none ran)."""
    from django.contrib.auth.models import User

    from tests.factories import OrganizationFactory

    settings.REST_FRAMEWORK = {
        **getattr(settings, "REST_FRAMEWORK", {}),
        "DEFAULT_RENDERER_CLASSES": [f"{__name__}._StatusJSONRenderer"],
    }
    user = User.objects.create_user("u")
    api.force_authenticate(user)
    unknown_path = api.get("/api/nope/", HTTP_X_REQUEST_ID="trace-1")
    assert unknown_path.status_code == 404
    assert unknown_path.json()["status"] == 404 and unknown_path.json()["code"] == "NOT_FOUND"
    assert unknown_path["X-Request-Id"] == "trace-1"
    # marked an exception's answer, as DRF marks it; typed with the renderer's charset, as
    # DRF's Response types a view's answer
    assert unknown_path.json()["exception"] is True
    assert unknown_path["Content-Type"] == "application/json; charset=utf-8"

    session = Client()
    session.force_login(user)
    org = OrganizationFactory()
    refused = session.get("/api/t-products/", HTTP_X_ORGANIZATION_ID=str(org.pk))
    assert refused.status_code == 403
    assert refused.json()["status"] == 403 and refused.json()["code"] == "ORG_REQUIRED"


class _ViewReadingJSONRenderer:
    """A project's JSON renderer reading what a view's call hands it, as DRF hands it: the
    view (its name, and ``action`` where a ViewSet has one) and DRF's ``Request`` (its
    ``query_params``)."""

    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        import json

        view, request = renderer_context["view"], renderer_context["request"]
        shown = {
            "view": view.get_view_name(),
            "action": getattr(view, "action", None),
            "debug": request.query_params.get("debug"),
            "user": request.user.username,
        }
        return json.dumps({**data, **shown}).encode()


class _BrokenJSONRenderer(_ViewReadingJSONRenderer):
    """A renderer that only a routed view can serve (it asks the view for its serializer)."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        renderer_context["view"].get_serializer_class()
        return super().render(data, accepted_media_type, renderer_context)


@pytest.mark.parametrize("renderer", ["_ViewReadingJSONRenderer", "_BrokenJSONRenderer"])
def test_the_middlewares_envelopes_render_with_a_renderer_reading_the_view(api, settings, renderer):
    """A renderer reading ``renderer_context["view"]`` (DRF always hands it the view, and
    DRF's ``Request`` as ``request``) was a 500 on every unknown path under the site's
    prefix and every session caller's scope refusal: the middleware handed it ``None``
    (``AttributeError: 'NoneType' object has no attribute 'get_view_name'``) and Django's
    ``HttpRequest`` (no ``query_params``). It is handed a view of its own (a DRF
    ``APIView``: no route ran, no ``action``) and DRF's ``Request`` of the caller; a
    renderer failing even so (it asks for what only a routed view has) leaves the envelope
    to DRF's ``JSONRenderer``: never a 500."""
    from django.contrib.auth.models import User

    from tests.factories import OrganizationFactory

    settings.REST_FRAMEWORK = {
        **getattr(settings, "REST_FRAMEWORK", {}),
        "DEFAULT_RENDERER_CLASSES": [f"{__name__}.{renderer}"],
    }
    user = User.objects.create_user("u")
    api.force_authenticate(user)
    session = Client()
    session.force_login(user)
    answers = [
        (404, "NOT_FOUND", api.get("/api/nope/?debug=1", HTTP_X_REQUEST_ID="trace-1")),
        (
            403,
            "ORG_REQUIRED",
            session.get(
                "/api/t-products/?debug=1", HTTP_X_ORGANIZATION_ID=str(OrganizationFactory().pk)
            ),
        ),
    ]
    for status, code, answer in answers:
        assert answer.status_code == status, answer.content
        body = answer.json()
        assert body["success"] is False and body["code"] == code, body
        if renderer == "_ViewReadingJSONRenderer":
            assert body["view"] and body["action"] is None and body["debug"] == "1", body
        else:
            assert "view" not in body, body
    assert answers[0][2]["X-Request-Id"] == "trace-1"
    assert answers[1][2].json().get("user", "u") == "u"


def test_scope_error_response_renders_for_a_drf_request_too(settings):
    """``scope_error_response`` (the middleware's envelope, for code resolving scopes
    itself) renders for the request it is given, Django's or DRF's (an authentication
    class or a DRF view resolving a scope has DRF's). Since the middleware built DRF's
    ``Request`` around it for the renderer, DRF's own ``Request`` was refused (an
    ``AssertionError``: a 500, after a warning blaming the renderer). The renderer is
    handed that request as it is, its user the one DRF authenticated."""
    import json

    from django.contrib.auth.models import AnonymousUser, User
    from django.test import RequestFactory
    from rest_framework.request import Request

    from django_arc.exceptions import ArcError
    from django_arc.middleware import scope_error_response

    settings.REST_FRAMEWORK = {
        **getattr(settings, "REST_FRAMEWORK", {}),
        "DEFAULT_RENDERER_CLASSES": [f"{__name__}._ViewReadingJSONRenderer"],
    }
    django_request = RequestFactory().get("/api/t-products/?debug=2", HTTP_X_REQUEST_ID="t-9")
    django_request.user = AnonymousUser()
    drf_request = Request(django_request)
    drf_request.user = User(username="drf-user")
    answer = scope_error_response(drf_request, ArcError("ORG_REQUIRED", "No org", 403))
    assert answer.status_code == 403
    body = json.loads(answer.content)
    assert body["code"] == "ORG_REQUIRED" and body["requestId"] == "t-9", body
    assert (body["debug"], body["user"], body["action"]) == ("2", "drf-user", None), body
    assert answer["X-Request-Id"] == "t-9"


# -- the API root ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "status", "code"),
    [
        ("post", {}, 405, "METHOD_NOT_ALLOWED"),
        ("delete", {"HTTP_ACCEPT": "application/json"}, 405, "METHOD_NOT_ALLOWED"),
        ("get", {"HTTP_ACCEPT": "application/xml"}, 406, "NOT_ACCEPTABLE"),
        ("get", {"QUERY_STRING": "format=xml"}, 400, "INVALID_QUERY"),
    ],
)
def test_the_api_roots_errors_are_in_the_envelope(method, headers, status, code):
    """``/api/`` is DRF's root view, which answered its 405 and 406 in DRF's own
    ``{"detail": ...}`` whatever the resources' views answer: the envelope now, with the
    request id in the body and the header, and ``Allow`` on a 405; an unknown ``?format=``
    is the 400 naming the parameter a resource's views answer (DRF's was a 404)."""
    response = getattr(Client(), method)("/api/", **headers)
    body = assert_error(response, status, code)
    assert response["Content-Type"] == "application/json"
    assert body["requestId"] == response["X-Request-Id"]
    if code == "INVALID_QUERY":
        assert body["details"] == {"format": "unknown format; one of: json, api"}
    else:
        assert set(body) == {"success", "error", "code", "requestId"}
    if status == 405:
        assert response["Allow"] == "GET, HEAD, OPTIONS"


def test_the_api_root_still_lists_the_resources_in_json_and_html():
    client = Client()
    response = client.get("/api/")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json()["books"] == "http://testserver/api/books/"
    assert response["X-Request-Id"]
    page = client.get("/api/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    assert "<title>Api Root" in page.content.decode()
    # its name and description are DRF's root's, not django-arc's notes on the class
    options = client.options("/api/")
    assert options.status_code == 200
    assert options.json()["name"] == "Api Root"
    assert options.json()["description"] == "The default basic root view for DefaultRouter"
