"""A project extending its resources the ways the docs invite (docs/resources.md, "Subclass
points a DRF user looks for"): a ViewSet subclass routed by hand that overrides a DRF seam,
and a resource naming a DRF pagination class of its own. Each keeps the caller's field
permissions, its own cached answers and an answer in the envelope, not a 500."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.urls import clear_url_caches, include, path
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.routers import SimpleRouter

from django_arc import Resource, presets, redis_alias
from django_arc import fields as F
from django_arc import permissions as P
from shop.models import Product
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory
from tests.helpers import client_for
from tests.redis_support import REDIS_URL, arc_with, caches_with

MEMBERS = P.require_org_membership()


class ExtensionProductResource(Resource):
    """Cost only for admins, notes for nobody: what a viewer must never read."""

    model = Product
    name = "extension-products"
    fields = ["id", "name", "sku", "price", "cost", "secret_notes", "organization"]
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {"list": MEMBERS, "get": MEMBERS}
    field_permissions = {"cost": F.visible_to("admin"), "secret_notes": F.hidden()}
    cache = {"stale_seconds": 30}


class PlainProductSerializer(serializers.ModelSerializer):
    """What a DRF user returns from ``get_serializer_class()``: every column."""

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "cost", "secret_notes", "organization"]


def viewsets():
    """The generated ViewSet and three subclasses overriding a DRF seam each; built per
    test, once the resource's models are loaded."""
    generated = ExtensionProductResource.as_viewset()

    class OwnSerializer(generated):
        def get_serializer_class(self):
            return PlainProductSerializer

    class WithSummary(generated):
        def list(self, request, *args, **kwargs):
            response = super().list(request, *args, **kwargs)
            response.data["summary"] = {"asked_by": request.user.username}
            return response

    class DrfPages(generated):
        pagination_class = type("TwoPerPage", (PageNumberPagination,), {"page_size": 2})

    return {"plain": generated, "own": OwnSerializer, "summary": WithSummary, "pages": DrfPages}


@pytest.fixture
def routed(settings):
    """Each ViewSet under ``/x/<name>/``, routed by hand as a project would."""
    import tests.urls

    router = SimpleRouter()
    for prefix, viewset in viewsets().items():
        router.register(prefix, viewset, basename=f"ext-{prefix}")
    patterns = [*tests.urls.urlpatterns, path("x/", include(router.urls))]
    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": patterns})
    clear_url_caches()
    yield
    clear_url_caches()


@pytest.fixture
def acme():
    """An organization with one product (and another organization's), and a viewer."""
    org = OrganizationFactory()
    product = ProductFactory(organization=org, name="Anvil", cost=3, secret_notes="margin 80%")
    ProductFactory(organization=OrganizationFactory(), name="Theirs")
    viewer = MembershipFactory(organization=org, role="viewer").user
    return {
        "product": product,
        "viewer": client_for(viewer, HTTP_X_ORGANIZATION_ID=str(org.pk)),
    }


@pytest.mark.django_db
def test_a_viewsets_own_serializer_class_renders_only_what_the_caller_may_read(routed, acme):
    """``render()`` filtered a project serializer's output only when the *resource* named
    one, so a ViewSet overriding ``get_serializer_class()`` served every column it renders:
    a hidden field and an admin-only one to a viewer."""
    viewer, pk = acme["viewer"], acme["product"].pk
    listed = viewer.get("/x/own/")
    got = viewer.get(f"/x/own/{pk}/")
    assert listed.status_code == got.status_code == 200
    assert [doc["name"] for doc in listed.json()["docs"]] == ["Anvil"]
    for doc in (*listed.json()["docs"], got.json()["data"]):
        assert set(doc) == {"id", "name", "sku", "price", "organization"}


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_a_viewset_subclass_never_serves_the_generated_viewsets_cached_answers(routed, acme):
    """The cache key named the resource, not the view: a subclass overriding ``list()``, a
    ``pagination_class`` or ``get_serializer_class()`` was answered the entry the generated
    ViewSet had stored (and stored its own for it), whatever it renders itself."""
    viewer = acme["viewer"]
    caches = caches_with("redis", REDIS_URL)
    with (
        override_settings(CACHES=caches),
        override_settings(ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})),
    ):
        redis_alias.reset_outage_warnings()
        uncached = {}
        for prefix in ("summary", "pages", "own", "plain"):
            first = viewer.get(f"/x/{prefix}/")
            assert first["X-Cache"] == "MISS", prefix
            uncached[prefix] = first.content
        assert b'"summary"' in uncached["summary"] and b'"results"' in uncached["pages"]
        for prefix in ("plain", "summary", "pages", "own"):
            again = viewer.get(f"/x/{prefix}/")
            assert again["X-Cache"] == "HIT", prefix
            assert again.content == uncached[prefix], prefix
        assert b"margin" not in uncached["own"]
