"""How the caller is authenticated, on every path: session cookies and CSRF, several
authentication classes at once, 401 against 403."""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager

import pytest
from django.test import Client
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from django_arc.clients import ServiceClient
from django_arc.idempotency.models import IdempotencyRecord
from django_arc.outbox import OutboxEvent
from django_arc.signals import scope_elevated
from shop.models import Product
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory
from tests.helpers import assert_error
from tests.redis_support import REDIS_URL, query_cache_on_redis

BODY = {"name": "Widget", "sku": "W-1", "price": "9.50"}


def session_client(org, role="editor", csrf=True):
    user = MembershipFactory(organization=org, role=role).user
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client, user


@contextmanager
def _seen8c_elevations_sent():
    """The scopes ``scope_elevated`` (the audit's ``arc.scope.elevated``) is sent with
    while the block runs."""
    sent = []

    def receiver(sender, **kwargs):
        sent.append(kwargs["scope"])

    scope_elevated.connect(receiver)
    try:
        yield sent
    finally:
        scope_elevated.disconnect(receiver)


PATHS = {
    "create": ("post", "/api/{r}/", BODY),
    "bulk": ("post", "/api/{r}/bulk/", {"items": [BODY]}),
    "action": ("post", "/api/{r}/{pk}/action/", {"action": "double"}),
    "route": ("post", "/api/{r}/raise-prices/", {}),
    "raw": ("post", "/api/{r}/hook/", {}),
    "update": ("patch", "/api/{r}/{pk}/", {"price": "1"}),
    "delete": ("delete", "/api/{r}/{pk}/", None),
}


