"""rev-relations: relations between rows as a project uses them and a caller probes them —
a tree's parent (a foreign key to the resource's own model) and links to its own rows (a
many-to-many), deletes that other rows block, and what a write of a relation stores."""

import re

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.views import APIView

from django_arc import Resource, ResourceSite, action, presets
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.outbox.models import OutboxEvent
from shop.models import Product
from tests.factories import (
    MembershipFactory,
    OrderFactory,
    OrganizationFactory,
    ProductFactory,
    member_client,
)
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Draft, Folder

pytestmark = pytest.mark.django_db

RR_MEMBERS = {
    key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
}

rr_site = ResourceSite(name="rev-relations")


class RrAdoptInput(serializers.Serializer):
    parent = serializers.PrimaryKeyRelatedField(queryset=Folder.objects.all())


@rr_site.register
class RrFolderResource(Resource):
    """Every member reads the tenant's folders; deleted ones are gone (``SoftDelete``)."""

    model = Folder
    name = "folders"
    fields = ["id", "organization", "owner", "name", "parent", "links", "deleted_at"]
    presets = [presets.MultiTenant(), presets.SoftDelete(), presets.Audited()]
    permissions = RR_MEMBERS


@rr_site.register
class RrMyFolderResource(Resource):
    """Each member reads only the folders it owns (``require_owner`` read filters)."""

    model = Folder
    name = "my-folders"
    fields = ["id", "organization", "owner", "name", "parent", "links"]
    filter_fields = {"name": ["eq"]}
    presets = [presets.MultiTenant(), presets.OwnedBy()]
    permissions = {**RR_MEMBERS, "list": P.require_owner(), "get": P.require_owner()}
    action_permissions = P.require_org_membership()

    @action(input=RrAdoptInput)
    def adopt(self, request, instance, data):
        instance.parent = data["parent"]
        instance.save()
        return instance


@rr_site.register
class RrMyBulkFolderResource(Resource):
    """``my-folders`` with ``Bulk``, without the many-to-many it cannot write (arc.E011)."""

    model = Folder
    name = "my-bulk-folders"
    fields = ["id", "organization", "owner", "name", "parent"]
    filter_fields = {"name": ["eq"]}
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.Bulk()]
    permissions = {**RR_MEMBERS, "list": P.require_owner(), "get": P.require_owner()}


@rr_site.register
class RrPlainFolderResource(Resource):
    """No preset at all: only the permission's row filters say what a caller reads."""

    model = Folder
    name = "plain-folders"
    fields = ["id", "owner", "name", "parent"]
    permissions = {
        "list": P.require_owner(),
        "get": P.require_owner(),
        "create": P.require_auth(),
        "update": P.require_owner(),
        "delete": P.require_owner(),
    }


@rr_site.register
class RrHardFolderResource(Resource):
    """Every member reads the tenant's folders; only a folder's owner deletes it, for good."""

    model = Folder
    name = "hard-folders"
    fields = ["id", "organization", "owner", "name", "parent"]
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.Audited(), presets.Bulk()]
    permissions = RR_MEMBERS


@rr_site.register
class RrRuledParentFolderResource(Resource):
    """The parent is for admins' eyes only; a path through it is listed as filterable."""

    model = Folder
    name = "ruled-folders"
    fields = ["id", "organization", "name", "parent"]
    filter_fields = {"parent__name": ["eq"], "name": ["eq"]}
    presets = [presets.MultiTenant()]
    permissions = RR_MEMBERS
    field_permissions = {"parent": F.visible_to("admin")}


@rr_site.register
class RrPeerFolderResource(Resource):
    """Folders linked both ways (a symmetrical many-to-many, Django's default for ``self``)."""

    model = Folder
    name = "peer-folders"
    fields = ["id", "organization", "owner", "name", "peers"]
    presets = [presets.MultiTenant(), presets.OwnedBy()]
    permissions = RR_MEMBERS


