"""fix-seen10c: actions, scope/authentication and throttling, as the last reviewers saw them."""

from __future__ import annotations

import logging

import pytest
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from django_arc import Resource, ResourceSite, action, presets, route
from django_arc import permissions as P
from django_arc.checks import check_resource
from django_arc.exceptions import exception_handler
from django_arc.redis_alias import reset_outage_warnings
from django_arc.throttling import ScopeRateThrottle
from shop.models import Product
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory
from tests.helpers import assert_error, site_mounted

fs10c_site = ResourceSite(name="fs10c")


@fs10c_site.register
class Fs10cStaticProductResource(Resource):
    model = Product
    name = "fs10c-products"
    fields = ["id", "name", "status", "organization"]
    presets = [presets.MultiTenant()]
    permissions = {"list": P.require_org_membership(), "get": P.require_org_membership()}
    action_permissions = P.require_org_role("admin", "editor")

    @staticmethod
    @action
    def activate(request, instance, data):
        instance.status = "active"
        instance.save(update_fields=["status"])
        return instance

    @staticmethod
    @route("GET", "tally", permissions=P.require_org_membership())
    def tally(request, view):
        return {"count": view.get_queryset().count()}

    @staticmethod
    @route("GET", "label", detail=True, permissions=P.require_org_membership())
    def label(request, instance):
        return {"label": f"{instance.name}:{instance.status}"}


@pytest.mark.django_db
def test_fs10c_a_staticmethod_over_an_action_or_a_route_answers(settings):
    """A ``@staticmethod`` over ``@action``/``@route`` reads from the class as its plain
    function, which the handler called with the resource first: a ``TypeError``, 500 on
    every call. It is called as Python calls it now, without the resource; the route still
    reads through the filtered queryset (another tenant's row is neither counted nor
    addressable)."""
    org, other = OrganizationFactory(), OrganizationFactory()
    client = APIClient()
    client.force_authenticate(MembershipFactory(organization=org, role="editor").user)
    client.credentials(HTTP_X_ORGANIZATION_ID=str(org.pk))
    row = ProductFactory(organization=org, status="draft", name="mine")
    theirs = ProductFactory(organization=other, status="draft")
    with site_mounted(settings, "fs10c", fs10c_site):
        done = client.post(
            f"/fs10c/fs10c-products/{row.pk}/action/", {"action": "activate"}, format="json"
        )
        assert done.status_code == 200, done.content
        assert done.json()["data"]["status"] == "active"
        counted = client.get("/fs10c/fs10c-products/tally/")
        assert counted.status_code == 200, counted.content
        assert counted.json()["data"] == {"count": 1}
        labelled = client.get(f"/fs10c/fs10c-products/{row.pk}/label/")
        assert labelled.status_code == 200, labelled.content
        assert labelled.json()["data"] == {"label": "mine:active"}
        assert client.get(f"/fs10c/fs10c-products/{theirs.pk}/label/").status_code == 404
        refused = client.post(
            f"/fs10c/fs10c-products/{theirs.pk}/action/", {"action": "activate"}, format="json"
        )
        assert refused.status_code == 404
    row.refresh_from_db()
    theirs.refresh_from_db()
    assert (row.status, theirs.status) == ("active", "draft")


def test_fs10c_a_staticmethod_over_an_action_or_a_route_is_no_arc_e012():
    """arc.E012 read the class body's ``staticmethod`` object, which does not carry the
    spec, and called the served action and routes "not a Resource option, hook, @action or
    @route"."""
    resource = fs10c_site.get_resource("fs10c-products")
    assert [str(e) for e in check_resource(resource)] == []


@pytest.mark.django_db
def test_fs10c_default_throttle_classes_changed_by_override_settings_reach_the_viewsets():
    """DRF's ``APIView.throttle_classes`` is ``DEFAULT_THROTTLE_CLASSES`` as read when DRF was
    imported, and the generated ViewSets inherited that list: a changed setting reached the
    rates but not the classes, so the routed ``books`` list was never throttled. A ViewSet
    with no classes of its own reads the setting per request now, and the override's end
    ends the throttling."""
    from django.core.cache import cache
    from django.test import override_settings
    from rest_framework.settings import api_settings

    api = APIClient()
    rest = {
        **api_settings.user_settings,
        "DEFAULT_THROTTLE_CLASSES": ["django_arc.throttling.ScopeRateThrottle"],
        "DEFAULT_THROTTLE_RATES": {"arc_anon": "1/min"},
    }
    cache.clear()
    try:
        assert [api.get("/api/books/").status_code for _ in range(2)] == [200, 200]
        with override_settings(REST_FRAMEWORK=rest):
            answers = [api.get("/api/books/") for _ in range(2)]
        assert answers[0].status_code == 200
        assert_error(answers[1], 429, "THROTTLED")
        assert answers[1]["Retry-After"] == "60"
        assert [api.get("/api/books/").status_code for _ in range(2)] == [200, 200]
    finally:
        cache.clear()


