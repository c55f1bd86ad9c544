"""rev-generic: generic relations (``django.contrib.contenttypes``) and model inheritance
under tenancy — a thread of comments (a ``GenericRelation`` of a model to itself), a
multi-table child whose tenant field lives on its parent's table."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.outbox.models import OutboxEvent
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import RgComment, RgPlace, RgShop

pytestmark = pytest.mark.django_db

RG_MEMBERS = {
    key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
}

rg_site = ResourceSite(name="rev-generic")


class RgCommentSerializer(serializers.ModelSerializer):
    class Meta:
        model = RgComment
        fields = ["id", "organization", "owner", "content_type", "object_id", "text"]
        read_only_fields = ["organization", "owner"]


@rg_site.register
class RgCommentResource(Resource):
    """Every member reads the tenant's comments; only a comment's owner deletes it."""

    model = RgComment
    name = "comments"
    serializer_class = RgCommentSerializer
    filter_fields = {"text": ["eq"], "content_type": ["eq"], "object_id": ["eq"]}
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.Bulk()]
    permissions = RG_MEMBERS


@rg_site.register
class RgShopResource(Resource):
    """A multi-table child whose tenant field (``organization``) is its parent's column."""

    model = RgShop
    name = "shops"
    fields = ["id", "organization", "name", "kind"]
    filter_fields = {"name": ["eq", "in"], "kind": ["eq"]}
    sort_fields = ["name", "kind", "id"]
    presets = [presets.MultiTenant(), presets.Bulk()]
    permissions = RG_MEMBERS


@rg_site.register
class RgPlaceResource(Resource):
    """The parent: lists the children's rows as places."""

    model = RgPlace
    name = "places"
    fields = ["id", "organization", "name"]
    filter_fields = {"name": ["eq"]}
    presets = [presets.MultiTenant(), presets.Bulk()]
    permissions = RG_MEMBERS


def _rg_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False  # a 500 is an answer to assert on
    return api, user


def _rg_comment(org, owner, target, text):
    return RgComment.objects.create(
        organization=org,
        owner=owner,
        content_type=ContentType.objects.get_for_model(target),
        object_id=target.pk,
        text=text,
    )


def test_rg_a_delete_cascading_through_a_generic_relation_into_others_rows_is_refused(settings):
    """Another member replied to my comment (a comment whose target is mine): deleting mine
    deletes the reply too — Django's collector follows a ``GenericRelation`` as a cascade —
    though a delete of the reply itself is refused (403). The cascade check walked only
    the reverse sides of foreign keys, so the delete went unjudged (200, their reply gone).
    Now 409 as a protected row, single and bulk, nothing deleted."""
    org = OrganizationFactory()
    api, me = _rg_member(org)
    _, them = _rg_member(org)
    place = RgPlace.objects.create(organization=org, name="p")
    mine = _rg_comment(org, me, place, "mine")
    theirs = _rg_comment(org, them, mine, "theirs")
    with site_mounted(settings, "rg", rg_site):
        assert_error(api.delete(f"/rg/comments/{theirs.pk}/"), 403, "OWNERSHIP_DENIED")
        for r in (
            api.delete(f"/rg/comments/{mine.pk}/"),
            api.delete("/rg/comments/bulk/", {"ids": [mine.pk]}, format="json"),
        ):
            body = assert_error(r, 409, "CONFLICT")
            assert body["error"] == "Cannot delete: other records still refer to this one"
        assert RgComment.objects.count() == 2
        # a reply of my own goes with my comment, as the schema says
        RgComment.objects.filter(pk=theirs.pk).update(owner=me)
        assert api.delete(f"/rg/comments/{mine.pk}/").status_code == 200
    assert not RgComment.objects.exists()