@rr_site.register
class RrDraftResource(Resource):
    model = Draft
    name = "drafts"
    fields = ["id", "organization", "owner", "name", "origin"]
    presets = [presets.MultiTenant(), presets.OwnedBy()]
    permissions = RR_MEMBERS


def _rr_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False  # a 500 is an answer to assert on
    return api, user


@pytest.fixture
def rr_mounted(settings):
    with site_mounted(settings, "rr", rr_site):
        yield


def _rr_missing_body(response, field, pk):
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"] == {field: [f'Invalid pk "{pk}" - object does not exist.']}
    return body


def test_rr_a_parent_the_caller_may_not_read_answers_as_a_missing_row(rr_mounted):
    """``require_owner`` read filters: another member's folder is a 404 to this caller, and
    naming it as a parent or a link was 201 (the row linked, and told apart from a missing
    id, which is 400): now both answer as a missing row, and nothing is written."""
    org = OrganizationFactory()
    api, me = _rr_member(org)
    _, them = _rr_member(org)
    theirs = Folder.objects.create(organization=org, owner=them, name="theirs")
    mine = Folder.objects.create(organization=org, owner=me, name="mine")
    missing = Folder.objects.order_by("-pk").first().pk + 100
    assert api.get(f"/rr/my-folders/{theirs.pk}/").status_code == 404
    before = Folder.objects.count()
    for field, value, pk in (
        ("parent", theirs.pk, theirs.pk),
        ("parent", missing, missing),
        ("links", [theirs.pk], theirs.pk),
    ):
        r = api.post("/rr/my-folders/", {"name": "x", field: value}, format="json")
        _rr_missing_body(r, field, pk)
    r = api.patch(f"/rr/my-folders/{mine.pk}/", {"parent": theirs.pk}, format="json")
    _rr_missing_body(r, "parent", theirs.pk)
    assert Folder.objects.count() == before
    assert Folder.objects.get(pk=mine.pk).parent_id is None
    assert not OutboxEvent.objects.filter(type__startswith="my-folders.").exists()
    # the caller's own folder is a parent it may name
    r = api.post("/rr/my-folders/", {"name": "child", "parent": mine.pk}, format="json")
    assert r.status_code == 201, r.content
    assert Folder.objects.get(pk=r.json()["data"]["id"]).parent_id == mine.pk


def test_rr_a_bulk_item_and_an_action_input_naming_an_unreadable_folder_are_refused(rr_mounted):
    org = OrganizationFactory()
    api, me = _rr_member(org)
    _, them = _rr_member(org)
    theirs = Folder.objects.create(organization=org, owner=them, name="theirs")
    mine = Folder.objects.create(organization=org, owner=me, name="mine")
    r = api.post(
        "/rr/my-bulk-folders/bulk/",
        {"items": [{"name": "a", "parent": mine.pk}, {"name": "b", "parent": theirs.pk}]},
        format="json",
    )
    body = assert_error(r, 400, "VALIDATION_ERROR")
    assert body["details"] == {
        "items": {"1": {"parent": [f'Invalid pk "{theirs.pk}" - object does not exist.']}}
    }
    assert Folder.objects.count() == 2
    r = api.post(
        f"/rr/my-folders/{mine.pk}/action/", {"action": "adopt", "parent": theirs.pk}, format="json"
    )
    _rr_missing_body(r, "parent", theirs.pk)
    assert Folder.objects.get(pk=mine.pk).parent_id is None
    r = api.post(
        f"/rr/my-folders/{mine.pk}/action/", {"action": "adopt", "parent": mine.pk}, format="json"
    )
    assert r.status_code == 200, r.content