@pytest.mark.django_db
@pytest.mark.parametrize("resource", ["idem-products", "cached-products"])
@pytest.mark.parametrize("path", list(PATHS))
def test_a_cross_site_session_write_is_refused_and_writes_nothing(resource, path):
    org = OrganizationFactory()
    product = ProductFactory(organization=org, price=4)
    client, _ = session_client(org, "admin")
    method, url, body = PATHS[path]
    url = url.format(r=resource, pk=product.pk)
    before = list(Product.objects.order_by("pk").values_list("pk", "sku", "price"))
    response = getattr(client, method)(
        url,
        json.dumps(body) if body is not None else "",
        content_type="application/json",
        HTTP_X_ORGANIZATION_ID=str(org.pk),
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    body = assert_error(response, 403, "FORBIDDEN")
    assert "CSRF" in json.dumps(body)
    assert list(Product.objects.order_by("pk").values_list("pk", "sku", "price")) == before
    assert not IdempotencyRecord.objects.exists()
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("spelling", ["x-api-key", "bearer"])
def test_a_service_key_beside_a_session_cookie_is_judged_as_the_key(spelling):
    """DRF's first authenticator taking a credential decides who calls: a service key sent
    from a browser holding another user's session is the key's client. ScopeMiddleware
    judged the session's user first, and refused the key's own organization with 403
    ``ORG_REQUIRED`` ("Not a member") before DRF ran."""
    org, other = OrganizationFactory(), OrganizationFactory()
    ProductFactory(organization=org, price=4)
    _, raw = ServiceClient.objects.create_with_key(name="sync", organization_id=org.pk)
    client, _ = session_client(other, "admin")
    credentials = (
        {"HTTP_X_API_KEY": raw}
        if spelling == "x-api-key"
        else {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    )
    response = client.get("/api/idem-products/", HTTP_X_ORGANIZATION_ID=str(org.pk), **credentials)
    assert response.status_code == 200, response.content
    assert response.json()["total"] == 1
    # the session's user alone, naming the key's organization, is still refused
    assert_error(
        client.get("/api/idem-products/", HTTP_X_ORGANIZATION_ID=str(org.pk)),
        403,
        "ORG_REQUIRED",
    )


@pytest.mark.django_db
def test_an_elevation_header_beside_a_key_and_a_superusers_session_audits_nothing():
    """A superuser's session and a service key, asking for elevation: the key calls, and a key
    never elevates (403). The middleware resolved the session's superuser first and sent
    ``scope_elevated`` (the audit's ``arc.scope.elevated`` event) for an elevation that was
    never granted."""
    org = OrganizationFactory()
    _, raw = ServiceClient.objects.create_with_key(name="sync", organization_id=org.pk)
    client, user = session_client(org, "admin")
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    with _seen8c_elevations_sent() as sent:
        response = client.get(
            "/api/idem-products/", HTTP_X_ARC_SCOPE="platform", HTTP_X_API_KEY=raw
        )
        assert_error(response, 403, "FORBIDDEN")
        assert sent == []
        # the session alone elevates, audited once
        assert client.get("/api/idem-products/", HTTP_X_ARC_SCOPE="platform").status_code == 200
        assert [s.kind for s in sent] == ["elevated"]


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_a_browser_session_reused_by_another_user_gets_that_users_answers():
    """One browser, one cookie jar: user A logs out, user B logs in. Neither a cached answer
    nor a replay stored for A reaches B: both are keyed by the identity DRF authenticated."""
    org = OrganizationFactory()
    ProductFactory(organization=org, name="P", sku="SECRET-1", price=4, cost=3)
    admin = MembershipFactory(organization=org, role="admin").user
    viewer = MembershipFactory(organization=org, role="viewer").user
    editor = MembershipFactory(organization=org, role="editor").user
    browser = Client()
    header = {"HTTP_X_ORGANIZATION_ID": str(org.pk)}

    def create(sku):
        body = json.dumps({**BODY, "sku": sku})
        return browser.post(
            "/api/idem-products/",
            body,
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="same-key",
            **header,
        )

    with query_cache_on_redis():
        browser.force_login(admin)
        assert browser.get("/api/cached-products/", **header)["X-Cache"] == "MISS"
        hit = browser.get("/api/cached-products/", **header)
        assert hit["X-Cache"] == "HIT" and "cost" in hit.json()["docs"][0]
        assert create("A-1").status_code == 201
        browser.logout()
        browser.force_login(viewer)
        seen = browser.get("/api/cached-products/", **header)
        assert seen["X-Cache"] == "MISS"
        twin = browser.get("/api/uncached-products/", **header)
        assert seen.json() == twin.json() and "cost" not in seen.json()["docs"][0]
        refused = create("A-1")
        assert_error(refused, 403, "FORBIDDEN")
        assert "X-Idempotency-Replayed" not in refused
        browser.logout()
        browser.force_login(editor)
        ran = create("B-1")
        assert ran.status_code == 201 and "X-Idempotency-Replayed" not in ran
        assert ran.json()["data"]["sku"] == "B-1"
        assert sorted(Product.objects.values_list("sku", flat=True)) == ["A-1", "B-1", "SECRET-1"]


@pytest.mark.django_db
def test_a_deactivated_session_users_keyed_retry_is_401_with_a_challenge():
    """A session whose user was deactivated is anonymous to Django and DRF: the retry of a
    keyed write is 401 in the envelope with a ``WWW-Authenticate`` challenge, never the
    replay of the answer stored for the user."""
    org = OrganizationFactory()
    client, user = session_client(org, "editor", csrf=False)

    def send():
        return client.post(
            "/api/idem-products/",
            json.dumps(BODY),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="k-1",
            HTTP_X_ORGANIZATION_ID=str(org.pk),
        )

    assert send().status_code == 201
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    retry = send()
    assert_error(retry, 401, "UNAUTHORIZED")
    assert retry["WWW-Authenticate"] and "X-Idempotency-Replayed" not in retry
    assert Product.objects.count() == 1


ODD_KEYS = {
    "nul": "arc_\x00" + "a" * 42,
    "nul-after-prefix": "arc_abcdefgh\x00" + "a" * 34,
    "latin-1": "arc_" + "\xe9" * 43,
    "inner-space": "arc_abcd efgh" + "a" * 34,
}


@pytest.mark.django_db
@pytest.mark.parametrize("spelling", ["x-api-key", "bearer"])
@pytest.mark.parametrize("odd", list(ODD_KEYS))
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_key_of_characters_no_key_has_is_401_without_a_query(
    spelling, odd, method, django_assert_num_queries
):
    """A header value shaped like a key but holding a character no key has (a NUL byte,
    which PostgreSQL refuses in a query's text: a ``DataError``, answered 500) is refused
    like any unknown key: 401 in the envelope with a challenge, the database not asked."""
    key = ODD_KEYS[odd]
    credentials = (
        {"HTTP_X_API_KEY": key}
        if spelling == "x-api-key"
        else {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    )
    with django_assert_num_queries(0):
        response = getattr(Client(), method)("/api/idem-products/", **credentials)
    assert_error(response, 401, "UNAUTHORIZED")
    assert response["WWW-Authenticate"]


@pytest.mark.django_db
def test_a_session_write_refused_for_csrf_sends_no_elevation_audit():
    """A superuser's session POSTing with ``X-Arc-Scope: platform`` and no CSRF token is
    refused 403 by DRF's CSRF check; ScopeMiddleware had judged the session before it and
    sent ``scope_elevated``, so the outbox held an ``arc.scope.elevated`` event for a
    request that never ran. The middleware leaves such a request to the view's check."""
    org = OrganizationFactory()
    client, user = session_client(org, "admin")
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    elevated = {"HTTP_X_ARC_SCOPE": "platform", "HTTP_X_ORGANIZATION_ID": str(org.pk)}
    response = client.post(
        "/api/idem-products/", json.dumps(BODY), content_type="application/json", **elevated
    )
    body = assert_error(response, 403, "FORBIDDEN")
    assert "CSRF" in json.dumps(body)
    assert not OutboxEvent.objects.exists() and not Product.objects.exists()
    # with its token, the elevated write runs and is audited once
    token = "a" * 32  # a CSRF secret: the cookie, and the header naming it
    client.cookies["csrftoken"] = token
    response = client.post(
        "/api/idem-products/",
        json.dumps(BODY),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
        **elevated,
    )
    assert response.status_code == 201, response.content
    assert OutboxEvent.objects.filter(type="arc.scope.elevated").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "credentials",
    [{"HTTP_AUTHORIZATION": "Basic Zm9vOmJhcg=="}, {"HTTP_X_API_KEY": "arc_x"}, {}],
    ids=["proxy-basic", "api-key", "none"],
)
def test_an_event_a_projects_own_view_emits_for_a_session_user_names_the_user(credentials):
    """A project's own (non-DRF) Django view emitting an event for a session's user: the
    event's ``user_id`` comes from ``request.arc_scope``, else the user. Since the middleware
    leaves a request carrying an ``Authorization`` or ``X-Api-Key`` header to DRF (rev-auth),
    such a request's ``arc_scope`` is the provisional ``public`` one, and the event named no
    user (a session user behind a proxy forwarding its HTTP Basic header); the provisional
    scope is not the caller's, so the user is."""
    from django.http import HttpResponse
    from django.test import RequestFactory

    from django_arc.events import emit
    from django_arc.middleware import ScopeMiddleware

    user = MembershipFactory(organization=OrganizationFactory(), role="editor").user
    emitted = []

    def view(request):
        emitted.append(emit("notes.created", {"n": 1}, request=request, resource="notes"))
        return HttpResponse("ok")

    request = RequestFactory().get("/own/", **credentials)
    request.user = user
    assert ScopeMiddleware(view)(request).status_code == 200
    assert emitted[0].meta.user_id == str(user.pk)


@pytest.mark.django_db
def test_rf40_an_event_a_projects_own_drf_view_emits_for_a_service_key_names_no_user():
    """A project's own DRF view (not django-arc's) authenticating a service key: no scope is
    resolved for it, ``request.arc_scope`` is the middleware's provisional one, and the
    event's actor is ``request.user``, DRF's ``ServiceUser`` of no ``pk``: its ``user_id``
    was the string ``"None"``. A service client names no user, as on a resource's views."""
    from django.contrib.auth.models import AnonymousUser
    from rest_framework.response import Response
    from rest_framework.test import APIRequestFactory
    from rest_framework.views import APIView

    from django_arc.auth import ServiceKeyAuthentication
    from django_arc.events import emit
    from django_arc.middleware import ScopeMiddleware

    org = OrganizationFactory()
    _, raw = ServiceClient.objects.create_with_key(name="sync", organization_id=org.pk)
    emitted = []

    class Rf40ProjectsOwnView(APIView):
        authentication_classes = [ServiceKeyAuthentication]
        permission_classes = []

        def post(self, request):
            emitted.append(emit("notes.created", {"n": 1}, request=request, resource="notes"))
            return Response({"kind": request.arc_scope.kind})

    request = APIRequestFactory().post(
        "/own/", {}, format="json", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    request.user = AnonymousUser()
    response = ScopeMiddleware(Rf40ProjectsOwnView.as_view())(request)
    assert response.status_code == 200, response.content
    assert (emitted[0].meta.user_id, emitted[0].meta.organization_id) == (None, None)


@pytest.mark.django_db
def test_an_event_whose_lazy_user_fails_to_load_names_no_user_and_is_emitted():
    """Django's ``request.user`` is lazy: the event's actor read ``is_authenticated`` outside
    the guard meant for the user's loading, so a user backend failing behind the
    middleware's provisional scope made ``emit`` raise, losing the event with the write."""
    from django.http import HttpRequest
    from django.utils.functional import SimpleLazyObject

    from django_arc.events import emit
    from django_arc.scope import PROVISIONAL

    def unloadable():
        raise RuntimeError("the user backend is down")

    request = HttpRequest()
    request.arc_scope = PROVISIONAL
    request.user = SimpleLazyObject(unloadable)
    event = emit("notes.created", {"n": 1}, request=request, resource="notes")
    assert (event.meta.user_id, event.meta.organization_id) == (None, None)


@pytest.mark.django_db
def test_an_event_names_the_actor_of_a_projects_stand_in_scope():
    """A project's tests may set ``request.arc_scope`` to a stand-in (a ``Mock``) whose every
    attribute is truthy: it was read as the middleware's provisional scope, and its user and
    organisation were dropped for ``request.user``. Only the real mark counts."""
    from unittest import mock

    from django.contrib.auth.models import AnonymousUser
    from django.http import HttpRequest

    from django_arc.events import emit

    request = HttpRequest()
    request.arc_scope = mock.Mock(user_id=7, organization_id=3)
    request.user = AnonymousUser()
    event = emit("notes.created", {"n": 1}, request=request, resource="notes")
    assert (event.meta.user_id, event.meta.organization_id) == ("7", "3")


class _SeenProjectBearer:
    """A project's own token authentication (``Authorization: Bearer <its token>``, no
    ``arc_`` prefix): the token ``project-token`` is the user stored on the class."""

    user = None

    def authenticate(self, request):
        from rest_framework.authentication import get_authorization_header

        if get_authorization_header(request) == b"Bearer project-token":
            return type(self).user, "project-token"
        return None

    def authenticate_header(self, request):
        return 'Bearer realm="project"'


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization", ["Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "Bearer", "Basic Zm9vOmJhcg=="]
)
def test_a_bearer_token_no_arc_key_hides_no_api_key(authorization):
    """``Authorization: Bearer <a project's token>`` beside ``X-Api-Key: arc_…``: the
    Bearer branch answered "not an arc key" and never read ``X-Api-Key``, so the key's call
    was anonymous (401), where the same key beside HTTP Basic was the key's client."""
    org = OrganizationFactory()
    ProductFactory(organization=org, price=4)
    _, raw = ServiceClient.objects.create_with_key(name="sync", organization_id=org.pk)
    response = Client().get(
        "/api/idem-products/",
        HTTP_AUTHORIZATION=authorization,
        HTTP_X_API_KEY=raw,
        HTTP_X_ORGANIZATION_ID=str(org.pk),
    )
    assert response.status_code == 200, response.content
    assert response.json()["total"] == 1


@pytest.mark.django_db
def test_a_projects_token_and_an_api_key_are_taken_in_drfs_order(monkeypatch):
    """A project with its own Bearer tokens and arc's keys: the first authentication class
    taking a credential decides who calls (DRF's order), whichever header holds it."""
    from django.urls import resolve

    from django_arc.auth import ServiceKeyAuthentication

    org = OrganizationFactory()
    ProductFactory(organization=org, price=4)
    _, raw = ServiceClient.objects.create_with_key(
        name="sync", organization_id=org.pk, scopes=["sync"]
    )
    _SeenProjectBearer.user = MembershipFactory(organization=org, role="viewer").user
    view_class = resolve("/api/idem-products/").func.cls
    headers = {
        "HTTP_AUTHORIZATION": "Bearer project-token",
        "HTTP_X_API_KEY": raw,
        "HTTP_X_ORGANIZATION_ID": str(org.pk),
    }
    callers = []
    for classes in (
        [ServiceKeyAuthentication, _SeenProjectBearer],
        [_SeenProjectBearer, ServiceKeyAuthentication],
    ):
        monkeypatch.setattr(view_class, "authentication_classes", classes)
        response = Client().get("/api/idem-products/", **headers)
        assert response.status_code == 200, response.content
        callers.append(response.wsgi_request.arc_scope.kind)
    assert callers == ["service", "member"]


@pytest.mark.django_db
def test_two_different_arc_keys_in_one_request_are_refused():
    """A ``Bearer`` arc key and another one in ``X-Api-Key``: the Bearer one was taken
    silently; neither is chosen for the caller (401 with a challenge). The same key in both
    headers is that key's call."""
    org = OrganizationFactory()
    _, one = ServiceClient.objects.create_with_key(name="one", organization_id=org.pk)
    _, two = ServiceClient.objects.create_with_key(name="two", organization_id=org.pk)
    refused = Client().get(
        "/api/idem-products/", HTTP_AUTHORIZATION=f"Bearer {one}", HTTP_X_API_KEY=two
    )
    assert_error(refused, 401, "UNAUTHORIZED")
    assert refused["WWW-Authenticate"]
    same = Client().get(
        "/api/idem-products/", HTTP_AUTHORIZATION=f"Bearer {one}", HTTP_X_API_KEY=one
    )
    assert same.status_code == 200, same.content


@pytest.fixture
def seen8c_keys_only_site(settings):
    """A site of one resource whose ViewSet authenticates by service key only (no
    ``SessionAuthentication``), mounted under ``/ko/`` and taken off the site registry after
    the test."""
    from django_arc import Resource, ResourceSite
    from django_arc import permissions as arc_permissions
    from django_arc import presets as arc_presets
    from django_arc.auth import ServiceKeyAuthentication
    from django_arc.sites import _all_sites
    from tests.helpers import site_mounted

    class KeysOnlyProducts(Resource):
        model = Product
        name = "keys-only"
        fields = ["id", "name", "sku", "price", "organization"]
        authentication_classes = [ServiceKeyAuthentication]
        presets = [arc_presets.MultiTenant(tenant_field="organization")]
        permissions = {
            "list": arc_permissions.require_auth(),
            "create": arc_permissions.require_org_membership(),
        }

    site = ResourceSite(name="seen8c-keys-only-site")
    site.register(KeysOnlyProducts)
    try:
        with site_mounted(settings, "ko", site):
            yield "/ko/keys-only/"
    finally:
        _all_sites.remove(site)


@pytest.mark.django_db
def test_a_view_taking_no_session_never_judges_the_sessions_user(seen8c_keys_only_site):
    """A resource whose ``authentication_classes`` hold no ``SessionAuthentication`` never
    sees the session's user, yet ScopeMiddleware judged it: a non-member naming an
    organization was 403 ``ORG_REQUIRED`` where the view answers 401 (no caller), and a
    superuser's ``X-Arc-Scope: platform`` sent ``scope_elevated`` (the audit's
    ``arc.scope.elevated`` event) for an elevation the view then refused."""
    url = seen8c_keys_only_site
    org, other = OrganizationFactory(), OrganizationFactory()
    ProductFactory(organization=org, price=4)
    client, user = session_client(other, "admin")
    response = client.get(url, HTTP_X_ORGANIZATION_ID=str(org.pk))
    assert_error(response, 401, "UNAUTHORIZED")
    assert response["WWW-Authenticate"]
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    with _seen8c_elevations_sent() as sent:
        for headers in ({}, {"HTTP_X_ORGANIZATION_ID": str(org.pk)}):
            refused = client.get(url, HTTP_X_ARC_SCOPE="platform", **headers)
            assert_error(refused, 403, "FORBIDDEN")
        assert sent == []
        assert not OutboxEvent.objects.filter(type="arc.scope.elevated").exists()
        # the key is the view's caller, judged as the key; the session's resources still
        # judge the session in the middleware (one elevation, audited once)
        _, raw = ServiceClient.objects.create_with_key(name="sync", organization_id=org.pk)
        keyed = Client().get(url, HTTP_X_API_KEY=raw, HTTP_X_ORGANIZATION_ID=str(org.pk))
        assert keyed.status_code == 200 and keyed.json()["total"] == 1
        elevated = client.get("/api/idem-products/", HTTP_X_ARC_SCOPE="platform")
        assert elevated.status_code == 200, elevated.content
        assert [s.kind for s in sent] == ["elevated"]
        assert OutboxEvent.objects.filter(type="arc.scope.elevated").count() == 1


@pytest.mark.django_db
def test_a_view_taking_no_session_refuses_a_session_write_without_judging_it(
    seen8c_keys_only_site,
):
    """A write (its CSRF token sent) to a resource taking no session: 401, nothing written,
    nothing audited; the member's own session write to it is no member's either."""
    url = seen8c_keys_only_site
    org = OrganizationFactory()
    client, user = session_client(org, "admin", csrf=False)
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    for headers in ({}, {"HTTP_X_ORGANIZATION_ID": str(org.pk)}):
        response = client.post(url, json.dumps(BODY), content_type="application/json", **headers)
        assert_error(response, 401, "UNAUTHORIZED")
    elevated = client.post(
        url, json.dumps(BODY), content_type="application/json", HTTP_X_ARC_SCOPE="platform"
    )
    assert_error(elevated, 403, "FORBIDDEN")
    assert not Product.objects.exists() and not OutboxEvent.objects.exists()


def _seen8c_own_view(request):
    """A project's own Django view: what ``request.arc_scope`` says of the caller."""
    from django.http import JsonResponse

    scope = request.arc_scope
    return JsonResponse(
        {"kind": scope.kind, "user_id": scope.user_id, "org": scope.organization_id}
    )


@pytest.fixture
def seen8c_own_views(settings):
    """The test project's URLs plus a project's own Django view, exempt from CSRF and not."""
    from django.urls import clear_url_caches, path
    from django.views.decorators.csrf import csrf_exempt

    import tests.urls

    settings.ROOT_URLCONF = type(
        "urls",
        (),
        {
            "urlpatterns": [
                *tests.urls.urlpatterns,
                path("own/exempt/", csrf_exempt(_seen8c_own_view)),
                path("own/guarded/", _seen8c_own_view),
            ]
        },
    )
    clear_url_caches()
    yield
    clear_url_caches()


@pytest.mark.django_db
def test_a_csrf_exempt_own_view_sees_the_sessions_scope(seen8c_own_views):
    """A project's own ``csrf_exempt`` Django view serving a session's POST without a CSRF
    token: Django accepts it (the view runs as the session's user), yet ``request.arc_scope``
    was the provisional ``public`` one, the middleware having asked the CSRF check without
    the view. Its scope is now the session user's, judged (membership, elevation, audited
    once) as any accepted request's; a view Django guards is refused as before."""
    org = OrganizationFactory()
    client, user = session_client(org, "admin")
    org_header = {"HTTP_X_ORGANIZATION_ID": str(org.pk)}
    seen = client.post("/own/exempt/", **org_header)
    assert seen.status_code == 200, seen.content
    assert seen.json() == {"kind": "member", "user_id": user.pk, "org": str(org.pk)}
    assert client.post("/own/exempt/").json()["kind"] == "authenticated"
    other = OrganizationFactory()
    assert_error(
        client.post("/own/exempt/", HTTP_X_ORGANIZATION_ID=str(other.pk)), 403, "ORG_REQUIRED"
    )
    assert client.post("/own/guarded/", **org_header).status_code == 403  # Django's CSRF
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    assert client.post("/own/guarded/", HTTP_X_ARC_SCOPE="platform").status_code == 403
    assert not OutboxEvent.objects.filter(type="arc.scope.elevated").exists()
    elevated = client.post("/own/exempt/", HTTP_X_ARC_SCOPE="platform")
    assert elevated.json()["kind"] == "elevated"
    assert OutboxEvent.objects.filter(type="arc.scope.elevated").count() == 1


@pytest.mark.django_db
def test_rf43_an_outage_judging_a_session_before_a_resource_view_is_the_envelopes_500(
    caplog, seen8c_own_views
):
    """A session request judged in ``ScopeMiddleware.process_view`` (an elevation whose
    audit receiver fails: the audit store is down) for a resource view: Django's HTML 500
    page (``text/html``), where the same outage inside the view is the envelope's 500
    ``INTERNAL_ERROR`` with its ``X-Request-Id``; logged on ``django.request`` as Django
    logs an unhandled exception, and the elevation not granted (the view never ran).
    A project's own view's outage is left to Django."""
    org = OrganizationFactory()
    client, user = session_client(org, "admin")
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    client.raise_request_exception = False

    def rf43_audit_down(sender, **kwargs):
        raise RuntimeError("audit store down")

    reported = logging.getLogger("django.request")
    reported.addHandler(caplog.handler)  # the suite's LOGGING does not propagate it
    scope_elevated.connect(rf43_audit_down)
    try:
        response = client.get("/api/idem-products/", HTTP_X_ARC_SCOPE="platform")
        own = client.post("/own/exempt/", HTTP_X_ARC_SCOPE="platform")
    finally:
        scope_elevated.disconnect(rf43_audit_down)
        reported.removeHandler(caplog.handler)
    body = assert_error(response, 500, "INTERNAL_ERROR")
    assert response["Content-Type"].startswith("application/json")
    assert body["requestId"] == response["X-Request-Id"]
    assert b"audit store down" not in response.content
    errors = [r for r in caplog.records if r.name == "django.request" and r.exc_info]
    assert [str(r.exc_info[1]) for r in errors] == ["audit store down"] * 2
    assert response.wsgi_request.arc_scope.kind == "public"  # the provisional one
    assert own.status_code == 500 and own["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_rf43_a_view_choosing_its_authenticators_per_request_is_left_to_judge_the_session(
    monkeypatch,
):
    """A view overriding DRF's ``get_authenticators()`` (its authentication chosen per
    request: keys only for this route) while its ``authentication_classes`` still name
    ``SessionAuthentication``: ScopeMiddleware read the class attribute, judged the
    session's user the view never takes, and answered a non-member's organization header
    403 ``ORG_REQUIRED`` (the view: 401) and audited a superuser's elevation the view then
    refused. Such a view is left to judge its own caller, as its authenticators find it."""
    from django.urls import resolve

    from django_arc.auth import ServiceKeyAuthentication

    view_class = resolve("/api/idem-products/").func.cls
    monkeypatch.setattr(view_class, "get_authenticators", lambda self: [ServiceKeyAuthentication()])
    org, other = OrganizationFactory(), OrganizationFactory()
    ProductFactory(organization=org, price=4)
    client, user = session_client(other, "admin")
    response = client.get("/api/idem-products/", HTTP_X_ORGANIZATION_ID=str(org.pk))
    assert_error(response, 401, "UNAUTHORIZED")
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    with _seen8c_elevations_sent() as sent:
        refused = client.get("/api/idem-products/", HTTP_X_ARC_SCOPE="platform")
        assert_error(refused, 403, "FORBIDDEN")
        assert sent == []
    assert not OutboxEvent.objects.filter(type="arc.scope.elevated").exists()
    # the key the view takes is its caller, judged as the key
    _, raw = ServiceClient.objects.create_with_key(name="sync", organization_id=org.pk)
    keyed = client.get("/api/idem-products/", HTTP_X_API_KEY=raw)
    assert keyed.status_code == 200 and keyed.json()["total"] == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "rf43_limit, rf43_body",
    [
        ("DATA_UPLOAD_MAX_NUMBER_FIELDS", "&".join(f"f{i}=x" for i in range(20))),
        ("DATA_UPLOAD_MAX_MEMORY_SIZE", "name=" + "x" * 64),
    ],
)
def test_rf43_a_session_form_post_past_djangos_limits_is_the_envelopes_answer(
    settings, rf43_limit, rf43_body
):
    """A session's form POST (its CSRF token in the header) whose body passes one of
    Django's limits: ScopeMiddleware's CSRF check, asked in its ``__call__`` before any
    view, read ``request.POST`` for a form token, and Django's exception became its HTML
    ``Bad Request (400)`` page, where the same body sent with a key is the view's 413
    envelope. An unreadable body is left to the view, which answers it; nothing is
    written."""
    setattr(settings, rf43_limit, 10)
    org = OrganizationFactory()
    client, _ = session_client(org, "admin")
    client.raise_request_exception = False
    client.cookies["csrftoken"] = "a" * 32
    for headers in ({"HTTP_X_ORGANIZATION_ID": str(org.pk)}, {}):
        response = client.post(
            "/api/idem-products/",
            rf43_body,
            content_type="application/x-www-form-urlencoded",
            HTTP_X_CSRFTOKEN="a" * 32,
            **headers,
        )
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert response["X-Request-Id"]
    assert not Product.objects.exists()


