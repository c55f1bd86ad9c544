"""A project's own ``serializer_class`` gets the guarantees of the generated one (issue #18,
point 2): tenant, preset-managed and ``read_only_fields`` are read-only for the write, hidden
fields do not exist, field permissions apply to every field the serializer renders (also one
only it declares), and ``fields`` defaults to the serializer's ``Meta.fields``.

``SerializedProductResource`` (tests/testapp/resources.py) uses a plain ``ModelSerializer``
that *requires* ``organization``, ``in_stock`` and ``secret_notes``: before, every create
answered 400 ``organization: This field is required`` even when naming the caller's own org.
"""

import pytest
from rest_framework import serializers

from django_arc import Resource, ResourceSite, arc, presets
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.checks import check_resource
from django_arc.serializers import ArcSerializerMixin
from django_arc.sites import _all_sites
from shop.models import Product
from tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    ProductFactory,
    UserFactory,
    member_client,
)
from tests.helpers import client_for, site_mounted
from tests.testapp.resources import PlainProductSerializer

pytestmark = pytest.mark.django_db

URL = "/api/serialized-products/"
BODY = {"name": "Lamp", "sku": "L-1", "price": "9.50"}


@pytest.fixture
def orgs():
    return OrganizationFactory(), OrganizationFactory()


member = member_client


def test_create_without_the_org_in_the_body_sets_the_callers(orgs):
    a, _ = orgs
    r = member(a, "editor").post(URL, BODY, format="json")
    assert r.status_code == 201, r.json()
    product = Product.objects.get()
    assert (product.organization_id, product.in_stock, product.secret_notes) == (a.pk, True, "")
    assert r.json()["data"] == {
        "id": product.pk,
        "name": "Lamp",
        "sku": "L-1",
        "price": "9.50",
        "status": "draft",
        "in_stock": True,
        "organization": a.pk,
        "created_at": r.json()["data"]["created_at"],
        "label": "Lamp (L-1)",
    }


def test_create_naming_the_callers_own_org_works(orgs):
    a, _ = orgs
    r = member(a, "editor").post(URL, {**BODY, "organization": a.pk}, format="json")
    assert r.status_code == 201, r.json()
    assert Product.objects.get().organization_id == a.pk


def test_create_naming_another_org_is_refused(orgs):
    a, b = orgs
    r = member(a, "editor").post(URL, {**BODY, "organization": b.pk}, format="json")
    assert r.status_code == 403
    assert r.json()["code"] == "FIELD_WRITE_DENIED"
    assert r.json()["details"] == {"fields": ["organization"]}
    assert not Product.objects.exists()


def test_read_only_fields_are_refused_in_a_body_and_not_required(orgs):
    a, _ = orgs
    r = member(a, "admin").post(URL, {**BODY, "in_stock": False}, format="json")
    assert r.status_code == 403
    assert r.json()["details"] == {"fields": ["in_stock"]}
    assert not Product.objects.exists()


