"""fix-seen12c: generic pairs judged without a query per entry (an action input sending
only ``object_id``; a list of pairs), and the query cache's reach through a
``GenericForeignKey`` and over a database view."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers
from rest_framework.response import Response

from django_arc import Resource, ResourceSite, action, presets, route
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.checks import check_resource
from django_arc.outbox.models import OutboxEvent
from django_arc.querycache import invalidate
from django_arc.sites import _all_sites
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.redis_support import REDIS_URL, arc_with, caches_with
from tests.testapp.models import Author, RgComment, RgPlace, Sticker
from tests.testapp.resources import PUBLIC

try:  # Django 5.0+
    from django.contrib.contenttypes.prefetch import GenericPrefetch
except ImportError:  # Django 4.2
    GenericPrefetch = None

pytestmark = pytest.mark.django_db

fs12c_site = ResourceSite(name="fix-seen12c")


@pytest.fixture
def fs12c_mounted(settings):
    with site_mounted(settings, "fs12c", fs12c_site):
        yield


class _Fs12cIdInput(serializers.Serializer):
    """Only the id: the row keeps its content type."""

    object_id = serializers.IntegerField(min_value=1)


class _Fs12cEntry(serializers.Serializer):
    """Both halves of a pair."""

    content_type = serializers.PrimaryKeyRelatedField(queryset=ContentType.objects.all())
    object_id = serializers.IntegerField(min_value=1)


class _Fs12cListInput(serializers.Serializer):
    items = _Fs12cEntry(many=True)


class _Fs12cCommentSerializer(serializers.ModelSerializer):
    class Meta:
        model = RgComment
        fields = ["id", "organization", "owner", "content_type", "object_id", "text"]
        read_only_fields = ["organization", "owner"]


@fs12c_site.register
class _Fs12cComments(Resource):
    model = RgComment
    name = "fs12c-comments"
    serializer_class = _Fs12cCommentSerializer
    presets = [presets.MultiTenant(), presets.Audited()]
    permissions = {
        key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
    }
    action_permissions = P.require_org_membership()

    @action(input=_Fs12cIdInput)
    def move(self, request, instance, data):
        RgComment.objects.filter(pk=instance.pk).update(object_id=data["object_id"])
        return {"moved": data["object_id"]}

    @action(input=_Fs12cListInput)
    def many(self, request, instance, data):
        return {"count": len(data["items"])}

    @action(input=_Fs12cIdInput)
    def move_then_refuse(self, request, instance, data):
        """Saves the pair, then refuses with an answer of its own (the row "not ready")."""
        instance.object_id = data["object_id"]
        instance.text = "moved"
        instance.save()
        return Response({"error": "not ready"}, status=409)

    @route("POST", "move-then-refuse", detail=True, permissions=P.require_org_membership())
    def route_move_then_refuse(self, request, instance):
        instance.object_id = request.data["object_id"]
        instance.text = "routed"
        instance.save()
        return Response({"error": "not ready"}, status=409)


def _fs12c_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False
    return api, user


def _fs12c_queries(context, table):
    return [q["sql"] for q in context.captured_queries if f'"{table}"' in q["sql"]]


def test_fs12c_an_action_sending_only_the_id_reads_no_content_type(fs12c_mounted):
    """An action input sending only ``object_id`` was judged with the row's content type
    read through its foreign key (``row.content_type``): one query of
    ``django_content_type`` per call, which the content type cache answers by id. Now the
    row's ``content_type_id`` is read: no such query, and the judgement is the same (another
    tenant's place 400 naming ``object_id``, the tenant's own 200)."""
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    api_b, user_b = _fs12c_member(org_b)
    place_a = RgPlace.objects.create(organization=org_a, name="pa")
    place_b = RgPlace.objects.create(organization=org_b, name="pb")
    other_b = RgPlace.objects.create(organization=org_b, name="pb2")
    place_type = ContentType.objects.get_for_model(RgPlace)
    ContentType.objects.get_for_id(place_type.pk)  # the cache by id, as a running process has
    mine = RgComment.objects.create(
        organization=org_b, owner=user_b, content_type=place_type, object_id=place_b.pk
    )
    url = f"/fs12c/fs12c-comments/{mine.pk}/action/"
    with CaptureQueriesContext(connection) as refused:
        r = api_b.post(url, {"action": "move", "object_id": place_a.pk}, format="json")
    assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
        "object_id": [f'Invalid pk "{place_a.pk}" - object does not exist.']
    }
    assert _fs12c_queries(refused, "django_content_type") == []
    with CaptureQueriesContext(connection) as taken:
        r = api_b.post(url, {"action": "move", "object_id": other_b.pk}, format="json")
    assert r.status_code == 200, r.content
    assert _fs12c_queries(taken, "django_content_type") == []
    mine.refresh_from_db()
    assert mine.object_id == other_b.pk


def test_fs12c_a_list_of_pairs_is_judged_in_one_query_per_content_type(fs12c_mounted):
    """A ``many=True`` list of N pairs in an action input ran one query per entry (each
    entry's check asked for its row alone). Now the list's rows are asked for once per
    content type (the places, the comments): 2 queries for 12 entries, as for 4; another
    tenant's place in the middle of the list is still refused under its index
    (``items.5.object_id``), a missing id too, and no event or audit entry is written."""
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    api_b, user_b = _fs12c_member(org_b)
    place_type = ContentType.objects.get_for_model(RgPlace)
    comment_type = ContentType.objects.get_for_model(RgComment)
    ContentType.objects.get_for_id(place_type.pk)
    ContentType.objects.get_for_id(comment_type.pk)
    places = [RgPlace.objects.create(organization=org_b, name=f"p{i}") for i in range(6)]
    theirs = RgPlace.objects.create(organization=org_a, name="theirs")
    mine = RgComment.objects.create(
        organization=org_b, owner=user_b, content_type=place_type, object_id=places[0].pk
    )
    comments = [
        RgComment.objects.create(
            organization=org_b, owner=user_b, content_type=place_type, object_id=p.pk
        )
        for p in places
    ]
    url = f"/fs12c/fs12c-comments/{mine.pk}/action/"

    def entries(count):
        found = []
        for i in range(count):
            if i % 2:
                found.append({"content_type": comment_type.pk, "object_id": comments[i // 2].pk})
            else:
                found.append({"content_type": place_type.pk, "object_id": places[i // 2].pk})
        return found

    counts = {}
    for count in (4, 12):
        with CaptureQueriesContext(connection) as judged:
            r = api_b.post(url, {"action": "many", "items": entries(count)}, format="json")
        assert r.status_code == 200, r.content
        assert r.json()["data"] == {"count": count}
        # each entry's ``content_type`` is DRF's relation field, resolved per entry (as any
        # nested foreign key is): the judging is what must not grow with the list
        counts[count] = len([q for q in judged.captured_queries if '"testapp_' in q["sql"]])
        assert len(_fs12c_queries(judged, "testapp_rgplace")) == 1, judged.captured_queries
        assert len(_fs12c_queries(judged, "testapp_rgcomment")) == 2  # the row, the entries
    assert counts[12] == counts[4] == 3

    missing = max(p.pk for p in (*places, theirs)) + 1000
    events, audits = OutboxEvent.objects.count(), AuditLog.objects.count()
    body = entries(12)
    body[5] = {"content_type": place_type.pk, "object_id": theirs.pk}
    body[8] = {"content_type": place_type.pk, "object_id": missing}
    with CaptureQueriesContext(connection) as refused:
        r = api_b.post(url, {"action": "many", "items": body}, format="json")
    details = assert_error(r, 400, "VALIDATION_ERROR")["details"]
    assert details == {
        "items": {
            "5": {"object_id": [f'Invalid pk "{theirs.pk}" - object does not exist.']},
            "8": {"object_id": [f'Invalid pk "{missing}" - object does not exist.']},
        }
    }
    assert len(_fs12c_queries(refused, "testapp_rgplace")) == 1
    assert (OutboxEvent.objects.count(), AuditLog.objects.count()) == (events, audits)


def test_fs12c_a_handler_saving_a_foreign_pair_then_answering_a_4xx_keeps_nothing(
    fs12c_mounted,
):
    """A handler (an action's, a detail route's) that saved its row pointing at another
    tenant's place and then answered a 4xx of its own skipped the pair's check, which runs
    only after a handler that did not refuse: the comment of B stayed on A's place (409,
    the row moved). arc 2.9.1 runs an action's handler outside any transaction and keeps
    what it wrote whatever it answers; here the handler runs in one, and the pair is now
    judged before its own answer is taken: 400 naming ``object_id``, everything it wrote
    rolled back, as after a handler that did not refuse. A pair of B's own with the same
    409 is the handler's refusal as documented: its 409, its write kept."""
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    api_b, user_b = _fs12c_member(org_b)
    place_a = RgPlace.objects.create(organization=org_a, name="pa")
    place_b = RgPlace.objects.create(organization=org_b, name="pb")
    other_b = RgPlace.objects.create(organization=org_b, name="pb2")
    place_type = ContentType.objects.get_for_model(RgPlace)
    mine = RgComment.objects.create(
        organization=org_b, owner=user_b, content_type=place_type, object_id=place_b.pk, text="t"
    )
    base = f"/fs12c/fs12c-comments/{mine.pk}/"
    calls = (
        (base + "action/", {"action": "move_then_refuse"}),
        (base + "move-then-refuse/", {}),
    )
    for url, extra in calls:
        r = api_b.post(url, {**extra, "object_id": place_a.pk}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
            "object_id": [f'Invalid pk "{place_a.pk}" - object does not exist.']
        }, url
        mine.refresh_from_db()
        assert (mine.object_id, mine.text) == (place_b.pk, "t"), url
    for url, extra in calls:
        r = api_b.post(url, {**extra, "object_id": other_b.pk}, format="json")
        assert r.status_code == 409, r.content
        mine.refresh_from_db()
        assert mine.object_id == other_b.pk, url
        mine.object_id = place_b.pk
        mine.save()