_SEEN9C_BEARERS = {
    "none": None,
    "arc": "arc-key",
    "non-arc": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x",
}
_SEEN9C_API_KEYS = {"absent": None, "blank": "", "whitespace": "   ", "valid": "arc-key"}


@pytest.mark.django_db
@pytest.mark.parametrize("bearer", list(_SEEN9C_BEARERS))
@pytest.mark.parametrize("api_key", list(_SEEN9C_API_KEYS))
def test_seen9c_a_blank_api_key_is_refused_beside_any_bearer(api_key, bearer):
    """A blank (or whitespace) ``X-Api-Key`` is a key presented and malformed: 401 alone
    and beside a project's Bearer token, yet it was accepted beside a valid ``Bearer`` arc
    key, as though absent. It is a second key differing from the Bearer one, refused as
    two different arc keys are; the valid key in ``X-Api-Key`` is taken beside any Bearer,
    and no ``X-Api-Key`` leaves the call to the Bearer alone."""
    org = OrganizationFactory()
    ProductFactory(organization=org, price=4)
    _, raw = ServiceClient.objects.create_with_key(name="sync", organization_id=org.pk)
    headers = {"HTTP_X_ORGANIZATION_ID": str(org.pk)}
    authorization = _SEEN9C_BEARERS[bearer]
    if authorization is not None:
        headers["HTTP_AUTHORIZATION"] = (
            f"Bearer {raw}" if authorization == "arc-key" else authorization
        )
    key = _SEEN9C_API_KEYS[api_key]
    if key is not None:
        headers["HTTP_X_API_KEY"] = raw if key == "arc-key" else key
    response = Client().get("/api/idem-products/", **headers)
    keyed = api_key == "valid" or (api_key == "absent" and bearer == "arc")
    if keyed:
        assert response.status_code == 200, response.content
        assert response.json()["total"] == 1
    else:
        assert_error(response, 401, "UNAUTHORIZED")
        assert response["WWW-Authenticate"]


