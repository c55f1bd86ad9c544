"""fix-generic: a generic pair (``content_type`` + ``object_id``) a write sets names only a
row the caller may name, as a foreign key does: another tenant's row, another owner's row
a GET refuses, a row of a model no preset narrows (under a tenant-scoped resource) answer
exactly as a missing row (400 naming ``object_id``)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers

from django_arc import Resource, ResourceSite, action, presets
from django_arc import permissions as P
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import RgComment, RgPlace

pytestmark = pytest.mark.django_db

fg_site = ResourceSite(name="fix-generic")


class FgCommentSerializer(serializers.ModelSerializer):
    class Meta:
        model = RgComment
        fields = ["id", "organization", "owner", "content_type", "object_id", "text"]
        read_only_fields = ["organization", "owner"]


@fg_site.register
class FgCommentResource(Resource):
    """Every member reads the tenant's comments (a GenericRelation ``replies`` to itself)."""

    model = RgComment
    name = "comments"
    serializer_class = FgCommentSerializer
    filter_fields = {"text": ["eq"], "replies__text": ["eq"]}
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.Bulk()]
    permissions = {
        key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
    }


@fg_site.register
class FgOwnCommentResource(FgCommentResource):
    """Each member reads only its own comments (``require_owner``)."""

    name = "own-comments"
    permissions = {
        "list": P.require_owner(),
        "get": P.require_owner(),
        "create": P.require_org_membership(),
        "update": P.require_owner(),
        "delete": P.require_owner(),
    }


class FgRepointInput(serializers.ModelSerializer):
    """An action's ``input`` writing the pair (a model serializer of the comment)."""

    class Meta:
        model = RgComment
        fields = ["content_type", "object_id"]


@fg_site.register
class FgRepointCommentResource(FgCommentResource):
    """Comments re-pointed by an action whose input carries the pair."""

    name = "repoint-comments"
    action_permissions = P.require_org_membership()

    @action(input=FgRepointInput)
    def repoint(self, request, instance, data):
        instance.content_type = data["content_type"]
        instance.object_id = data["object_id"]
        instance.save()
        return instance


def _fg_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False  # a 500 is an answer to assert on
    return api, user


def _fg_comment(org, owner, target, text):
    return RgComment.objects.create(
        organization=org,
        owner=owner,
        content_type=ContentType.objects.get_for_model(target),
        object_id=target.pk,
        text=text,
    )


def _fg_missing(response, pk):
    """The answer to a pair naming no row: 400 naming ``object_id`` only."""
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"] == {"object_id": [f'Invalid pk "{pk}" - object does not exist.']}, body
    return body


