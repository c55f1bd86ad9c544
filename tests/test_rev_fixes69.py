"""rev-fixes69: a review of fix-seen12a (writes judged by the request's serializer's
fields) and fix-seen12c (generic pairs judged at once)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers
from rest_framework.response import Response

from django_arc import Resource, ResourceSite, action, presets, route
from django_arc import fields as FR
from django_arc import permissions as P
from django_arc.sites import _all_sites
from shop.models import Product
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory, member_client
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Rf69Shelf, RgComment, RgPlace

MEMBERS = P.require_org_membership()


@pytest.fixture
def rf69_site():
    site = ResourceSite(name="rev-fixes69")
    yield site
    _all_sites.remove(site)


def _writing(request) -> bool:
    return request is not None and request.method not in ("GET", "HEAD", "OPTIONS")


class _Rf69InitSerializer(serializers.ModelSerializer):
    """Adds a field writing ``cost`` for writes in ``__init__``, as DRF's "dynamically
    modifying fields" example changes ``self.fields`` there."""

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "organization", "cost"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if _writing(self.context.get("request")):
            self.fields["cost_eur"] = serializers.DecimalField(
                source="cost", max_digits=10, decimal_places=2, required=False, write_only=True
            )


class _Rf69MetaSerializer(serializers.Serializer):
    """A nested ``source="*"`` serializer adding ``cost`` for writes in its
    ``get_fields()``: the outer serializer overrides nothing."""

    name = serializers.CharField(required=False)

    def get_fields(self):
        fields = super().get_fields()
        if _writing(self.context.get("request")):
            fields["cost"] = serializers.DecimalField(
                max_digits=10, decimal_places=2, required=False
            )
        return fields


class _Rf69NestedSerializer(serializers.ModelSerializer):
    meta = _Rf69MetaSerializer(source="*", required=False, write_only=True)

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "organization", "cost", "meta"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "serializer_class, body, denied",
    [
        (_Rf69InitSerializer, {"cost_eur": "1.00"}, "cost_eur"),
        (_Rf69NestedSerializer, {"meta": {"cost": "1.00"}}, "meta.cost"),
    ],
    ids=["init", "nested-get-fields"],
)
def test_rf69_a_column_written_through_a_field_added_in_init_or_nested_is_judged(
    settings, rf69_site, serializer_class, body, denied
):
    """fix-seen12a judged a write by the request's serializer's fields only for a serializer
    overriding ``get_fields()`` (or a hook it calls): one adding ``cost_eur =
    DecimalField(source="cost")`` in ``__init__`` (DRF's documented place for it), or whose
    nested ``source="*"`` serializer adds ``cost`` in its own ``get_fields()``, was judged
    by the fields built without a request, so an editor wrote ``cost``, ruled
    ``visible_to("admin")`` (200, the row's cost changed). Now 403 naming the key, the row
    as it was; an admin writes it."""
    resource = type(
        "Rf69Products",
        (Resource,),
        {
            "model": Product,
            "name": "rf69-products",
            "serializer_class": serializer_class,
            "presets": [presets.MultiTenant()],
            "permissions": {k: MEMBERS for k in ("list", "get", "create", "update")},
            "field_permissions": {"cost": FR.visible_to("admin")},
        },
    )
    rf69_site.register(resource)
    org = OrganizationFactory()
    row = ProductFactory(organization=org, cost=Decimal("7.00"))
    url = f"/rf69/rf69-products/{row.pk}/"
    with site_mounted(settings, "rf69", rf69_site):
        r = member_client(org, "editor").patch(url, body, format="json")
        assert r.status_code == 403, r.content
        assert r.json()["details"] == {"fields": [denied]}
        row.refresh_from_db()
        assert row.cost == Decimal("7.00")
        r = member_client(org, "admin").patch(url, body, format="json")
    assert r.status_code == 200, r.content
    row.refresh_from_db()
    assert row.cost == Decimal("1.00")


# -- fix-seen12c: a list of generic pairs judged at once ----------------------------------


class _Rf69Entry(serializers.Serializer):
    content_type = serializers.PrimaryKeyRelatedField(queryset=ContentType.objects.all())
    object_id = serializers.IntegerField(min_value=1)


class _Rf69ListInput(serializers.Serializer):
    items = _Rf69Entry(many=True)