class _Seen9cCsrfSkippingSession(SessionAuthentication):
    """A project's session authentication for an API its clients call without a CSRF
    token (a common recipe): DRF accepts the session's unsafe requests as they come."""

    def enforce_csrf(self, request):
        return None


class _Seen9cStricterSession(SessionAuthentication):
    """A project's session authentication asking more than Django's CSRF check: an
    ``X-Requested-With`` header besides the token."""

    def enforce_csrf(self, request):
        if request.META.get("HTTP_X_REQUESTED_WITH") != "XMLHttpRequest":
            raise PermissionDenied("CSRF Failed: not an XMLHttpRequest.")
        return super().enforce_csrf(request)


class _Seen9cOwnDrfView(APIView):
    """A project's own DRF view: what ``request.arc_scope`` says of the caller."""

    permission_classes = [AllowAny]

    def post(self, request):
        scope = request.arc_scope
        return Response(
            {"kind": scope.kind, "org": scope.organization_id, "provisional": scope.provisional}
        )


@pytest.fixture
def seen9c_own_drf_views(settings):
    """The test project's URLs plus a project's own DRF view under each session class."""
    from django.urls import clear_url_caches, path

    import tests.urls

    settings.ROOT_URLCONF = type(
        "urls",
        (),
        {
            "urlpatterns": [
                *tests.urls.urlpatterns,
                path(
                    "own/skipping/",
                    _Seen9cOwnDrfView.as_view(authentication_classes=[_Seen9cCsrfSkippingSession]),
                ),
                path(
                    "own/stricter/",
                    _Seen9cOwnDrfView.as_view(authentication_classes=[_Seen9cStricterSession]),
                ),
            ]
        },
    )
    clear_url_caches()
    yield
    clear_url_caches()