def test_rr_a_soft_deleted_parent_answers_as_a_missing_row(rr_mounted):
    """A folder the resource deleted softly is 404 to a GET; naming it as a parent was 201."""
    org = OrganizationFactory()
    api, _ = _rr_member(org)
    gone = Folder.objects.create(organization=org, name="gone", deleted_at=timezone.now())
    kept = Folder.objects.create(organization=org, name="kept")
    assert api.get(f"/rr/folders/{gone.pk}/").status_code == 404
    r = api.post("/rr/folders/", {"name": "x", "parent": gone.pk}, format="json")
    _rr_missing_body(r, "parent", gone.pk)
    r = api.patch(f"/rr/folders/{kept.pk}/", {"links": [gone.pk]}, format="json")
    _rr_missing_body(r, "links", gone.pk)
    assert not Folder.objects.filter(parent=gone).exists()
    assert list(Folder.objects.get(pk=kept.pk).links.all()) == []


def test_rr_without_presets_the_permissions_row_filters_still_narrow_a_parent(rr_mounted):
    """The narrowing ran only for a resource with presets; a resource whose permission
    alone says which rows a caller reads linked another user's row."""
    org = OrganizationFactory()
    api, me = _rr_member(org)
    _, them = _rr_member(org)
    theirs = Folder.objects.create(owner=them, name="theirs")
    mine = Folder.objects.create(owner=me, name="mine")
    r = api.post("/rr/plain-folders/", {"name": "x", "parent": theirs.pk}, format="json")
    _rr_missing_body(r, "parent", theirs.pk)
    r = api.post("/rr/plain-folders/", {"name": "x", "parent": mine.pk}, format="json")
    assert r.status_code == 201, r.content


def test_rr_a_many_to_many_change_is_in_the_update_event_and_the_audit_row(rr_mounted):
    """Checked and sound: a PATCH changing only links stores one ``folders.updated`` naming
    ``links`` as changed with its previous ids, and an audit row with both sides."""
    org = OrganizationFactory()
    api, _ = _rr_member(org)
    a = Folder.objects.create(organization=org, name="a")
    b = Folder.objects.create(organization=org, name="b")
    r = api.patch(f"/rr/folders/{a.pk}/", {"links": [b.pk]}, format="json")
    assert r.status_code == 200, r.content
    (event,) = OutboxEvent.objects.filter(type="folders.updated")
    assert event.payload["changed"] == ["links"]
    assert event.payload["previous"] == {"links": []}
    audit = AuditLog.objects.get(action="updated", object_id=str(a.pk))
    assert (audit.before, audit.after) == ({"links": []}, {"links": [b.pk]})


def test_rr_a_protected_row_is_a_409_with_nothing_written_single_and_bulk():
    """Checked and sound: deleting a product an order still names is 409 ``CONFLICT``, the
    product kept, no event and no audit row stored; a bulk delete of it beside a free one
    deletes neither."""
    org = OrganizationFactory()
    admin = member_client(org, "admin")
    held = ProductFactory(organization=org)
    free = ProductFactory(organization=org)
    OrderFactory(organization=org, product=held)
    r = admin.delete(f"/api/products/{held.pk}/")
    body = assert_error(r, 409, "CONFLICT")
    assert body["error"] == "Cannot delete: other records still refer to this one"
    r = admin.delete("/api/products/bulk/", {"ids": [free.pk, held.pk]}, format="json")
    assert_error(r, 409, "CONFLICT")
    assert Product.objects.filter(pk__in=[held.pk, free.pk]).count() == 2
    assert not OutboxEvent.objects.filter(type="products.deleted").exists()
    assert not AuditLog.objects.filter(action="deleted").exists()


def test_rr_a_bulk_filter_update_naming_an_unreadable_parent_is_refused(rr_mounted):
    org = OrganizationFactory()
    api, me = _rr_member(org)
    _, them = _rr_member(org)
    theirs = Folder.objects.create(organization=org, owner=them, name="theirs")
    mine = Folder.objects.create(organization=org, owner=me, name="mine")
    r = api.patch(
        "/rr/my-bulk-folders/bulk/",
        {"filter": {"name": "mine"}, "data": {"parent": theirs.pk}},
        format="json",
    )
    body = assert_error(r, 400, "VALIDATION_ERROR")
    assert body["details"] == {
        "data": {"parent": [f'Invalid pk "{theirs.pk}" - object does not exist.']}
    }
    assert Folder.objects.get(pk=mine.pk).parent_id is None