class _Rf69CommentSerializer(serializers.ModelSerializer):
    class Meta:
        model = RgComment
        fields = ["id", "organization", "owner", "content_type", "object_id", "text"]
        read_only_fields = ["organization", "owner"]


class _Rf69Comments(Resource):
    model = RgComment
    name = "rf69-comments"
    serializer_class = _Rf69CommentSerializer
    presets = [presets.MultiTenant()]
    permissions = {key: MEMBERS for key in ("list", "get", "create", "update", "delete")}
    action_permissions = MEMBERS

    @action(input=_Rf69ListInput)
    def many(self, request, instance, data):
        return {"count": len(data["items"])}


def _rf69_queries(context, table):
    return [q["sql"] for q in context.captured_queries if f'"{table}"' in q["sql"]]


@pytest.mark.django_db
def test_rf69_a_list_of_pairs_naming_its_content_type_as_text_is_judged_without_a_query_each(
    settings, rf69_site
):
    """fix-seen12c judges a list's pairs at once from the raw entries, looking each
    entry's content type up by the value sent: ``"15"`` (text, as a form or many clients
    send an id) missed the content types' cache, which is keyed by the integer, and ran a
    ``django_content_type`` query per entry on top of the one DRF's field runs for it.
    Now the value is read as the content type's key first: one query per entry (DRF's),
    the places asked for once, and another tenant's place still refused under its index."""
    rf69_site.register(_Rf69Comments)
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    user_b = MembershipFactory(organization=org_b, role="member").user
    api_b = client_for(user_b, HTTP_X_ORGANIZATION_ID=str(org_b.pk))
    place_type = ContentType.objects.get_for_model(RgPlace)
    ContentType.objects.get_for_id(place_type.pk)  # cached by id, as in a running process
    places = [RgPlace.objects.create(organization=org_b, name=f"p{i}") for i in range(6)]
    theirs = RgPlace.objects.create(organization=org_a, name="theirs")
    mine = RgComment.objects.create(
        organization=org_b, owner=user_b, content_type=place_type, object_id=places[0].pk
    )
    url = f"/rf69/rf69-comments/{mine.pk}/action/"
    items = [{"content_type": str(place_type.pk), "object_id": p.pk} for p in places]
    with site_mounted(settings, "rf69", rf69_site):
        with CaptureQueriesContext(connection) as judged:
            r = api_b.post(url, {"action": "many", "items": items}, format="json")
        assert r.status_code == 200, r.content
        assert len(_rf69_queries(judged, "django_content_type")) == len(items)
        assert len(_rf69_queries(judged, "testapp_rgplace")) == 1
        items[3] = {"content_type": str(place_type.pk), "object_id": theirs.pk}
        r = api_b.post(url, {"action": "many", "items": items}, format="json")
    assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
        "items": {"3": {"object_id": [f'Invalid pk "{theirs.pk}" - object does not exist.']}}
    }


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["\x00b", "\ud800"], ids=["nul", "lone-surrogate"])
def test_rf69_a_list_entry_naming_a_text_key_the_database_cannot_compare_is_a_400(
    settings, rf69_site, key
):
    """fix-seen12c judges a list's pairs from the raw entries, before each entry's fields
    validate them: an ``object_id`` holding NUL (PostgreSQL cannot compare it with text) or
    a lone surrogate (no database driver encodes it), naming a tenant's row keyed by text,
    went into the judging query: 500 (``DataError``, ``UnicodeEncodeError``). Before, the
    entry's own field refused it first, and so it does again: 400 naming the entry."""
    rf69_site.register(_Rf69Comments)
    org = OrganizationFactory()
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False
    shelf = Rf69Shelf.objects.create(code="a", organization=org)
    shelf_type = ContentType.objects.get_for_model(Rf69Shelf)
    place = RgPlace.objects.create(organization=org, name="p")
    mine = RgComment.objects.create(
        organization=org,
        owner=user,
        content_type=ContentType.objects.get_for_model(RgPlace),
        object_id=place.pk,
    )
    place_type = ContentType.objects.get_for_model(RgPlace)
    items = [
        {"content_type": place_type.pk, "object_id": place.pk},
        {"content_type": shelf_type.pk, "object_id": shelf.pk + key},
    ]
    # JSON's own escape (\u0000, \ud800): the body as a client sends it
    body = json.dumps({"action": "many", "items": items})
    with site_mounted(settings, "rf69", rf69_site):
        r = api.post(
            f"/rf69/rf69-comments/{mine.pk}/action/", body, content_type="application/json"
        )
    assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
        "items": {"1": {"object_id": ["A valid integer is required."]}}
    }