# -- the query cache through a GenericForeignKey -------------------------------------------


class _Fs12cStickerSerializer(serializers.ModelSerializer):
    """A sticker rendering what it is stuck on (its ``str()``): prefetched by arc."""

    target = serializers.StringRelatedField(read_only=True)

    class Meta:
        model = Sticker
        fields = ["id", "label", "target"]


class _Fs12cLabelSerializer(serializers.ModelSerializer):
    """Only the label and the pair's columns: the declared queryset prefetches the
    target, which a ``get_queryset()`` narrowing by it would read."""

    class Meta:
        model = Sticker
        fields = ["id", "label", "content_type", "object_id"]


def _fs12c_sticker_resources():
    class Rendered(Resource):
        model = Sticker
        name = "fs12c-rendered"
        serializer_class = _Fs12cStickerSerializer
        permissions = PUBLIC
        cache = {"stale_seconds": 30}

    class Prefetched(Resource):
        model = Sticker
        name = "fs12c-prefetched"
        serializer_class = _Fs12cStickerSerializer
        queryset = Sticker.objects.prefetch_related("target")
        permissions = PUBLIC
        cache = {"stale_seconds": 30}

    class Tagged(Resource):
        model = Sticker
        name = "fs12c-tagged"
        serializer_class = _Fs12cStickerSerializer
        permissions = PUBLIC
        cache = {"stale_seconds": 30, "tags": ["fs12c-targets"]}

    found = [Rendered, Prefetched, Tagged]
    if GenericPrefetch is not None:

        class Generic(Resource):
            model = Sticker
            name = "fs12c-generic-prefetch"
            serializer_class = _Fs12cLabelSerializer
            queryset = Sticker.objects.prefetch_related(
                GenericPrefetch("target", [Author.objects.all()])
            )
            permissions = PUBLIC
            cache = {"stale_seconds": 30}

        found.append(Generic)
    return found


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_fs12c_an_answer_read_through_a_generic_foreign_key_is_not_stored_untagged(settings):
    """A cached resource whose answers read the row a ``GenericForeignKey`` points at (a
    serializer rendering it, a declared ``prefetch_related("target")`` or, on Django 5,
    a ``GenericPrefetch``) stored them, and no write to the target retired them: an author
    renamed, the sticker list kept showing the old name as a HIT until ``stale_seconds``.
    Such answers are now computed every time (``MISS``, the new name shown) and
    ``manage.py check`` says so (arc.W015), unless the resource's ``cache`` names
    ``tags``, the project's word that its receivers retire them (docs/query-cache.md):
    stored, and retired by ``invalidate(tag)``."""
    site = ResourceSite(name="fs12c-stickers")
    resources = _fs12c_sticker_resources()
    for resource in resources:
        site.register(resource)
    author = Author.objects.create(name="Ann")
    Sticker.objects.create(
        content_type=ContentType.objects.get_for_model(Author), object_id=author.pk, label="a"
    )
    api = client_for(None)
    try:
        with (
            site_mounted(settings, "fs12cs", site),
            override_settings(CACHES=caches_with("redis", REDIS_URL)),
            override_settings(ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})),
        ):
            warned = {
                resource.__name__: [m.id for m in check_resource(site.get_resource(resource.name))]
                for resource in resources
            }
            for resource in resources:
                url = f"/fs12cs/{resource.name}/"
                author.name = "Ann"
                author.save()
                assert api.get(url)["X-Cache"] == "MISS", url
                second = api.get(url)
                author.name = "Bob"
                author.save()
                third = api.get(url)
                if resource.__name__ == "Tagged":
                    assert (second["X-Cache"], third["X-Cache"]) == ("HIT", "HIT")
                    invalidate("fs12c-targets")
                    third = api.get(url)
                    assert third["X-Cache"] == "MISS"
                else:
                    assert (second["X-Cache"], third["X-Cache"]) == ("MISS", "MISS"), url
                if "target" in third.json()["docs"][0]:
                    assert third.json()["docs"][0]["target"] == "Bob", url
    finally:
        _all_sites.remove(site)
    for name, ids in warned.items():
        assert ("arc.W015" in ids) is (name != "Tagged"), (name, ids)
