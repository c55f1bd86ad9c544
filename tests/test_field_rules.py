"""Field permissions for each kind of caller (each case was found by a hand mutant of
``django_arc/fields.py`` that the suite let through):

- a service client is judged by its scopes (``visible_to("admin")`` shows a field to a
  key holding the scope ``admin``, and to no other key);
- a caller outside any organization is judged by its own roles (its Django groups): a
  user in the group ``pricing`` writes a ``writable_by("pricing")`` field, another user is
  refused with ``FIELD_WRITE_DENIED``;
- an elevated caller (platform admin) passes every role test: it reads ``visible_to``
  fields and writes ``writable_by`` ones without holding the role, and never sees a mask
  (``redact_for``), even when its own groups hold the masked role; it never sees a
  ``hidden()`` field nor writes a ``read_only()`` one.
"""

import pytest
from django.contrib.auth.models import Group
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.clients import ServiceClient
from django_arc.scope import RequestScope
from shop.models import Product
from tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    ProductFactory,
    UserFactory,
    member_client,
)
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db


def _service(org, *scopes):
    _, key = ServiceClient.objects.create_with_key(
        name="svc", organization_id=org.pk, scopes=list(scopes)
    )
    return client_for(None, HTTP_AUTHORIZATION=f"Bearer {key}")


def _elevated(org, *groups):
    user = UserFactory(is_superuser=True)
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return client_for(user, HTTP_X_ARC_SCOPE="platform", HTTP_X_ORGANIZATION_ID=str(org.pk))


def test_a_service_client_reads_a_visible_to_field_by_its_scopes():
    org = OrganizationFactory()
    product = ProductFactory(organization=org, cost=7)
    url = f"/api/t-products/{product.pk}/"
    r = _service(org, "admin").get(url)
    assert r.status_code == 200, r.content
    assert r.json()["data"]["cost"] == "7.00"
    r = _service(org, "products:write").get(url)
    assert r.status_code == 200, r.content
    assert "cost" not in r.json()["data"]


def test_a_caller_outside_any_organization_writes_by_its_own_roles():
    """``bulk-books`` has no tenancy: ``price`` is ``writable_by("pricing")``, judged by
    the user's Django groups."""
    author = Book._meta.get_field("author").related_model.objects.create(name="a")
    pricer = UserFactory()
    pricer.groups.add(Group.objects.create(name="pricing"))
    body = {"title": "t", "isbn": "1", "author": author.pk, "price": "12.50"}
    r = client_for(pricer).post("/api/bulk-books/", body, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["data"]["price"] == "12.50"
    r = client_for(UserFactory()).post("/api/bulk-books/", {**body, "isbn": "2"}, format="json")
    assert assert_error(r, 403, "FIELD_WRITE_DENIED")["details"] == {"fields": ["price"]}
    assert list(Book.objects.values_list("isbn", flat=True)) == ["1"]


def test_an_elevated_caller_passes_every_role_test_and_sees_no_mask():
    """``t-products``: ``cost`` visible to admins, ``status`` writable by admins, ``sku``
    masked for viewers, ``secret_notes`` hidden. A platform admin holding no org role (and
    the group ``viewer`` of its own) reads ``cost`` and the real ``sku``, writes
    ``status``, and still never sees ``secret_notes``."""
    org = OrganizationFactory()
    product = ProductFactory(organization=org, cost=7, sku="SKU-9", secret_notes="psst")
    admin = _elevated(org, "viewer")
    r = admin.get(f"/api/t-products/{product.pk}/")
    assert r.status_code == 200, r.content
    data = r.json()["data"]
    assert data["cost"] == "7.00" and data["sku"] == "SKU-9"
    assert "secret_notes" not in data
    r = admin.patch(f"/api/t-products/{product.pk}/", {"status": "archived"}, format="json")
    assert r.status_code == 200, r.content
    assert Product.objects.get(pk=product.pk).status == "archived"


def test_the_rules_themselves_for_an_elevated_scope():
    """``FieldPermission`` is public: its answers for an elevated scope hold on their own,
    not only through the resource's compiled rules (which set hidden and read-only fields
    aside before asking)."""
    elevated = RequestScope(kind="elevated", user_id=1, user_roles=("viewer",))
    assert F.hidden().can_read(elevated) is False
    assert F.hidden().can_write(elevated) is False
    assert F.read_only().can_write(elevated) is False
    assert F.visible_to("admin").can_read(elevated) is True
    assert F.writable_by("admin").can_write(elevated) is True
    assert F.redact_for("viewer").redacts_for(elevated) is False


def test_select_never_brings_back_an_unreadable_primary_key(settings):
    """``?select=`` always keeps the primary key and ``id`` (rows must stay addressable),
    but not for a caller who may not read them: ``PrivateIdDogs`` shows ``id`` to admins
    only, and a plain user's ``?select=name`` is ``name`` alone."""
    from tests.test_extension_points import mounted_site
    from tests.test_security_regressions import PrivateIdDogs
    from tests.testapp.models import Dog

    Dog.objects.create(name="rex")
    admin = UserFactory()
    admin.groups.add(Group.objects.create(name="admin"))
    with mounted_site(settings, "sec", PrivateIdDogs):
        body = client_for(UserFactory()).get("/sec/private-id-dogs/?select=name").json()
        assert body["docs"] == [{"name": "rex"}]
        body = client_for(admin).get("/sec/private-id-dogs/?select=name").json()
        assert [set(d) for d in body["docs"]] == [{"id", "name"}]


class _LabelledProductSerializer(serializers.ModelSerializer):
    """A project serializer writing a key of its own in ``to_representation``."""

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "organization"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["label"] = f"{instance.name} ({instance.sku})"
        return data


rules_site = ResourceSite(name="field-rules")


@rules_site.register
class MaskedForEditorsResource(Resource):
    """``sku`` masked for editors, who may still write it; no hidden or unreadable field."""

    model = Product
    name = "masked-for-editors"
    fields = ["id", "name", "sku", "price", "organization"]
    presets = [presets.MultiTenant()]
    permissions = {
        "list": P.require_org_membership(),
        "get": P.require_org_membership(),
        "create": P.require_org_role("editor"),
        "update": P.require_org_role("editor"),
    }
    field_permissions = {"sku": F.redact_for("editor")}


@rules_site.register
class LabelledProductResource(Resource):
    model = Product
    name = "labelled-products"
    serializer_class = _LabelledProductSerializer
    presets = [presets.MultiTenant()]
    permissions = {"list": P.require_org_membership()}
    field_permissions = {"sku": F.redact_for("editor")}


def _editor(org):
    user = MembershipFactory(organization=org, role="editor").user
    return client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))