def test_update_applies_and_cannot_move_the_row(orgs):
    a, b = orgs
    product = ProductFactory(organization=a, name="Old", status="draft")
    client = member(a, "editor")
    r = client.patch(f"{URL}{product.pk}/", {"name": "New"}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["data"]["name"] == "New" and r.json()["data"]["label"].startswith("New")
    r = client.patch(f"{URL}{product.pk}/", {"organization": b.pk}, format="json")
    assert r.status_code == 403 and r.json()["details"] == {"fields": ["organization"]}
    product.refresh_from_db()
    assert (product.name, product.organization_id) == ("New", a.pk)


def test_field_write_denied_names_every_field_and_writes_nothing(orgs):
    a, _ = orgs
    product = ProductFactory(organization=a, status="draft", cost=None)
    editor = member(a, "editor")
    r = editor.patch(
        f"{URL}{product.pk}/", {"status": "active", "cost": "1.00", "name": "x"}, format="json"
    )
    assert r.status_code == 403
    assert r.json()["details"] == {"fields": ["cost", "status"]}
    product.refresh_from_db()
    assert (product.status, product.cost, product.name) != ("active", 1, "x")
    r = member(a, "admin").patch(
        f"{URL}{product.pk}/", {"status": "active", "cost": "1.00"}, format="json"
    )
    assert r.status_code == 200
    assert (r.json()["data"]["status"], r.json()["data"]["cost"]) == ("active", "1.00")


def test_hidden_fields_are_never_rendered_required_or_written(orgs):
    a, _ = orgs
    product = ProductFactory(organization=a, secret_notes="TOP-SECRET")
    admin = member(a, "admin")
    created = admin.post(URL, {**BODY, "secret_notes": "planted"}, format="json")
    assert created.status_code == 201, created.json()  # dropped as if it did not exist
    responses = [
        admin.get(URL),
        admin.get(f"{URL}{product.pk}/"),
        admin.patch(f"{URL}{product.pk}/", {"secret_notes": "x", "name": "n"}, format="json"),
        created,
    ]
    for r in responses:
        assert r.status_code in (200, 201)
        assert b"TOP-SECRET" not in r.content and b"secret_notes" not in r.content
    assert Product.objects.get(sku="L-1").secret_notes == ""
    product.refresh_from_db()
    assert product.secret_notes == "TOP-SECRET"


def test_field_permissions_apply_to_a_field_only_the_serializer_declares(orgs):
    a, _ = orgs
    product = ProductFactory(organization=a, name="Lamp", sku="L-9", cost=3)
    viewer, editor = member(a, "viewer"), member(a, "editor")
    seen = viewer.get(f"{URL}{product.pk}/").json()["data"]
    assert "label" not in seen and "cost" not in seen
    assert editor.get(f"{URL}{product.pk}/").json()["data"]["label"] == "Lamp (L-9)"
    assert "label" not in viewer.get(URL).json()["docs"][0]


def test_fields_default_to_the_serializers_and_the_definition_checks_clean():
    resource = arc.get_resource("serialized-products")
    assert resource.all_fields == PlainProductSerializer.Meta.fields
    assert check_resource(resource) == []


def test_a_field_rule_on_a_serializer_only_field_is_not_e009_with_fields_given():
    resource = type(
        "Listed",
        (Resource,),
        {
            "model": Product,
            "name": "listed",
            "fields": ["id", "name"],
            "serializer_class": PlainProductSerializer,
            "field_permissions": {"label": F.visible_to("admin"), "ghost": F.hidden()},
        },
    )()
    assert [str(e) for e in check_resource(resource)] == [
        "Listed ('listed'): (arc.E009) `field_permissions` names 'ghost', which is not in `fields`."
    ]


def test_a_serializer_that_cannot_build_its_fields_is_reported_not_raised():
    from rest_framework import serializers

    class Broken(serializers.ModelSerializer):
        class Meta:
            model = Product
            fields = ["id", "nmae"]

    resource = type(
        "Broken", (Resource,), {"model": Product, "name": "broken", "serializer_class": Broken}
    )()
    errors = check_resource(resource)
    assert [e.id for e in errors] == ["arc.E001"]
    assert str(errors[0]).startswith(
        "Broken ('broken'): (arc.E001) `serializer_class` Broken cannot build its fields: "
        "Field name `nmae` is not valid for model `Product`"
    )


class StaffCostSerializer(serializers.ModelSerializer):
    """A DRF serializer choosing its fields by the request, in ``get_fields()`` as DRF
    allows: ``cost`` for staff only."""

    class Meta:
        model = Product
        fields = ["id", "name", "cost"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is None or not request.user.is_staff:
            fields.pop("cost")
        return fields


class StaffCostProductResource(Resource):
    model = Product
    name = "staff-cost-products"
    serializer_class = StaffCostSerializer
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {"list": P.require_org_membership(), "get": P.require_org_membership()}


def test_a_serializer_choosing_its_fields_per_request_is_asked_on_every_request(orgs, settings):
    """The fields of the first request's serializer were kept for the class: once a staff
    member had listed, every member was served ``cost``; had another listed first, staff
    never were. A ``get_fields()`` of the project's own is called for each serializer, as
    DRF calls it; only DRF's own is answered from the class's copy."""
    a, _ = orgs
    ProductFactory(organization=a, cost=3)
    staff = MembershipFactory(organization=a, role="viewer", user=UserFactory(is_staff=True)).user
    plain = MembershipFactory(organization=a, role="viewer").user
    site = ResourceSite(name="staff-cost-site")
    site.register(StaffCostProductResource)
    try:
        with site_mounted(settings, "sc", site):
            for user, sees_cost in ((staff, True), (plain, False), (staff, True)):
                client = client_for(user, HTTP_X_ORGANIZATION_ID=str(a.pk))
                r = client.get("/sc/staff-cost-products/")
                assert r.status_code == 200
                [doc] = r.json()["docs"]
                assert ("cost" in doc) is sees_cost, (user.is_staff, doc)
    finally:
        _all_sites.remove(site)


class StaffCostByNamesSerializer(serializers.ModelSerializer):
    """The same choice made in ``get_field_names()``, one of the methods DRF's
    ``get_fields()`` calls (``get_extra_kwargs()`` making a field read-only on update is
    another)."""

    class Meta:
        model = Product
        fields = ["id", "name", "cost"]

    def get_field_names(self, declared_fields, info):
        names = list(super().get_field_names(declared_fields, info))
        request = self.context.get("request")
        if request is None or not request.user.is_staff:
            names.remove("cost")
        return names


class StaffCostByNamesResource(StaffCostProductResource):
    name = "staff-cost-by-names"
    serializer_class = StaffCostByNamesSerializer
    presets = [presets.MultiTenant(tenant_field="organization")]


def test_a_serializer_choosing_its_fields_in_a_method_get_fields_calls_is_asked_too(orgs, settings):
    """Only an override of ``get_fields()`` itself was asked per serializer: one of
    ``get_field_names()`` (or ``get_extra_kwargs()``, ``build_field()``…), which DRF's
    ``get_fields()`` calls, was answered from the class's copy, built without a request
    (no ``cost``, even for staff) or for the first caller."""
    a, _ = orgs
    ProductFactory(organization=a, cost=3)
    staff = MembershipFactory(organization=a, role="viewer", user=UserFactory(is_staff=True)).user
    plain = MembershipFactory(organization=a, role="viewer").user
    site = ResourceSite(name="staff-cost-names-site")
    site.register(StaffCostByNamesResource)
    try:
        with site_mounted(settings, "scn", site):
            for user, sees_cost in ((staff, True), (plain, False), (staff, True)):
                client = client_for(user, HTTP_X_ORGANIZATION_ID=str(a.pk))
                r = client.get("/scn/staff-cost-by-names/")
                assert r.status_code == 200
                [doc] = r.json()["docs"]
                assert ("cost" in doc) is sees_cost, (user.is_staff, doc)
    finally:
        _all_sites.remove(site)


class StaffWritesCostSerializer(serializers.ModelSerializer):
    """``cost`` read-only for everyone but staff, chosen by the request as DRF allows."""

    class Meta:
        model = Product
        fields = ["id", "name", "cost", "label"]

    label = serializers.SerializerMethodField()

    def get_label(self, obj):
        return obj.name.upper()

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is None or not request.user.is_staff:
            fields["cost"].read_only = True
        return fields


class StaffWritesCostResource(Resource):
    model = Product
    name = "staff-writes-cost"
    serializer_class = StaffWritesCostSerializer
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "update")}