@pytest.mark.parametrize(
    ("forwarded", "bucket"),
    [
        ("[2001:db8:1:2::1]:443", "2001:db8:1:2::/64"),
        ("[2001:db8:1:2:dead:beef::7]:50123", "2001:db8:1:2::/64"),
        ("[2001:db8:1:2::9]", "2001:db8:1:2::/64"),
        ("203.0.113.5:1234", "203.0.113.5"),
        ("203.0.113.5:4321", "203.0.113.5"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),  # a bare IPv6 address keeps its colons
        ("[::ffff:10.0.0.1]:80", "10.0.0.1"),
    ],
)
def test_fs10c_a_port_a_proxy_appends_to_the_forwarded_address_is_no_bucket(
    settings, forwarded, bucket
):
    """A proxy appending the client's port to ``X-Forwarded-For`` made the ident DRF's
    ``get_ident`` hands on no address: it was keyed as text, so an IPv6 host was one bucket
    per address and port (no ``/64``) and an IPv4 host one per connection's port. The port is
    dropped where arc groups addresses."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    raw = APIRequestFactory().get("/t/", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR=forwarded)
    drf_request = APIView().initialize_request(raw)
    key = ScopeRateThrottle().get_cache_key(drf_request, None)
    assert key == f"arc_throttle_arc_anon_ip:{bucket}"


def test_fs10c_a_zoned_ipv6_address_is_keyed_whole_without_its_port(settings):
    """An IPv6 address with a zone is keyed whole (its text, through ``key_part``), as
    rev-fixes52 found; with a port a proxy appended, the port is left out of it too."""
    from django_arc.cache_keys import key_part

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    keys = set()
    for forwarded in ("[fe80::1%eth0]:8443", "[fe80::1%eth0]:8444", "fe80::1%eth0"):
        raw = APIRequestFactory().get("/t/", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR=forwarded)
        drf_request = APIView().initialize_request(raw)
        keys.add(ScopeRateThrottle().get_cache_key(drf_request, None))
    assert keys == {f"arc_throttle_arc_anon_ip:{key_part('fe80::1%eth0')}"}


class _Fs10cCountingView(APIView):
    """Throttled by ``ScopeRateThrottle``, then reads the database (the request's
    transaction must still answer after the throttle's cache failed in it)."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes = [ScopeRateThrottle]

    def get_exception_handler(self):
        return exception_handler

    def get(self, request):
        return Response({"products": Product.objects.count()})


@pytest.mark.django_db
def test_fs10c_a_database_cache_that_fails_lets_requests_through_with_one_warning(settings, caplog):
    """A throttle cache that is a database cache whose table is missing (an outage of that
    store: the database refusing) raised ``DatabaseError`` from DRF's cache read, a 500 on
    every throttled request, where a Redis outage lets them through. It is the same outage
    now: let through uncounted, one warning per interval; the statements run in a savepoint
    (the test runs in a transaction), so the view's own query after it still answers on
    PostgreSQL, which refuses every query of a transaction a statement failed in."""
    from django.db import connection

    reset_outage_warnings()
    caplog.set_level(logging.WARNING, logger="django_arc.redis")
    ProductFactory()
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"arc_anon": "1/min"},
    }
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "fs10c_no_such_cache_table",
        },
    }
    assert "fs10c_no_such_cache_table" not in connection.introspection.table_names()
    view = _Fs10cCountingView.as_view()
    answers = [view(APIRequestFactory().get("/t/", REMOTE_ADDR="10.0.0.1")) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.data for a in answers] == [{"products": 1}] * 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "django_arc.redis"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("throttling: the database cache unavailable (")


_FS10C_CSRF_CALLS: list[str] = []


class _Fs10cDrfReadingSession(SessionAuthentication):
    """A project's session class reading what only DRF's ``Request`` has: it skips the CSRF
    check for its API's bodies that say so (``request.data``), on its API's paths
    (``request._request``), and counts its calls (an override with a side effect)."""

    def enforce_csrf(self, request):
        _FS10C_CSRF_CALLS.append(type(request).__name__)
        if request._request.path.startswith("/fs10c-own/") and request.data.get("via") == "api":
            return None
        return super().enforce_csrf(request)


class _Fs10cOwnDrfView(APIView):
    """A project's own DRF view: what ``request.arc_scope`` says of the caller, and the
    body its own request still reads."""

    authentication_classes = [_Fs10cDrfReadingSession]
    permission_classes = [AllowAny]

    def post(self, request):
        scope = request.arc_scope
        return Response(
            {
                "kind": scope.kind,
                "org": scope.organization_id,
                "provisional": scope.provisional,
                "via": request.data.get("via"),
            }
        )


@pytest.fixture
def fs10c_own_drf_view(settings):
    """The test project's URLs plus :class:`_Fs10cOwnDrfView` under ``/fs10c-own/``."""
    from django.urls import clear_url_caches, path

    import tests.urls

    settings.ROOT_URLCONF = type(
        "urls",
        (),
        {"urlpatterns": [*tests.urls.urlpatterns, path("fs10c-own/", _Fs10cOwnDrfView.as_view())]},
    )
    clear_url_caches()
    _FS10C_CSRF_CALLS.clear()
    yield
    clear_url_caches()