def test_a_write_answer_masks_what_the_writer_reads_masked(settings):
    """The answer of a create or update is a read like any other: an editor writing a
    field it reads masked gets the mask back, not the value it wrote."""
    org = OrganizationFactory()
    editor = _editor(org)
    with site_mounted(settings, "field-rules", rules_site):
        r = editor.post(
            "/field-rules/masked-for-editors/",
            {"name": "n", "sku": "S-1", "price": "1.00"},
            format="json",
        )
        assert r.status_code == 201, r.content
        assert r.json()["data"]["sku"] == "***"
        pk = r.json()["data"]["id"]
        r = editor.patch(f"/field-rules/masked-for-editors/{pk}/", {"sku": "S-2"}, format="json")
        assert r.status_code == 200, r.content
        assert r.json()["data"]["sku"] == "***"
    assert Product.objects.get(pk=pk).sku == "S-2"


def test_select_and_masks_apply_to_what_a_project_serializer_writes_itself(settings):
    """A project serializer may write keys of its own (``label``): ``?select=`` keeps
    only the fields chosen (and the id), whatever the serializer wrote, and masks apply."""
    org = OrganizationFactory()
    ProductFactory(organization=org, name="n", sku="S-1")
    editor = _editor(org)
    with site_mounted(settings, "field-rules", rules_site):
        body = editor.get("/field-rules/labelled-products/?select=name").json()
        assert [set(d) for d in body["docs"]] == [{"id", "name"}]
        doc = editor.get("/field-rules/labelled-products/").json()["docs"][0]
        assert doc["sku"] == "***" and doc["label"] == "n (S-1)"


def test_a_read_only_rule_makes_the_field_read_only_in_the_serializer():
    """``F.read_only()`` (``branch-notes``' ``internal``) is read-only for the serializer
    itself, not only refused by the write guard: the documented request body leaves it out,
    the answer carries it."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)

    def resolve(node):
        while "$ref" in node:
            node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        return node

    post = schema["paths"]["/api/branch-notes/"]["post"]
    body = resolve(post["requestBody"]["content"]["application/json"]["schema"])
    assert "text" in body["properties"] and "internal" not in body["properties"]
    assert "internal" in schema["components"]["schemas"]["BranchNote"]["properties"]


def test_a_browsable_form_never_shows_the_value_behind_a_mask(settings):
    """A row's browsable page fills its forms from the row: a field the caller reads
    masked is left out of them (its real value would be shown, and the post would write
    back whatever the input held), even when the caller may write it."""
    org = OrganizationFactory()
    product = ProductFactory(organization=org, name="visible-name", sku="REAL-SKU-123")
    editor = _editor(org)
    with site_mounted(settings, "field-rules", rules_site):
        page = editor.get(f"/field-rules/masked-for-editors/{product.pk}/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200, page.content[:500]
    html = page.content.decode()
    assert "visible-name" in html
    assert "REAL-SKU-123" not in html


# -- a body naming a field twice -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"name": "x", "sku": "d1", "price": "1", "name": "last"}', "application/json"),
        ("name=x&sku=d1&price=1&name=last", "application/x-www-form-urlencoded"),
    ],
    ids=["json", "form"],
)
def test_a_field_named_twice_in_a_body_is_its_last_value(body, content_type):
    """A JSON object with a key twice and a form with a scalar field twice are read as
    their last value (Python's ``json``, Django's ``QueryDict.get``), the value the field
    rules judge and the row is written with (decisions.md)."""
    org = OrganizationFactory()
    client = member_client(org, "editor")
    r = client.generic("POST", "/api/t-products/", body, content_type=content_type)
    assert r.status_code == 201, r.content
    assert r.json()["data"]["name"] == "last"
    assert Product.objects.get(sku="d1").name == "last"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (
            '{"name": "x", "sku": "d2", "price": "1", "status": "active", "status": null}',
            "application/json",
        ),
        ("name=x&sku=d2&price=1&status=active&status=", "application/x-www-form-urlencoded"),
    ],
    ids=["json", "form"],
)
def test_a_refused_field_named_twice_is_refused_whatever_its_last_value(body, content_type):
    """An editor may not write ``status``: a body naming it twice, the last time with no
    value, is refused all the same (JSON), or writes nothing to it (a blank form field is
    not sent); the first value is never written."""
    org = OrganizationFactory()
    client = member_client(org, "editor")
    r = client.generic("POST", "/api/t-products/", body, content_type=content_type)
    if content_type == "application/json":
        assert r.status_code == 403 and r.json()["code"] == "FIELD_WRITE_DENIED", r.content
        assert not Product.objects.filter(sku="d2").exists()
    else:
        assert r.status_code == 201, r.content
        assert Product.objects.get(sku="d2").status == "draft"