@pytest.mark.django_db
def test_seen9c_a_session_class_skipping_csrf_has_its_requests_judged(seen9c_own_drf_views):
    """A project's DRF view whose ``SessionAuthentication`` subclass skips the CSRF check
    accepts a session's tokenless POST, yet the middleware asked Django's check, found it
    refused and left the request provisional: the view saw ``public`` (no organization,
    so nothing unjudged, but not its caller either). The view's own ``enforce_csrf`` is
    asked now: the member's organization is judged and seen, a non-member naming another
    organization is refused 403 ``ORG_REQUIRED`` (as with a token), a superuser's elevation
    is judged and audited once."""
    org, other = OrganizationFactory(), OrganizationFactory()
    client, user = session_client(org, "admin")
    seen = client.post("/own/skipping/", HTTP_X_ORGANIZATION_ID=str(org.pk))
    assert seen.status_code == 200, seen.content
    assert seen.json() == {"kind": "member", "org": str(org.pk), "provisional": False}
    assert client.post("/own/skipping/").json()["kind"] == "authenticated"
    refused = client.post("/own/skipping/", HTTP_X_ORGANIZATION_ID=str(other.pk))
    assert_error(refused, 403, "ORG_REQUIRED")
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    with _seen8c_elevations_sent() as sent:
        elevated = client.post("/own/skipping/", HTTP_X_ARC_SCOPE="platform")
    assert elevated.json()["kind"] == "elevated"
    assert [s.kind for s in sent] == ["elevated"]


