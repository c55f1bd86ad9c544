"""A project plugging its own components into the dotted-path settings the docs invite
(``MEMBERSHIP_RESOLVER``, ``ELEVATION_CHECK``, ``EVENTS.TRANSPORT``,
``OUTBOX.FAILURE_POLICY``) and its own permissions and DRF authentication next to arc's.

Each plug is written the way a project writes it (``.get()`` for a membership row, a bare
role string), and the test pins what the caller sees: a refusal in the envelope, never a 500
for a client naming an org it is not in, and a misconfigured plug reported by
``manage.py check`` rather than silently refusing every member at request time.
"""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import RequestFactory, override_settings
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import PermissionDenied

from django_arc import PermissionResult, Resource, ResourceSite, presets, redis_alias
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.auth import ServiceKeyAuthentication
from django_arc.checks import check_settings
from django_arc.events.transports import MemoryTransport
from django_arc.membership import cached_resolver
from django_arc.scope import get_scope, get_user_roles, resolve_scope
from django_arc.sites import _all_sites
from shop.models import Membership, Product
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory, UserFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.redis_support import REDIS_URL, arc_with, caches_with

pytestmark = pytest.mark.django_db


def get_resolver(user, org_id):
    """The resolver most projects write first: ``.get()`` raises ``DoesNotExist`` for an org
    the user is not a member of."""
    return [Membership.objects.get(user=user, organization_id=org_id).role]


def role_string_resolver(user, org_id):
    """A resolver returning the role itself rather than a list of roles."""
    membership = Membership.objects.filter(user=user, organization_id=org_id).first()
    return membership.role if membership else None


def staff_profile_check(user):
    """An ``ELEVATION_CHECK`` reading a row only platform staff have: ``DoesNotExist`` for
    everyone else (as ``user.profile`` of a user without a profile)."""
    return Membership.objects.get(user=user, role="platform-staff").organization_id is not None


def one_argument_resolver(user):
    return ["viewer"]


class HeaderUserAuthentication(BaseAuthentication):
    """A project's own DRF authentication (a gateway header) listed before arc's."""

    def authenticate(self, request):
        username = request.META.get("HTTP_X_GATEWAY_USER")
        if not username:
            return None
        return (get_user_model().objects.get(username=username), None)


class PartnerAuthentication(BaseAuthentication):
    """A project's machine principal that is no user row (``pk`` is ``None``)."""

    def authenticate(self, request):
        if request.META.get("HTTP_X_PARTNER") != "p1":
            return None
        return (SimpleNamespace(is_authenticated=True, pk=None, username="partner"), None)


class PartnerProductResource(Resource):
    model = Product
    name = "partner-products"
    fields = ["id", "name"]
    permissions = {"list": P.require_auth(), "get": P.require_auth()}
    authentication_classes = [PartnerAuthentication]


def refuse_with_drf(request, resource, action, obj=None):
    """A project permission raising DRF's own refusal with its message."""
    raise PermissionDenied("Catalogue frozen for stock-taking")


class PlugProductResource(Resource):
    model = Product
    name = "plug-products"
    fields = ["id", "name", "sku", "price", "organization"]
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {
        "list": P.require_org_membership(),
        "get": P.require_org_membership(),
        "create": refuse_with_drf,
        "update": lambda request, resource, action, obj=None: None,
    }
    authentication_classes = [HeaderUserAuthentication, ServiceKeyAuthentication]


def within_budget(request, resource, action, obj=None):
    """A project permission narrowing rows by something outside the scope: the user's own
    budget, kept on the user row (``last_name`` stands in for a profile field)."""
    scope = get_scope(request)
    if scope.kind != "member":
        return PermissionResult(False, "Members only")
    return PermissionResult(True, filters={"price__lte": Decimal(request.user.last_name or "0")})


class BudgetProductResource(Resource):
    model = Product
    name = "budget-products"
    fields = ["id", "name", "price", "organization"]
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {"list": within_budget, "get": within_budget}
    default_sort = "price"
    cache = {"stale_seconds": 30}


class RedactedSkuResource(Resource):
    """SKUs are masked for contractors, a user role the project keeps in ``user.arc_roles``
    (judged for callers outside an organization: inside one, org roles decide)."""

    model = Product
    name = "redacted-skus"
    fields = ["id", "name", "sku"]
    permissions = {"list": P.require_auth(), "get": P.require_auth()}
    field_permissions = {"sku": F.redact_for("contractor")}


@pytest.fixture
def plug_site(settings):
    site = ResourceSite(name="plug-site")
    try:
        site.register(PlugProductResource)
        site.register(BudgetProductResource)
        site.register(RedactedSkuResource)
        site.register(PartnerProductResource)
        with site_mounted(settings, "plug", site):
            yield site
    finally:
        _all_sites.remove(site)