@pytest.mark.django_db
@pytest.mark.parametrize("form", [False, True], ids=["json", "form"])
def test_fs10c_a_session_class_reading_drf_only_attributes_has_its_requests_judged(
    fs10c_own_drf_view, form
):
    """The middleware asked a project's ``enforce_csrf`` with Django's request, on which
    ``request._request`` and ``request.data`` do not exist: the override raised, the
    request was left to the view, and the view saw the provisional scope (``public``, no
    organization) for a request its class accepts. It is handed a DRF ``Request`` now, whose
    body the view's own request still reads (JSON and form alike); a non-member naming
    another organization is refused 403 ``ORG_REQUIRED`` before the view. The override is
    asked twice per request, the middleware's question and DRF's (docs/decisions.md,
    fix-seen10c)."""
    from django.test import Client

    org, other = OrganizationFactory(), OrganizationFactory()
    user = MembershipFactory(organization=org, role="editor").user
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    body = (
        {"data": {"via": "api"}}
        if form
        else {"data": {"via": "api"}, "content_type": "application/json"}
    )
    seen = client.post("/fs10c-own/", HTTP_X_ORGANIZATION_ID=str(org.pk), **body)
    assert seen.status_code == 200, seen.content
    assert seen.json() == {"kind": "member", "org": str(org.pk), "provisional": False, "via": "api"}
    assert _FS10C_CSRF_CALLS == ["_CsrfCheckRequest", "Request"]
    refused = client.post("/fs10c-own/", HTTP_X_ORGANIZATION_ID=str(other.pk), **body)
    assert_error(refused, 403, "ORG_REQUIRED")
    tokenless = {"data": {"via": "web"}} if form else {**body, "data": {"via": "web"}}
    assert client.post("/fs10c-own/", **tokenless).status_code == 403  # DRF's CSRF refusal


class _Fs10cThrottleByNoNetwork(ScopeRateThrottle):
    ipv6_prefix = 129


class _Fs10cThrottleByTooWide(ScopeRateThrottle):
    ipv6_prefix = -1


class _Fs10cThrottleByTooNarrow(ScopeRateThrottle):
    ipv6_prefix = 200


class _Fs10cThrottledOwnView(APIView):
    """A project's own DRF view throttled by a ``ScopeRateThrottle`` subclass of its own."""

    permission_classes = [AllowAny]
    throttle_classes = [_Fs10cThrottleByTooWide]

    def get(self, request):
        return Response({"ok": True})


def test_fs10c_arc_e020_reads_the_ipv6_prefix_of_every_serving_class(settings):
    """arc.E020's ``ipv6_prefix`` check read ``DEFAULT_THROTTLE_CLASSES`` and the
    resources' ViewSets: a project's own routed DRF view throttled by a subclass of its own
    (``throttle_classes``, or ``as_view(throttle_classes=...)``) was not asked, and its
    anonymous IPv6 callers met the 500. Every serving class is asked now: a resource's own
    and a routed view's."""
    from django.urls import clear_url_caches, path

    import tests.urls
    from django_arc.checks import check_throttle_rates
    from django_arc.sites import _all_sites

    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"arc_anon": "5/min"},
    }
    assert check_throttle_rates() == []
    own = type(
        "Fs10cOwnThrottled",
        (Resource,),
        {
            "model": Product,
            "name": "fs10c-own-throttled",
            "fields": ["id", "name"],
            "throttle_classes": [_Fs10cThrottleByNoNetwork],
        },
    )
    site = ResourceSite(name="fs10c-throttled")
    site.register(own)
    settings.ROOT_URLCONF = type(
        "urls",
        (),
        {
            "urlpatterns": [
                *tests.urls.urlpatterns,
                path("fs10c-throttled/", _Fs10cThrottledOwnView.as_view()),
                path(
                    "fs10c-throttled-by-argument/",
                    _Fs10cThrottledOwnView.as_view(throttle_classes=[_Fs10cThrottleByTooNarrow]),
                ),
            ]
        },
    )
    clear_url_caches()
    try:
        found = sorted(e.msg for e in check_throttle_rates() if e.id == "arc.E020")
    finally:
        _all_sites.remove(site)
        clear_url_caches()
    assert found == [
        "tests.test_fix_seen10c._Fs10cThrottleByNoNetwork.ipv6_prefix = 129 is no IPv6 prefix "
        "length; every anonymous IPv6 request would answer 500.",
        "tests.test_fix_seen10c._Fs10cThrottleByTooNarrow.ipv6_prefix = 200 is no IPv6 prefix "
        "length; every anonymous IPv6 request would answer 500.",
        "tests.test_fix_seen10c._Fs10cThrottleByTooWide.ipv6_prefix = -1 is no IPv6 prefix "
        "length; every anonymous IPv6 request would answer 500.",
    ]