def test_rg_a_multi_table_child_is_narrowed_by_its_parents_tenant_column(settings):
    """A resource over a child whose tenant field is its parent's column: another tenant's
    children are not listed, read, filtered into, written or deleted; a create stores the
    caller's tenant on the parent's row; filters and sorting by the parent's columns work;
    a bulk delete leaves no parent row behind and a bulk update writes the parent's
    column; the list reads the parent's columns in its one query (no query per row)."""
    org, other = OrganizationFactory(), OrganizationFactory()
    api, _ = _rg_member(org)
    foreign = RgShop.objects.create(organization=other, name="theirs", kind="k")
    with site_mounted(settings, "rg", rg_site):
        r = api.post("/rg/shops/", {"name": "b", "kind": "x", "organization": other.pk})
        assert assert_error(r, 403, "FIELD_WRITE_DENIED")["details"] == {"fields": ["organization"]}
        for name in ("c", "a"):
            assert api.post("/rg/shops/", {"name": name, "kind": "x"}).status_code == 201
        assert (
            RgPlace.objects.filter(organization=org).count()
            == RgShop.objects.filter(organization=org).count()
        )
        with CaptureQueriesContext(connection) as listed:
            r = api.get("/rg/shops/", {"sort": "-name"})
        assert r.status_code == 200, r.content
        names = [row["name"] for row in r.json()["docs"]]
        assert names == sorted(names, reverse=True) and "theirs" not in names
        shop_selects = [q for q in listed.captured_queries if "testapp_rgshop" in q["sql"]]
        assert len(shop_selects) <= 2, [q["sql"] for q in shop_selects]  # list (+ count)
        assert api.get("/rg/shops/", {"name": "theirs"}).json()["docs"] == []
        assert api.get("/rg/places/", {"name": "theirs"}).json()["docs"] == []
        assert_error(api.get(f"/rg/shops/{foreign.pk}/"), 404, "NOT_FOUND")
        assert_error(api.get(f"/rg/places/{foreign.pk}/"), 404, "NOT_FOUND")
        assert api.patch(f"/rg/shops/{foreign.pk}/", {"name": "x"}).status_code == 404
        assert api.delete(f"/rg/shops/{foreign.pk}/").status_code == 404
        mine = list(RgShop.objects.filter(organization=org).values_list("pk", flat=True))
        r = api.patch(
            "/rg/shops/bulk/",
            {"items": [{"id": pk, "name": f"n{pk}"} for pk in mine]},
            format="json",
        )
        assert r.status_code == 200, r.content
        assert sorted(RgPlace.objects.filter(pk__in=mine).values_list("name", flat=True)) == sorted(
            f"n{pk}" for pk in mine
        )
        r = api.delete("/rg/shops/bulk/", {"ids": [*mine, foreign.pk]}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
            "ids": {str(len(mine)): {"id": ["Not found."]}}
        }
        r = api.delete("/rg/shops/bulk/", {"ids": mine}, format="json")
        assert r.status_code == 200, r.content
    assert list(RgPlace.objects.values_list("name", flat=True)) == ["theirs"]
    assert RgShop.objects.get().name == "theirs"
    assert OutboxEvent.objects.filter(type="shops.deleted").count() == len(mine)


def test_rg_a_reply_from_another_tenant_is_never_deleted_with_the_comment(settings):
    """A member of another tenant replying to this tenant's comment by its id is refused
    now (400 naming ``object_id``, fix-generic: ``tests/test_fix_generic.py``); such a
    reply written outside the API (a project's code, a row stored before the fix) still
    exists. Deleting the comment then deleted the other tenant's reply with it (200, a
    row of a tenant the caller has no access to gone); the cascade check refuses it (409)
    and the other tenant's row stays."""
    org, other = OrganizationFactory(), OrganizationFactory()
    api, me = _rg_member(org)
    outsider_api, outsider = _rg_member(other)
    place = RgPlace.objects.create(organization=org, name="p")
    mine = _rg_comment(org, me, place, "mine")
    kind = ContentType.objects.get_for_model(RgComment).pk
    with site_mounted(settings, "rg", rg_site):
        r = outsider_api.post(
            "/rg/comments/", {"content_type": kind, "object_id": mine.pk, "text": "x"}
        )
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
            "object_id": [f'Invalid pk "{mine.pk}" - object does not exist.']
        }
        _rg_comment(other, outsider, mine, "x")  # written outside the API
        assert_error(api.delete(f"/rg/comments/{mine.pk}/"), 409, "CONFLICT")
        assert_error(
            api.delete("/rg/comments/bulk/", {"ids": [mine.pk]}, format="json"), 409, "CONFLICT"
        )
    assert RgComment.objects.filter(organization=other).count() == 1
    assert RgComment.objects.filter(pk=mine.pk).exists()


def test_rg_content_type_and_object_id_filters_refuse_bad_values_naming_them(settings):
    """The generic pair's columns filter as the columns they are: a value neither can hold
    is a 400 naming the parameter, never a 500; a content type that exists is matched."""
    org = OrganizationFactory()
    api, me = _rg_member(org)
    place = RgPlace.objects.create(organization=org, name="p")
    _rg_comment(org, me, place, "on a place")
    kind = ContentType.objects.get_for_model(RgPlace).pk
    with site_mounted(settings, "rg", rg_site):
        for param, value in (("content_type", "abc"), ("object_id", "abc"), ("object_id", "-1")):
            r = api.get("/rg/comments/", {param: value})
            assert list(assert_error(r, 400, "INVALID_QUERY")["details"]) == [param]
        r = api.get("/rg/comments/", {"content_type": kind})
        assert [row["text"] for row in r.json()["docs"]] == ["on a place"]
        assert api.get("/rg/comments/", {"content_type": 99999}).json()["docs"] == []