def test_rr_the_browsable_form_offers_only_the_folders_the_caller_reads(rr_mounted, monkeypatch):
    """The form's parent select listed every folder of the tenant, another member's by its
    name: it now offers the ones the caller may name."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    org = OrganizationFactory()
    api, me = _rr_member(org)
    _, them = _rr_member(org)
    theirs = Folder.objects.create(organization=org, owner=them, name="theirs")
    mine = Folder.objects.create(organization=org, owner=me, name="mine")
    page = api.get("/rr/my-folders/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200, page.content
    html = page.content.decode()
    select = re.search(r'<select[^>]* name="parent"[^>]*>(.*?)</select>', html, re.S)
    assert select is not None
    offered = re.findall(r'<option value="([^"]*)"', select[1])
    assert str(mine.pk) in offered and str(theirs.pk) not in offered


def test_rr_a_relation_path_filter_is_under_its_roots_field_rule(rr_mounted):
    """Checked and sound: ``parent__name`` is listed, but ``parent`` is visible to admins
    only: to a member the path is a parameter it may not filter on, ignored when plain (as
    any unknown plain parameter: no answer says the field exists), 400 with an operator;
    an admin's filter applies."""
    org = OrganizationFactory()
    api, _ = _rr_member(org)
    top = Folder.objects.create(organization=org, name="top")
    Folder.objects.create(organization=org, name="child", parent=top)
    assert api.get("/rr/ruled-folders/?parent__name=top").json()["total"] == 2
    r = api.get("/rr/ruled-folders/?parent__name[eq]=top")
    body = assert_error(r, 400, "INVALID_QUERY")
    assert list(body["details"]) == ["parent__name[eq]"]
    admin = member_client(org, "admin")
    admin.raise_request_exception = False
    r = admin.get("/rr/ruled-folders/?parent__name=top")
    assert [d["name"] for d in r.json()["docs"]] == ["child"]


def test_rr_a_delete_cascading_into_folders_the_caller_may_not_delete_is_refused(rr_mounted):
    """``OwnedBy``: another member's folder is a 403 to delete, yet deleting the caller's
    folder it sat in removed it by ``CASCADE`` (200). Now 409 ``CONFLICT``, as a protected
    row, single and bulk, nothing deleted; a subtree all the caller's is deleted whole."""
    org = OrganizationFactory()
    api, me = _rr_member(org)
    _, them = _rr_member(org)
    top = Folder.objects.create(organization=org, owner=me, name="top")
    mine = Folder.objects.create(organization=org, owner=me, name="mine", parent=top)
    theirs = Folder.objects.create(organization=org, owner=them, name="theirs", parent=mine)
    assert_error(api.delete(f"/rr/hard-folders/{theirs.pk}/"), 403, "OWNERSHIP_DENIED")
    for r in (
        api.delete(f"/rr/hard-folders/{top.pk}/"),
        api.delete(f"/rr/hard-folders/{mine.pk}/"),
        api.delete("/rr/hard-folders/bulk/", {"ids": [top.pk]}, format="json"),
    ):
        body = assert_error(r, 409, "CONFLICT")
        assert body["error"] == "Cannot delete: other records still refer to this one"
    assert Folder.objects.count() == 3
    assert not OutboxEvent.objects.filter(type="hard-folders.deleted").exists()
    assert not AuditLog.objects.filter(action="deleted").exists()
    # their folder moved out, the caller's subtree goes whole
    Folder.objects.filter(pk=theirs.pk).update(parent=None)
    r = api.delete(f"/rr/hard-folders/{top.pk}/")
    assert r.status_code == 200, r.content
    assert list(Folder.objects.values_list("pk", flat=True)) == [theirs.pk]