class _Rf69ShortListInput(serializers.Serializer):
    items = _Rf69Entry(many=True, max_length=3)


class _Rf69ShortComments(_Rf69Comments):
    name = "rf69-short-comments"

    @action(input=_Rf69ShortListInput)
    def few(self, request, instance, data):
        return {"count": len(data["items"])}


@pytest.mark.django_db
def test_rf69_a_list_longer_than_its_max_length_is_refused_without_judging_its_pairs(
    settings, rf69_site
):
    """A ``many=True`` list declared ``max_length=3`` is refused by DRF before any entry is
    read; fix-seen12c's judging at once ran first, asking the database about every entry's
    row (one query per 500 ids and content type) for a list that was refused whatever they
    named. Now a list over its ``max_length`` is left to DRF's refusal: no query of the
    places, the same 400."""
    rf69_site.register(_Rf69ShortComments)
    org = OrganizationFactory()
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    place_type = ContentType.objects.get_for_model(RgPlace)
    ContentType.objects.get_for_id(place_type.pk)
    places = [RgPlace.objects.create(organization=org, name=f"p{i}") for i in range(10)]
    mine = RgComment.objects.create(
        organization=org, owner=user, content_type=place_type, object_id=places[0].pk
    )
    url = f"/rf69/rf69-short-comments/{mine.pk}/action/"
    items = [{"content_type": place_type.pk, "object_id": p.pk} for p in places]
    with site_mounted(settings, "rf69", rf69_site):
        with CaptureQueriesContext(connection) as refused:
            r = api.post(url, {"action": "few", "items": items}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
            "items": {"non_field_errors": ["Ensure this field has no more than 3 elements."]}
        }
        assert _rf69_queries(refused, "testapp_rgplace") == []
        with CaptureQueriesContext(connection) as taken:
            r = api.post(url, {"action": "few", "items": items[:3]}, format="json")
    assert r.status_code == 200, r.content
    assert len(_rf69_queries(taken, "testapp_rgplace")) == 1


class _Rf69PeekingComments(_Rf69Comments):
    name = "rf69-peeking-comments"

    @action()
    def peek(self, request, instance, data):
        """Sets the pair on its row to look at it, never saves it, and refuses."""
        instance.object_id = data["object_id"]
        return Response({"error": "not ready"}, status=409)

    @route("POST", "peek", detail=True, permissions=MEMBERS)
    def route_peek(self, request, instance):
        instance.object_id = request.data["object_id"]
        return Response({"error": "not ready"}, status=409)


@pytest.mark.django_db
def test_rf69_a_handler_refusing_with_a_pair_set_only_in_memory_keeps_its_own_answer(
    settings, rf69_site
):
    """fix-seen12c judges the pair an action's or a detail route's row holds before the
    handler's own 4xx is taken (a foreign pair saved, then 409: now 400 and rolled back,
    pinned by test_fix_seen12c). It judged the row as held in memory: a handler that only
    set another tenant's id on its row, never saved it, and refused had its 409 replaced by
    the pair's 400, though nothing was written. After a 4xx the pair is judged as stored:
    the handler's 409, the row as it was; the saved case stays a 400."""
    rf69_site.register(_Rf69PeekingComments)
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    user = MembershipFactory(organization=org_b, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org_b.pk))
    place_type = ContentType.objects.get_for_model(RgPlace)
    theirs = RgPlace.objects.create(organization=org_a, name="theirs")
    place = RgPlace.objects.create(organization=org_b, name="mine")
    mine = RgComment.objects.create(
        organization=org_b, owner=user, content_type=place_type, object_id=place.pk
    )
    base = f"/rf69/rf69-peeking-comments/{mine.pk}/"
    with site_mounted(settings, "rf69", rf69_site):
        for url, extra in ((base + "action/", {"action": "peek"}), (base + "peek/", {})):
            r = api.post(url, {**extra, "object_id": theirs.pk}, format="json")
            assert r.status_code == 409, (url, r.content)
            mine.refresh_from_db()
            assert mine.object_id == place.pk