def test_resolver_raising_does_not_exist_is_a_403_for_an_org_the_caller_is_not_in(settings):
    """Before: ``Membership.DoesNotExist`` escaped the resolver, so any logged-in user naming
    another organization got a 500."""
    org, other = OrganizationFactory(), OrganizationFactory()
    user = MembershipFactory(organization=org, role="editor").user
    settings.ARC = {**settings.ARC, "MEMBERSHIP_RESOLVER": get_resolver}
    client = client_for(user, HTTP_X_ORGANIZATION_ID=str(other.pk))
    client.raise_request_exception = False
    body = assert_error(client.get("/api/products/"), 403, "ORG_REQUIRED")
    assert body["details"] == {"organization": str(other.pk)}
    ProductFactory(organization=org)
    member = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    assert member.get("/api/products/").json()["total"] == 1


@pytest.mark.parametrize("answer", ["admin", "", False, 3])
def test_resolver_answer_that_is_no_role_list_is_refused_by_name(settings, answer):
    """Before: ``"admin"`` became the roles ``a, d, m, i, n`` (a member who is no admin, and
    an admin of any one-letter role), ``""`` a member without roles, and ``False`` a bare
    ``'bool' object is not iterable``."""
    settings.ARC = {"MEMBERSHIP_RESOLVER": lambda user, org_id: answer}
    request = RequestFactory().get("/", HTTP_X_ORGANIZATION_ID="7")
    request.user = UserFactory()
    with pytest.raises(TypeError, match=r"MEMBERSHIP_RESOLVER.*list of role names"):
        resolve_scope(request)


@pytest.mark.parametrize("cached", [False, True], ids=["plain", "cached_resolver"])
def test_role_string_resolver_never_grants_a_role_it_did_not_name(settings, cached):
    """End to end: the role-string resolver is a 500 in the envelope, not a member holding
    the letters of its role. Wrapped in ``cached_resolver`` (the documented way to cache
    membership) too: its ``TypeError`` was caught by the scope with the resolver's own
    malformed-id errors and read as "not a member", every member refused with a 403 and
    only an info line logged, where scope-and-auth.md promises the 500 naming the setting."""
    org = OrganizationFactory()
    user = MembershipFactory(organization=org, role="admin").user
    resolver = role_string_resolver
    if cached:
        resolver = cached_resolver(role_string_resolver, prefix="plug-role-string-http")
    settings.ARC = {**settings.ARC, "MEMBERSHIP_RESOLVER": resolver}
    client = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    client.raise_request_exception = False
    assert_error(client.get("/api/products/"), 500, "INTERNAL_ERROR")


def test_elevation_check_raising_does_not_exist_refuses_elevation(settings):
    """Before: a user without the staff row asking for ``X-Arc-Scope: platform`` got a 500."""
    user = UserFactory()
    settings.ARC = {**settings.ARC, "ELEVATION_CHECK": staff_profile_check}
    client = client_for(user, HTTP_X_ARC_SCOPE="platform")
    client.raise_request_exception = False
    body = assert_error(client.get("/api/products/"), 403, "FORBIDDEN")
    assert body["error"] == "Elevation not permitted"
    MembershipFactory(user=user, role="platform-staff")
    assert client_for(user, HTTP_X_ARC_SCOPE="platform").get("/api/products/").status_code == 200


@pytest.mark.parametrize(
    ("arc", "needle"),
    [
        ({"MEMBERSHIP_RESOLVER": "shop.membership"}, "not callable"),
        ({"MEMBERSHIP_RESOLVER": "shop.membership._MAX_PK"}, "not callable"),
        ({"MEMBERSHIP_RESOLVER": one_argument_resolver}, "cannot be called as (user, org_id)"),
        ({"ELEVATION_CHECK": None}, "not None"),
        ({"ELEVATION_CHECK": get_resolver}, "cannot be called as (user)"),
        ({"EVENTS": {"TRANSPORT": "shop.membership._MAX_PK"}}, "neither a class"),
        ({"OUTBOX": {"FAILURE_POLICY": 30}}, "not callable"),
    ],
)
def test_a_plug_that_cannot_do_its_job_fails_manage_py_check(settings, arc, needle):
    """Before: all of these passed ``check``; a one-argument resolver then raised
    ``TypeError`` at every request, read as "not a member": every member refused silently."""
    settings.ARC = arc
    errors = [e for e in check_settings() if e.id == "arc.E008"]
    assert any(needle in e.msg for e in errors), [e.msg for e in errors]
    with pytest.raises(SystemCheckError, match="arc.E008"):
        call_command("check")