@pytest.mark.django_db
def test_seen9c_a_stricter_session_class_refusing_a_write_judges_nothing(seen9c_own_drf_views):
    """A session class asking more than Django's CSRF check refuses a POST carrying a valid
    token but not its header; the middleware, asking Django's check alone, judged the
    request and audited a superuser's elevation the view then refused. Nothing is judged
    for it now; with the header, the elevation is judged and audited once."""
    from django.middleware.csrf import get_token
    from django.test import RequestFactory

    org = OrganizationFactory()
    client, user = session_client(org, "admin")
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    client.get("/api/idem-products/")  # a session cookie; then a CSRF token for it
    token_request = RequestFactory().get("/")
    token = get_token(token_request)
    client.cookies["csrftoken"] = token_request.META["CSRF_COOKIE"]
    headers = {"HTTP_X_ARC_SCOPE": "platform", "HTTP_X_CSRFTOKEN": token}
    with _seen8c_elevations_sent() as sent:
        refused = client.post("/own/stricter/", **headers)
        assert refused.status_code == 403, refused.content
        assert sent == []
        accepted = client.post("/own/stricter/", HTTP_X_REQUESTED_WITH="XMLHttpRequest", **headers)
        assert accepted.status_code == 200, accepted.content
        assert accepted.json()["kind"] == "elevated"
    assert [s.kind for s in sent] == ["elevated"]
    assert OutboxEvent.objects.filter(type="arc.scope.elevated").count() == 1


