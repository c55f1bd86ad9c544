"""fix-seen11a: what earlier reviewers saw in generic pairs (``content_type`` +
``object_id``) and rows named across resources — a plain ``Serializer`` action input
carrying a pair, an elevated caller naming a target, a target served by another resource
under other rules, and a delete blocked by another tenant's pair stored outside the API."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from rest_framework import serializers

from django_arc import Resource, ResourceSite, action, presets
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.outbox.models import OutboxEvent
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import RgComment, RgPlace, RgShop

pytestmark = pytest.mark.django_db

fs11a_site = ResourceSite(name="fix-seen11a")

FS11A_MEMBERS = {
    key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
}


class Fs11aCommentSerializer(serializers.ModelSerializer):
    class Meta:
        model = RgComment
        fields = ["id", "organization", "owner", "content_type", "object_id", "text"]
        read_only_fields = ["organization", "owner"]


class Fs11aPlainPairInput(serializers.Serializer):
    """A plain ``Serializer`` (no model) carrying both halves of the row's pair."""

    content_type = serializers.PrimaryKeyRelatedField(queryset=ContentType.objects.all())
    object_id = serializers.IntegerField(min_value=1)


class Fs11aPlainIdInput(serializers.Serializer):
    """A plain ``Serializer`` carrying only the id: the handler keeps the row's type."""

    object_id = serializers.IntegerField(min_value=1)


class Fs11aModelIdInput(serializers.ModelSerializer):
    """A model serializer of the comment carrying only the id."""

    class Meta:
        model = RgComment
        fields = ["object_id"]


class Fs11aRenamedInput(serializers.Serializer):
    """A plain ``Serializer`` whose fields are named otherwise but whose ``source`` is the
    pair's: recognised by what it writes, as a model serializer's fields are."""

    kind = serializers.PrimaryKeyRelatedField(
        queryset=ContentType.objects.all(), source="content_type"
    )
    target = serializers.IntegerField(source="object_id")


@fs11a_site.register
class Fs11aCommentResource(Resource):
    """Every member reads and writes the tenant's comments; actions re-point them."""

    model = RgComment
    name = "comments"
    serializer_class = Fs11aCommentSerializer
    filter_fields = {"text": ["eq"]}
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.Audited(), presets.Bulk()]
    permissions = FS11A_MEMBERS
    action_permissions = P.require_org_membership()

    @action(input=Fs11aPlainPairInput)
    def repoint(self, request, instance, data):
        instance.content_type = data["content_type"]
        instance.object_id = data["object_id"]
        instance.save()
        return instance

    @action(input=Fs11aPlainIdInput)
    def move(self, request, instance, data):
        instance.object_id = data["object_id"]
        instance.save()
        return instance

    @action(input=Fs11aModelIdInput)
    def shift(self, request, instance, data):
        instance.object_id = data["object_id"]
        instance.save()
        return instance

    @action(input=Fs11aRenamedInput)
    def aim(self, request, instance, data):
        instance.content_type = data["content_type"]
        instance.object_id = data["object_id"]
        instance.save()
        return instance


@fs11a_site.register
class Fs11aMyPlaceResource(Resource):
    """Each member reads only the places it owns: another member's place is a GET's 404."""

    model = RgPlace
    name = "my-places"
    fields = ["id", "organization", "owner", "name"]
    presets = [presets.MultiTenant(), presets.OwnedBy()]
    permissions = {**FS11A_MEMBERS, "list": P.require_owner(), "get": P.require_owner()}


@fs11a_site.register
class Fs11aShopResource(Resource):
    """Shops whose ``near`` (a foreign key to places, another model) the body writes."""

    model = RgShop
    name = "shops"
    fields = ["id", "organization", "name", "near"]
    presets = [presets.MultiTenant()]
    permissions = FS11A_MEMBERS


def _fs11a_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False  # a 500 is an answer to assert on
    return api, user


def _fs11a_comment(org, owner, target, text):
    return RgComment.objects.create(
        organization=org,
        owner=owner,
        content_type=ContentType.objects.get_for_model(target),
        object_id=target.pk,
        text=text,
    )


def _fs11a_missing(response, field, pk):
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"] == {field: [f'Invalid pk "{pk}" - object does not exist.']}, body
    return body