@pytest.mark.parametrize(
    "arc",
    [
        {"MEMBERSHIP_RESOLVER": None},
        {"MEMBERSHIP_RESOLVER": "shop.membership.resolve_membership"},
        {"MEMBERSHIP_RESOLVER": lambda user, org_id, *, request=None: []},
        {"ELEVATION_CHECK": lambda user: False},
        {"EVENTS": {"TRANSPORT": MemoryTransport()}},
        {"EVENTS": {"TRANSPORT": "django_arc.events.transports.MemoryTransport"}},
        {"OUTBOX": {"FAILURE_POLICY": lambda attempts, error: None}},
    ],
)
def test_documented_plug_spellings_pass_check(settings, arc):
    settings.ARC = arc
    assert [e.msg for e in check_settings() if e.id == "arc.E008"] == []


def test_project_authentication_class_before_arcs_resolves_the_member_scope(plug_site):
    """DRF authentication runs before the scope is resolved, so a project's own class (not a
    session) still yields a member of the org it names."""
    org = OrganizationFactory()
    user = MembershipFactory(organization=org, role="viewer").user
    ProductFactory(organization=org)
    ProductFactory()
    client = client_for(None, HTTP_X_GATEWAY_USER=user.username, HTTP_X_ORGANIZATION_ID=str(org.pk))
    assert client.get("/plug/plug-products/").json()["total"] == 1
    stranger = client_for(None, HTTP_X_ORGANIZATION_ID=str(org.pk))
    assert_error(stranger.get("/plug/plug-products/"), 401, "UNAUTHORIZED")


def test_permission_raising_drf_refusal_or_returning_none_denies_and_writes_nothing(plug_site):
    org = OrganizationFactory()
    user = MembershipFactory(organization=org, role="admin").user
    product = ProductFactory(organization=org, name="Lamp")
    client = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    body = assert_error(
        client.post("/plug/plug-products/", {"name": "X", "sku": "X-1", "price": "1.00"}),
        403,
        "FORBIDDEN",
    )
    assert body["error"] == "Catalogue frozen for stock-taking"
    assert_error(
        client.patch(f"/plug/plug-products/{product.pk}/", {"name": "Y"}), 403, "FORBIDDEN"
    )
    assert list(Product.objects.values_list("name", flat=True)) == ["Lamp"]


def test_cached_resolver_refuses_a_role_string_instead_of_caching_its_letters():
    """``cached_resolver`` turned the answer into a list before the scope could judge it:
    ``"admin"`` was cached (for ``ttl``) and served as the roles ``a, d, m, i, n``."""
    org = OrganizationFactory()
    user = MembershipFactory(organization=org, role="admin").user
    cached = cached_resolver(role_string_resolver, prefix="plug-role-string")
    with pytest.raises(TypeError, match=r"MEMBERSHIP_RESOLVER.*list of role names"):
        cached(user, str(org.pk))
    assert caches["default"].get(f"plug-role-string:{user.pk}:{org.pk}") is None


@pytest.mark.parametrize(
    ("events", "needle"),
    [
        (
            {
                "TRANSPORT": "django_arc.events.transports.RedisStreamsTransport",
                "OPTIONS": {"URL": "redis://127.0.0.1:1/0"},
            },
            "does not accept OPTIONS ['URL']",
        ),
        (
            {"TRANSPORT": "django_arc.events.transports.RedisPubSubTransport", "OPTIONS": ["x"]},
            "must be a dict of keyword arguments",
        ),
    ],
)
def test_transport_options_it_does_not_accept_fail_manage_py_check(settings, events, needle):
    """Before: ``check`` passed, and ``TRANSPORT(**OPTIONS)`` raised ``TypeError`` at the first
    publish: the relay died of it, and with the outbox off every event was logged and lost."""
    settings.ARC = {"EVENTS": events}
    assert any(needle in e.msg for e in check_settings() if e.id == "arc.E008")


@pytest.mark.parametrize(
    "events",
    [
        {
            "TRANSPORT": "django_arc.events.transports.RedisStreamsTransport",
            "OPTIONS": {"url": "redis://127.0.0.1:1/0", "stream": "s", "group": "g"},
        },
        {"TRANSPORT": "django_arc.events.transports.MemoryTransport", "OPTIONS": {"any": 1}},
    ],
)
def test_transport_options_it_accepts_pass_check(settings, events):
    settings.ARC = {"EVENTS": events}
    assert [e.msg for e in check_settings() if e.id == "arc.E008"] == []