class _Seen9cApiCsrfOffMiddleware:
    """A project's middleware, placed after ``ScopeMiddleware``, that turns Django's CSRF
    check off for its API's paths (a common recipe: ``_dont_enforce_csrf_checks``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/own/"):
            request._dont_enforce_csrf_checks = True
        return self.get_response(request)


@pytest.mark.django_db
def test_seen9c_a_request_the_csrf_check_passes_once_the_view_is_known_is_judged(
    settings, seen8c_own_views
):
    """Why an unsafe session request's CSRF check is asked twice when the first refuses:
    ``__call__`` asks it without the view (to resolve the scope there for the middleware
    after it), ``process_view`` asks it again with the view, and between the two the
    request may change: a ``csrf_exempt`` view (``test_a_csrf_exempt_own_view_sees_the_
    sessions_scope``), or a project's middleware after arc's turning the check off for its
    paths, which Django's ``CsrfViewMiddleware`` and DRF then honour. Reusing the first
    answer would leave such a request's view with the provisional scope."""
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        f"{__name__}._Seen9cApiCsrfOffMiddleware",
    ]
    assert (
        settings.MIDDLEWARE.index("django_arc.middleware.ScopeMiddleware")
        < len(settings.MIDDLEWARE) - 1
    )
    org = OrganizationFactory()
    client, user = session_client(org, "admin")
    seen = client.post("/own/guarded/")  # no token, no header: judged in process_view
    assert seen.status_code == 200, seen.content
    assert seen.json() == {"kind": "authenticated", "user_id": user.pk, "org": None}
    member = client.post("/own/guarded/", HTTP_X_ORGANIZATION_ID=str(org.pk))
    assert member.json() == {"kind": "member", "user_id": user.pk, "org": str(org.pk)}