def test_a_field_a_serializer_makes_read_only_per_request_stays_writable_for_the_others(
    orgs, settings
):
    """The fields a ``serializer_class`` declares read-only are refused like
    ``read_only_fields`` (a144233), judged on the serializer built without a request: one
    making ``cost`` read-only for all but staff had it never writable, and staff's write
    answered 403 ``FIELD_WRITE_DENIED`` (before, it was written). Such a serializer is asked
    per request; its fields no caller can write (a ``SerializerMethodField``) are still
    refused."""
    a, _ = orgs
    product = ProductFactory(organization=a, cost=3)
    staff = MembershipFactory(organization=a, role="viewer", user=UserFactory(is_staff=True)).user
    plain = MembershipFactory(organization=a, role="viewer").user
    site = ResourceSite(name="staff-writes-cost-site")
    site.register(StaffWritesCostResource)
    try:
        with site_mounted(settings, "swc", site):
            url = f"/swc/staff-writes-cost/{product.pk}/"
            staff_api = client_for(staff, HTTP_X_ORGANIZATION_ID=str(a.pk))
            r = staff_api.patch(url, {"cost": "5.00"}, format="json")
            assert r.status_code == 200, r.content
            product.refresh_from_db()
            assert product.cost == 5
            # for the others DRF drops it, as it always did
            r = client_for(plain, HTTP_X_ORGANIZATION_ID=str(a.pk)).patch(
                url, {"cost": "7.00"}, format="json"
            )
            assert r.status_code == 200, r.content
            product.refresh_from_db()
            assert product.cost == 5
            r = staff_api.patch(url, {"label": "x"}, format="json")
            assert r.status_code == 403 and r.json()["details"] == {"fields": ["label"]}
    finally:
        _all_sites.remove(site)