def _fs11a_unused_pk(model):
    return (model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000


def test_fs11a_a_plain_action_input_writing_the_rows_pair_is_narrowed_as_a_body(settings):
    """An action whose ``input`` is a plain ``Serializer`` with the row's pair fields
    (``content_type``/``object_id``, or fields whose ``source`` they are) was not
    recognised as a pair: a member of B re-pointed its comment at A's place (200), the
    handler receiving A's id. The same with only ``object_id`` sent (the handler keeps the
    row's content type), through a plain input or a model serializer's: unchecked, since
    the half not sent was read from no row. Now each is 400 naming the field, as a missing
    row, the comment unchanged, no event, no audit row; its own tenant's place is taken."""
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    api_b, user_b = _fs11a_member(org_b)
    place_a = RgPlace.objects.create(organization=org_a, name="pa")
    place_b = RgPlace.objects.create(organization=org_b, name="pb")
    other_b = RgPlace.objects.create(organization=org_b, name="pb2")
    mine = _fs11a_comment(org_b, user_b, place_b, "b's")
    place_type = ContentType.objects.get_for_model(RgPlace).pk
    url = f"/fs11a/comments/{mine.pk}/action/"
    with site_mounted(settings, "fs11a", fs11a_site):
        for target in (place_a.pk, _fs11a_unused_pk(RgPlace)):
            for name, body, field in (
                ("repoint", {"content_type": place_type, "object_id": target}, "object_id"),
                ("move", {"object_id": target}, "object_id"),
                ("shift", {"object_id": target}, "object_id"),
                ("aim", {"kind": place_type, "target": target}, "target"),
            ):
                r = api_b.post(url, {"action": name, **body}, format="json")
                _fs11a_missing(r, field, target)
                mine.refresh_from_db()
                assert mine.object_id == place_b.pk, name
        assert not OutboxEvent.objects.filter(type__startswith="comments.").exists()
        assert not AuditLog.objects.exists()
        for name, body in (
            ("repoint", {"content_type": place_type, "object_id": other_b.pk}),
            ("move", {"object_id": place_b.pk}),
            ("shift", {"object_id": other_b.pk}),
            ("aim", {"kind": place_type, "target": place_b.pk}),
        ):
            r = api_b.post(url, {"action": name, **body}, format="json")
            assert r.status_code == 200, (name, r.content)
    mine.refresh_from_db()
    assert (mine.content_type_id, mine.object_id) == (place_type, place_b.pk)


def _fs11a_elevated(root, org=None):
    headers = {"HTTP_X_ARC_SCOPE": "platform"}
    if org is not None:
        headers["HTTP_X_ORGANIZATION_ID"] = str(org.pk)
    api = client_for(root, **headers)
    api.raise_request_exception = False
    return api


def test_fs11a_an_elevated_caller_without_an_org_names_any_tenants_row(settings):
    """SPEC §5: elevated callers without an org see all tenants; with an org header only
    that org. A pair is narrowed as a foreign key is, by the caller's scope: a platform
    admin without an org header re-points a comment of A at B's place (200, as arc 2.9
    leaves an elevated write across tenants alone); with A's header it is confined to A
    (400 as a missing row), and a member of A is refused B's place as before. A foreign
    key is judged the same way (a shop's ``near``, a place)."""
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    api_a, user_a = _fs11a_member(org_a)
    root = User.objects.create_superuser("fs11a-root", "root@example.com", "x")
    place_a = RgPlace.objects.create(organization=org_a, name="pa")
    place_b = RgPlace.objects.create(organization=org_b, name="pb")
    comment = _fs11a_comment(org_a, user_a, place_a, "a's")
    shop = RgShop.objects.create(organization=org_a, name="shop")
    url = f"/fs11a/comments/{comment.pk}/"
    shop_url = f"/fs11a/shops/{shop.pk}/"
    confined = _fs11a_elevated(root, org_a)
    with site_mounted(settings, "fs11a", fs11a_site):
        for api in (api_a, confined):
            r = api.patch(url, {"object_id": place_b.pk}, format="json")
            _fs11a_missing(r, "object_id", place_b.pk)
            r = api.patch(shop_url, {"near": place_b.pk}, format="json")
            _fs11a_missing(r, "near", place_b.pk)
        comment.refresh_from_db()
        shop.refresh_from_db()
        assert (comment.object_id, shop.near_id) == (place_a.pk, None)
        # an elevated create needs an org (403 ORG_REQUIRED), so only updates cross
        body = {"content_type": comment.content_type_id, "object_id": place_b.pk, "text": "x"}
        r = _fs11a_elevated(root).post("/fs11a/comments/", body, format="json")
        assert_error(r, 403, "ORG_REQUIRED")
        r = _fs11a_elevated(root).patch(url, {"object_id": place_b.pk}, format="json")
        assert r.status_code == 200, r.content
        r = _fs11a_elevated(root).patch(shop_url, {"near": place_b.pk}, format="json")
        assert r.status_code == 200, r.content
        # a row outside every tenant, refused to a member, is named too: nothing narrows
        # this caller, as nothing narrows a resource without tenancy
        user_type = ContentType.objects.get_for_model(User).pk
        body = {"content_type": user_type, "object_id": user_a.pk}
        r = api_a.patch(url, body, format="json")
        _fs11a_missing(r, "object_id", user_a.pk)
        r = _fs11a_elevated(root).patch(url, body, format="json")
        assert r.status_code == 200, r.content
    comment.refresh_from_db()
    shop.refresh_from_db()
    assert (comment.organization_id, comment.content_type_id) == (org_a.pk, user_type)
    assert (comment.object_id, shop.organization_id, shop.near_id) == (
        user_a.pk,
        org_a.pk,
        place_b.pk,
    )


def test_fs11a_a_target_another_resource_hides_from_the_caller_is_narrowed_by_tenant_only(
    settings,
):
    """A place served by ``my-places`` (each member reads only its own: another member's
    place is 404 there) may be named by a comment's pair in the same tenant: 201, where a
    place id that does not exist is 400. This tells a member which place ids exist in its
    own tenant — the same row count and ids the tenant's plain ``places`` listing would
    show, and no row's content. Decided (docs/decisions.md, fix-seen11a): a target's model
    is narrowed by the writing resource's presets (its tenant), not by the rules of
    whichever resource serves that model, as arc 2.9 judges no reference at all; another
    tenant's place stays refused."""
    org, other = OrganizationFactory(), OrganizationFactory()
    api, me = _fs11a_member(org)
    _, them = _fs11a_member(org)
    theirs = RgPlace.objects.create(organization=org, owner=them, name="theirs")
    foreign = RgPlace.objects.create(organization=other, name="foreign")
    place_type = ContentType.objects.get_for_model(RgPlace).pk
    missing = _fs11a_unused_pk(RgPlace)
    with site_mounted(settings, "fs11a", fs11a_site):
        assert api.get(f"/fs11a/my-places/{theirs.pk}/").status_code == 404
        body = {"content_type": place_type, "object_id": theirs.pk, "text": "on theirs"}
        assert api.post("/fs11a/comments/", body, format="json").status_code == 201
        # a foreign key to the same model is narrowed the same way: the tenant's rows
        r = api.post("/fs11a/shops/", {"name": "near theirs", "near": theirs.pk}, format="json")
        assert r.status_code == 201, r.content
        for target in (missing, foreign.pk):
            body = {"content_type": place_type, "object_id": target, "text": "x"}
            r = api.post("/fs11a/comments/", body, format="json")
            _fs11a_missing(r, "object_id", target)
            r = api.post("/fs11a/shops/", {"name": "x", "near": target}, format="json")
            _fs11a_missing(r, "near", target)
    assert not RgComment.objects.filter(text="x").exists()
    assert not RgPlace.objects.filter(name="x").exists()


def test_fs11a_a_delete_blocked_by_another_tenants_stored_pair_names_nothing_of_it(settings):
    """A reply of tenant B written outside the API points at A's comment (the API refuses
    it, fix-generic). A's delete of its comment is refused (409, rev-generic) so that B's
    row is not deleted with it; the answer names nothing of B: no id, text, organization,
    model or field, only the code and the protected row's message, the same body as a
    reply of another member of A blocking it."""
    org, other = OrganizationFactory(), OrganizationFactory()
    api, me = _fs11a_member(org)
    _, outsider = _fs11a_member(other)
    _, colleague = _fs11a_member(org)
    place = RgPlace.objects.create(organization=org, name="p")
    mine = _fs11a_comment(org, me, place, "mine")
    second = _fs11a_comment(org, me, place, "second")
    foreign = _fs11a_comment(other, outsider, mine, "b-secret-reply")
    _fs11a_comment(org, colleague, second, "colleague's reply")
    with site_mounted(settings, "fs11a", fs11a_site):
        r = api.delete(f"/fs11a/comments/{mine.pk}/")
        text = r.content.decode()
        body = assert_error(r, 409, "CONFLICT")
        bulk = api.delete("/fs11a/comments/bulk/", {"ids": [mine.pk]}, format="json")
        # the colleague's reply of the same tenant answers the very same body
        same = api.delete(f"/fs11a/comments/{second.pk}/")
    request_ids = set()
    for each in (body, assert_error(bulk, 409, "CONFLICT"), assert_error(same, 409, "CONFLICT")):
        request_ids.add(each.pop("requestId", None))
        assert each == {
            "success": False,
            "code": "CONFLICT",
            "error": "Cannot delete: other records still refer to this one",
        }, each
    assert None not in request_ids
    for leaked in ("b-secret-reply", "rgcomment", "comment", "object_id", "content_type"):
        assert leaked not in text.lower(), (leaked, text)
    assert RgComment.objects.filter(pk=foreign.pk).exists()
    assert RgComment.objects.filter(pk=mine.pk).exists()