def test_rg_bulk_writes_of_multi_table_children_write_both_tables_within_the_tenant(settings):
    """A bulk create of children stores the caller's tenant on each parent row; a bulk
    update by filter writes a parent column and a child column at once, on this tenant's
    children only; another tenant's child with the same name is untouched."""
    org, other = OrganizationFactory(), OrganizationFactory()
    api, _ = _rg_member(org)
    RgShop.objects.create(organization=other, name="same", kind="k")
    with site_mounted(settings, "rg", rg_site):
        r = api.post(
            "/rg/shops/bulk/",
            {"items": [{"name": "same", "kind": "a"}, {"name": "two", "kind": "b"}]},
            format="json",
        )
        assert r.status_code == 201, r.content
        assert RgPlace.objects.filter(organization=org).count() == 2
        r = api.patch(
            "/rg/shops/bulk/",
            {"filter": {"name": "same"}, "data": {"name": "renamed", "kind": "z"}},
            format="json",
        )
        assert r.status_code == 200, r.content
    assert sorted(RgShop.objects.values_list("organization", "name", "kind")) == sorted(
        [(other.pk, "same", "k"), (org.pk, "renamed", "z"), (org.pk, "two", "b")]
    )
    assert OutboxEvent.objects.filter(type="shops.updated").count() == 1


@rg_site.register
class RgMyShopResource(Resource):
    """Every member reads the tenant's shops; only a shop's owner deletes it (the owner
    field, like the tenant's, is the parent's column)."""

    model = RgShop
    name = "my-shops"
    fields = ["id", "organization", "owner", "name", "kind", "near"]
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.Bulk()]
    permissions = RG_MEMBERS


def test_rg_a_childs_delete_cascading_through_its_parents_relation_is_judged(settings):
    """Another member's shop is near my shop (``near``, a parent's foreign key to the
    parent): deleting my shop deletes its place row, which cascades into the places near it
    and from each into its shop row. The check's walk counted a cascade into the parent's
    rows as another model's, so the delete went unjudged (200, their shop gone) though a
    delete of their shop is refused (403). Now 409, single and bulk, nothing deleted."""
    org = OrganizationFactory()
    api, me = _rg_member(org)
    _, them = _rg_member(org)
    mine = RgShop.objects.create(organization=org, owner=me, name="mine")
    theirs = RgShop.objects.create(organization=org, owner=them, name="theirs", near=mine)
    with site_mounted(settings, "rg", rg_site):
        assert_error(api.delete(f"/rg/my-shops/{theirs.pk}/"), 403, "OWNERSHIP_DENIED")
        for r in (
            api.delete(f"/rg/my-shops/{mine.pk}/"),
            api.delete("/rg/my-shops/bulk/", {"ids": [mine.pk]}, format="json"),
        ):
            body = assert_error(r, 409, "CONFLICT")
            assert body["error"] == "Cannot delete: other records still refer to this one"
        assert RgShop.objects.count() == 2 and RgPlace.objects.count() == 2
        RgPlace.objects.filter(pk=theirs.pk).update(near=None)
        assert api.delete(f"/rg/my-shops/{mine.pk}/").status_code == 200
    assert list(RgShop.objects.values_list("name", flat=True)) == ["theirs"]
    assert list(RgPlace.objects.values_list("name", flat=True)) == ["theirs"]


def test_rg_keyset_pages_sorted_by_a_parents_column_walk_the_tenants_children_once(settings):
    """A cursor over a child sorted by its parent's column (ties broken by the primary key,
    the parent link) lists each of this tenant's children once, in order, both ways."""
    org, other = OrganizationFactory(), OrganizationFactory()
    api, _ = _rg_member(org)
    for i, name in enumerate(["b", "a", "b", "c", "a"]):
        RgShop.objects.create(organization=org, name=name, kind=str(i % 2))
    RgShop.objects.create(organization=other, name="a", kind="0")
    mine = {shop.pk: (shop.kind, shop.name) for shop in RgShop.objects.filter(organization=org)}
    with site_mounted(settings, "rg", rg_site):
        for sort in ("name", "-name", "kind,-name"):
            seen, after = [], ""
            while True:
                r = api.get("/rg/shops/", {"sort": sort, "limit": 2, "after": after})
                assert r.status_code == 200, r.content
                seen += [row["id"] for row in r.json()["docs"]]
                if not r.json()["hasNext"]:
                    break
                after = r.json()["next"]
            assert sorted(seen) == sorted(mine), sort
            keys = [mine[pk][1] for pk in seen] if sort != "kind,-name" else None
            if sort == "name":
                assert keys == sorted(keys)
            elif sort == "-name":
                assert keys == sorted(keys, reverse=True)
            else:
                pairs = [(mine[pk][0], mine[pk][1]) for pk in seen]
                assert pairs == sorted(pairs, key=lambda p: (p[0], [-ord(c) for c in p[1]]))