def test_rr_a_delete_cascading_into_rows_outside_the_delete_filters_is_refused(rr_mounted):
    """``require_owner`` delete filters: a child another user owns is outside them (not even
    readable); deleting the parent removed it. Now 409, as a protected row."""
    org = OrganizationFactory()
    api, me = _rr_member(org)
    _, them = _rr_member(org)
    mine = Folder.objects.create(owner=me, name="mine")
    theirs = Folder.objects.create(owner=them, name="theirs", parent=mine)
    assert api.get(f"/rr/plain-folders/{theirs.pk}/").status_code == 404
    assert_error(api.delete(f"/rr/plain-folders/{mine.pk}/"), 409, "CONFLICT")
    assert Folder.objects.filter(pk__in=[mine.pk, theirs.pk]).count() == 2
    own_child = Folder.objects.create(owner=me, name="own", parent=mine)
    Folder.objects.filter(pk=theirs.pk).update(parent=None)
    assert api.delete(f"/rr/plain-folders/{mine.pk}/").status_code == 200
    assert not Folder.objects.filter(pk__in=[mine.pk, own_child.pk]).exists()


def test_rr_a_symmetrical_link_is_one_fact_of_two_rows_and_one_event(rr_mounted):
    """Decided (docs/decisions.md): linking the caller's folder to another member's through
    a symmetrical many-to-many is judged as a write of the caller's row; the other row
    shows the link too, with no event of its own, as a reverse relation would."""
    org = OrganizationFactory()
    api, me = _rr_member(org)
    other, them = _rr_member(org)
    mine = Folder.objects.create(organization=org, owner=me, name="mine")
    theirs = Folder.objects.create(organization=org, owner=them, name="theirs")
    assert_error(
        other.patch(f"/rr/peer-folders/{mine.pk}/", {"name": "x"}), 403, "OWNERSHIP_DENIED"
    )
    r = api.patch(f"/rr/peer-folders/{mine.pk}/", {"peers": [theirs.pk]}, format="json")
    assert r.status_code == 200, r.content
    assert other.get(f"/rr/peer-folders/{theirs.pk}/").json()["data"]["peers"] == [mine.pk]
    events = [(e.type, e.meta["resource_id"]) for e in OutboxEvent.objects.all()]
    assert events == [("peer-folders.updated", str(mine.pk))]


def test_rr_a_parent_the_caller_no_longer_reads_is_refused_when_sent_again(rr_mounted):
    """Decided (docs/decisions.md): a row's parent deleted softly since it was read is a row
    the caller may not name, also when a body sends the value the row holds; a body leaving
    it out changes the rest."""
    org = OrganizationFactory()
    api, _ = _rr_member(org)
    parent = Folder.objects.create(organization=org, name="parent")
    child = Folder.objects.create(organization=org, name="child", parent=parent)
    Folder.objects.filter(pk=parent.pk).update(deleted_at=timezone.now())
    r = api.patch(f"/rr/folders/{child.pk}/", {"name": "a", "parent": parent.pk}, format="json")
    _rr_missing_body(r, "parent", parent.pk)
    r = api.patch(f"/rr/folders/{child.pk}/", {"name": "b"}, format="json")
    assert r.status_code == 200, r.content
    child.refresh_from_db()
    assert (child.name, child.parent_id) == ("b", parent.pk)


def test_rr_a_cascade_through_a_relation_without_reverse_name_is_judged_too(rr_mounted):
    """A self relation with ``related_name="+"`` is followed by Django's collector, but was
    not among the model's ``related_objects``, so the check was skipped: deleting an
    original removed another member's copy of it (200)."""
    org = OrganizationFactory()
    api, me = _rr_member(org)
    _, them = _rr_member(org)
    original = Draft.objects.create(organization=org, owner=me, name="original")
    Draft.objects.create(organization=org, owner=them, name="copy", origin=original)
    assert_error(api.delete(f"/rr/drafts/{original.pk}/"), 409, "CONFLICT")
    assert Draft.objects.count() == 2