def _fg_unused_pk(model):
    return (model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000


def test_fg_a_pair_naming_another_tenants_row_answers_as_a_missing_one(settings):
    """A member of B replied to A's comment by its id (201): A's filter
    ``replies__text=secret`` then matched its comment, B planted content in A's results,
    and a missing id answered the same 201 (or told apart from a foreign one). Now single
    create, update, bulk create and bulk update by filter answer 400 naming ``object_id``,
    as for an id that does not exist; nothing is written."""
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    api_a, user_a = _fg_member(org_a)
    api_b, user_b = _fg_member(org_b)
    place_a = RgPlace.objects.create(organization=org_a, name="pa")
    place_b = RgPlace.objects.create(organization=org_b, name="pb")
    theirs = _fg_comment(org_a, user_a, place_a, "a's")
    mine = _fg_comment(org_b, user_b, place_b, "b's")
    comment_type = ContentType.objects.get_for_model(RgComment).pk
    missing = _fg_unused_pk(RgComment)
    with site_mounted(settings, "fg", fg_site):
        for target in (theirs.pk, missing):
            body = {"content_type": comment_type, "object_id": target, "text": "secret"}
            _fg_missing(api_b.post("/fg/comments/", body, format="json"), target)
            r = api_b.post("/fg/comments/bulk/", {"items": [body]}, format="json")
            body = assert_error(r, 400, "VALIDATION_ERROR")
            assert body["details"] == {
                "items": {"0": {"object_id": [f'Invalid pk "{target}" - object does not exist.']}}
            }, body
            # an update re-pointing its own comment: the content type is the row's
            r = api_b.patch(f"/fg/comments/{mine.pk}/", {"object_id": target}, format="json")
            _fg_missing(r, target)
            r = api_b.patch(
                "/fg/comments/bulk/",
                {
                    "filter": {"text": "b's"},
                    "data": {"content_type": comment_type, "object_id": target},
                },
                format="json",
            )
            assert r.status_code == 400, r.content
            assert "object_id" in str(r.json()["details"]), r.json()
        r = api_a.get("/fg/comments/", {"replies__text": "secret"})
        assert r.status_code == 200 and r.json()["docs"] == []
        # its own tenant's comment is named as before
        body = {"content_type": comment_type, "object_id": mine.pk, "text": "reply"}
        assert api_b.post("/fg/comments/", body, format="json").status_code == 201
    mine.refresh_from_db()
    assert (mine.content_type.model_class(), mine.object_id) == (RgPlace, place_b.pk)
    assert not RgComment.objects.filter(text="secret").exists()
    assert RgComment.objects.filter(organization=org_a).count() == 1


def test_fg_a_pair_naming_another_models_row_is_narrowed_by_its_tenant_field(settings):
    """The target's model carries the tenant field (a place): only the caller's tenant's
    places may be named, one query per pair named; a model that carries none (a user)
    is not one a tenant's row may point at: refused as missing, the answer naming no
    model."""
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    api_b, user_b = _fg_member(org_b)
    place_a = RgPlace.objects.create(organization=org_a, name="pa")
    place_b = RgPlace.objects.create(organization=org_b, name="pb")
    place_type = ContentType.objects.get_for_model(RgPlace).pk
    user_type = ContentType.objects.get_for_model(User).pk
    with site_mounted(settings, "fg", fg_site):
        for target in (place_a.pk, _fg_unused_pk(RgPlace)):
            body = {"content_type": place_type, "object_id": target, "text": "x"}
            _fg_missing(api_b.post("/fg/comments/", body, format="json"), target)
        for target in (user_b.pk, _fg_unused_pk(User)):
            body = {"content_type": user_type, "object_id": target, "text": "x"}
            r = api_b.post("/fg/comments/", body, format="json")
            _fg_missing(r, target)
            assert "user" not in r.content.decode().lower()
        items = [
            {"content_type": place_type, "object_id": place_b.pk, "text": str(i)} for i in "abc"
        ]
        with CaptureQueriesContext(connection) as queries:
            r = api_b.post("/fg/comments/bulk/", {"items": items}, format="json")
        assert r.status_code == 201, r.content
        place_reads = [q for q in queries.captured_queries if "testapp_rgplace" in q["sql"]]
        assert len(place_reads) == 3, place_reads
        # a content type left by a removed model answers as a missing row; one that does
        # not exist is DRF's 400 naming content_type; neither names a model
        gone = ContentType.objects.create(app_label="fg_gone", model="vanished").pk
        body = {"content_type": gone, "object_id": place_b.pk, "text": "x"}
        _fg_missing(api_b.post("/fg/comments/", body, format="json"), place_b.pk)
        body = {"content_type": gone + 1000, "object_id": place_b.pk, "text": "x"}
        r = api_b.post("/fg/comments/", body, format="json")
        assert list(assert_error(r, 400, "VALIDATION_ERROR")["details"]) == ["content_type"]
        # a form body is read the same way
        body = {"content_type": place_type, "object_id": place_a.pk, "text": "x"}
        _fg_missing(api_b.post("/fg/comments/", body), place_a.pk)
    assert RgComment.objects.filter(organization=org_b, object_id=place_b.pk).count() == 3
    assert not RgComment.objects.filter(text="x").exists()


def test_fg_a_pair_naming_another_owners_row_a_get_refuses_answers_as_missing(settings):
    """Under ``require_owner`` reads, another member's comment in the same tenant is a
    row the caller's GET does not read (404): replying to it answered 201; now 400 as a
    missing one. Its own comment may be replied to."""
    org = OrganizationFactory()
    api, me = _fg_member(org)
    _, them = _fg_member(org)
    place = RgPlace.objects.create(organization=org, name="p")
    theirs = _fg_comment(org, them, place, "theirs")
    mine = _fg_comment(org, me, place, "mine")
    comment_type = ContentType.objects.get_for_model(RgComment).pk
    with site_mounted(settings, "fg", fg_site):
        assert api.get(f"/fg/own-comments/{theirs.pk}/").status_code == 404
        body = {"content_type": comment_type, "object_id": theirs.pk, "text": "planted"}
        _fg_missing(api.post("/fg/own-comments/", body, format="json"), theirs.pk)
        r = api.post("/fg/own-comments/bulk/", {"items": [body]}, format="json")
        assert r.status_code == 400 and "object_id" in str(r.json()["details"]), r.content
        body = {"content_type": comment_type, "object_id": mine.pk, "text": "mine too"}
        assert api.post("/fg/own-comments/", body, format="json").status_code == 201
    assert not RgComment.objects.filter(text="planted").exists()


def test_fg_an_action_input_writing_the_pair_is_narrowed_as_a_body(settings):
    """An action whose ``input`` is a model serializer of the pair re-pointed the comment
    at another tenant's row (200); now 400 naming ``object_id``, as a missing row, and
    the comment is unchanged. Its own tenant's row is accepted."""
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    api_b, user_b = _fg_member(org_b)
    place_a = RgPlace.objects.create(organization=org_a, name="pa")
    place_b = RgPlace.objects.create(organization=org_b, name="pb")
    other_b = RgPlace.objects.create(organization=org_b, name="pb2")
    mine = _fg_comment(org_b, user_b, place_b, "b's")
    place_type = ContentType.objects.get_for_model(RgPlace).pk
    url = f"/fg/repoint-comments/{mine.pk}/action/"
    with site_mounted(settings, "fg", fg_site):
        for target in (place_a.pk, _fg_unused_pk(RgPlace)):
            body = {"action": "repoint", "content_type": place_type, "object_id": target}
            _fg_missing(api_b.post(url, body, format="json"), target)
        mine.refresh_from_db()
        assert mine.object_id == place_b.pk
        body = {"action": "repoint", "content_type": place_type, "object_id": other_b.pk}
        r = api_b.post(url, body, format="json")
        assert r.status_code == 200, r.content
    mine.refresh_from_db()
    assert mine.object_id == other_b.pk