class UrlTransport(MemoryTransport):
    """A project's transport that cannot be built without its ``url``."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url


@pytest.mark.parametrize("options", ["unset", {}, None], ids=["unset", "empty", "None"])
def test_a_transport_missing_a_required_option_fails_manage_py_check(settings, options):
    """``OPTIONS`` left out (or empty) is ``TRANSPORT()`` at the first publish: a
    ``TypeError`` for a transport that needs its ``url``, which the relay dies of. The
    check skipped the signature when there were no options to bind, and passed."""
    events = {"TRANSPORT": UrlTransport}
    if options != "unset":
        events["OPTIONS"] = options
    settings.ARC = {"EVENTS": events}
    messages = [e.msg for e in check_settings() if e.id == "arc.E008"]
    assert any("does not accept OPTIONS []" in m and "url" in m for m in messages), messages
    settings.ARC = {"EVENTS": {**events, "OPTIONS": {"url": "redis://127.0.0.1:1/0"}}}
    assert [e.msg for e in check_settings() if e.id == "arc.E008"] == []


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_cached_list_follows_a_permission_reading_state_outside_the_scope(plug_site):
    """Two viewers of one organization hold the same scope roles but different budgets: the
    permission's filters are part of the key, so each is served its own rows from the cache,
    and a budget changed on the user row is answered from the new filter at once."""
    org = OrganizationFactory()
    for price in ("5.00", "50.00", "500.00"):
        ProductFactory(organization=org, price=price)
    frugal = MembershipFactory(organization=org, role="viewer", user__last_name="10").user
    rich = MembershipFactory(organization=org, role="viewer", user__last_name="100").user
    with (
        override_settings(CACHES=caches_with("redis", REDIS_URL)),
        override_settings(ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})),
    ):
        redis_alias.reset_outage_warnings()

        def prices(user):
            client = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
            response = client.get("/plug/budget-products/")
            return response["X-Cache"], [doc["price"] for doc in response.json()["docs"]]

        assert prices(frugal) == ("MISS", ["5.00"])
        assert prices(rich) == ("MISS", ["5.00", "50.00"])
        assert prices(frugal) == ("HIT", ["5.00"])
        assert prices(rich) == ("HIT", ["5.00", "50.00"])
        type(frugal).objects.filter(pk=frugal.pk).update(last_name="1000")
        frugal.refresh_from_db()
        assert prices(frugal) == ("MISS", ["5.00", "50.00", "500.00"])


class ThreeArgumentPermission(P.Permission):
    """A project's subclass that forgot ``obj``: every request would raise ``TypeError``."""

    def check(self, request, resource, action):
        return True


class ConfiguredPermission(P.Permission):
    """A project's subclass configured at construction, with the documented ``check``."""

    def __init__(self, flag: str) -> None:
        self.flag = flag

    def check(self, request, resource, action, obj=None):
        return bool(self.flag)


def test_permission_subclass_whose_check_cannot_take_obj_is_arc_e010():
    """Before: ``permission_problem`` judged only built-ins and callables, so this passed
    ``check`` and answered 500 on every request to the route it guards."""
    problem = P.permission_problem(ThreeArgumentPermission())
    assert problem and "cannot be called as (request, resource, action, obj=None)" in problem
    assert "check method" in P.permission_problem(P.any_of(ThreeArgumentPermission()))
    assert P.permission_problem(ConfiguredPermission("on")) is None
    assert P.permission_problem(ConfiguredPermission("on") | P.require_auth()) is None


def test_user_roles_given_as_one_string_never_unmask_a_redacted_field(plug_site):
    """``arc_roles`` returning the role itself: before, ``"contractor"`` was read as the roles
    ``c, o, n…``, so the contractor was served the SKU ``redact_for`` masks for it."""
    ProductFactory(sku="SECRET-1")
    user = UserFactory()
    client = client_for(user)
    user.arc_roles = ["contractor"]
    assert [doc["sku"] for doc in client.get("/plug/redacted-skus/").json()["docs"]] == ["***"]
    user.arc_roles = "contractor"
    client.raise_request_exception = False
    response = client.get("/plug/redacted-skus/")
    assert_error(response, 500, "INTERNAL_ERROR")
    assert b"SECRET-1" not in response.content
    with pytest.raises(TypeError, match="arc_roles"):
        get_user_roles(type("U", (), {"is_authenticated": True, "arc_roles": "contractor"})())


def test_a_principal_without_a_pk_resolves_as_public(plug_site):
    """What scope-and-auth.md says of a project's own principal that is no user row: the
    scope is ``public``, so ``require_auth`` refuses it with 401."""
    assert_error(
        client_for(None, HTTP_X_PARTNER="p1").get("/plug/partner-products/"), 401, "UNAUTHORIZED"
    )