class FieldListMixin(serializers.Serializer):
    """A project mixin written for plain serializers: listed after ``ModelSerializer``, its
    ``get_fields()`` and ``get_field_names()`` are never called (DRF's come first)."""

    def get_fields(self):  # pragma: no cover - shadowed by ModelSerializer's
        raise AssertionError("never called: ModelSerializer.get_fields() comes first")

    def get_field_names(self, declared_fields, info):  # pragma: no cover - shadowed too
        raise AssertionError("never called: ModelSerializer.get_field_names() comes first")


class ShadowedMixinSerializer(serializers.ModelSerializer, FieldListMixin):
    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "created_at"]


class ShadowedMixinResource(Resource):
    model = Product
    name = "shadowed-mixin"
    serializer_class = ShadowedMixinSerializer
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "create")}


def test_a_project_method_drf_shadows_does_not_make_a_serializer_vary(orgs, settings, monkeypatch):
    """A project class defining ``get_fields()`` or a method it calls, listed after
    ``ModelSerializer`` (whose own are the ones Python calls), was taken for an override
    (81855ea, c1ec1fc looked for any definition in the MRO, not the one Python calls): the
    class's fields were built again for every serializer, and ``created_at``, which the
    serializer reads only whatever the request, was dropped from a body without a word
    rather than refused as a144233 refuses it."""
    a, _ = orgs
    ProductFactory(organization=a)
    built = []
    drf_get_fields = serializers.ModelSerializer.get_fields

    def counted(self):
        built.append(type(self))
        return drf_get_fields(self)

    monkeypatch.setattr(serializers.ModelSerializer, "get_fields", counted)
    site = ResourceSite(name="shadowed-mixin-site")
    site.register(ShadowedMixinResource)
    try:
        with site_mounted(settings, "shm", site):
            api = member(a, "editor")
            for _ in range(3):
                assert api.get("/shm/shadowed-mixin/").status_code == 200
            # the resource's serializer (the class django-arc builds around the project's)
            served = [
                k
                for k in built
                if issubclass(k, ArcSerializerMixin) and issubclass(k, ShadowedMixinSerializer)
            ]
            assert len(served) == 1, served  # the class's fields, built once
            body = {**BODY, "created_at": "2001-01-01T00:00:00Z"}
            r = api.post("/shm/shadowed-mixin/", body, format="json")
            assert r.status_code == 403, r.content
            assert r.json()["details"] == {"fields": ["created_at"]}
    finally:
        _all_sites.remove(site)


class DeclaredReadOnlySerializer(serializers.ModelSerializer):
    """A plain serializer declaring ``status`` read-only, and no per-request hook."""

    status = serializers.CharField(read_only=True)

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "status", "organization"]


class DeclaredReadOnlyResource(Resource):
    model = Product
    name = "declared-read-only"
    serializer_class = DeclaredReadOnlySerializer
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "create", "update")}


def test_a_plain_field_a_fixed_serializer_declares_read_only_is_refused_in_a_body(orgs, settings):
    """A field a ``serializer_class`` without per-request hooks declares ``read_only=True``
    (a plain ``CharField``, not only a ``SerializerMethodField``) is refused like
    ``read_only_fields``: 403 naming it, no row; DRF alone would drop it silently (201)."""
    a, _ = orgs
    site = ResourceSite(name="declared-read-only-site")
    site.register(DeclaredReadOnlyResource)
    with site_mounted(settings, "dro", site):
        client = member(a, "editor")
        r = client.post("/dro/declared-read-only/", {**BODY, "status": "active"}, format="json")
        assert r.status_code == 403, r.content
        assert r.json()["details"] == {"fields": ["status"]}
        assert not Product.objects.exists()
        r = client.post("/dro/declared-read-only/", BODY, format="json")
        assert r.status_code == 201, r.content
