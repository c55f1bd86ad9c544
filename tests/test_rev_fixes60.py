"""rev-fixes60: a review of fix-seen11a (a plain action input's generic pair) and
fix-seen11b (empty structured ``[in]``, raising preset checks, ``write_values`` per bulk
item)."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.contenttypes.models import ContentType
from rest_framework import serializers

from django_arc import Resource, ResourceSite, action, presets
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.outbox.models import OutboxEvent
from django_arc.presets.base import Preset
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Article, RgComment, RgPlace

pytestmark = pytest.mark.django_db

rf60_site = ResourceSite(name="rev-fixes60")
_RF60_PUBLIC = {key: P.allow_public() for key in ("list", "get", "create", "update", "delete")}


@pytest.fixture
def rf60_mounted(settings):
    with site_mounted(settings, "rf60", rf60_site):
        yield


# -- a preset forcing a value of its moment on a bulk update ---------------------------------


class _Rf60Stamping(Preset):
    """Forces ``views`` to a new number at every call, as a preset stamping the moment (a
    clock, a sequence, a batch id) would: the row holds what it was written with."""

    name = "rf60-stamping"
    needs_transaction = False

    def __init__(self):
        self.counter = itertools.count(1)
        self.given: list[int] = []

    def write_values(self, view, instance=None):
        value = next(self.counter)
        self.given.append(value)
        return {"views": value}


_rf60_stamping = _Rf60Stamping()


@rf60_site.register
class _Rf60StampedArticles(Resource):
    """Saved in batches (``bulk_update``): DRF's own ``ModelSerializer`` saving."""

    model = Article
    name = "rf60-articles"
    fields = ["id", "slug", "title", "views"]
    read_only_fields = ["views"]
    filter_fields = {"title": ["eq"]}
    presets = [presets.Bulk(max_items=10), presets.Audited(), _rf60_stamping]
    permissions = _RF60_PUBLIC


class _Rf60OwnUpdateSerializer(serializers.ModelSerializer):
    """A serializer saving rows its own way: the bulk update saves row by row."""

    class Meta:
        model = Article
        fields = ["id", "slug", "title", "views"]
        read_only_fields = ["views"]

    def update(self, instance, validated_data):
        return super().update(instance, validated_data)


@rf60_site.register
class _Rf60StampedOwnArticles(_Rf60StampedArticles):
    name = "rf60-own-articles"
    serializer_class = _Rf60OwnUpdateSerializer


@pytest.mark.parametrize("name", ["rf60-articles", "rf60-own-articles"])
@pytest.mark.parametrize("shape", ["items", "filter"])
def test_rf60_a_bulk_update_keeps_each_rows_forced_values_as_written(rf60_mounted, name, shape):
    """A bulk update asked the presets' ``write_values`` for each row to write it, then
    again after the write to check the row still held them: a preset forcing a value of
    its moment (here a counter) was judged moved and every bulk update was a 500 (a
    ``ServerFault`` naming item 0), where the ``PATCH`` of one row is 200; each row's values
    were asked twice. Now each row's are asked once, as for a ``PATCH``, and checked as
    written: 200, every row holding the value it was given, one audit entry and one event
    each."""
    rows = [Article.objects.create(slug=f"s{i}", title="t") for i in range(3)]
    api = client_for(None)
    api.raise_request_exception = False
    _rf60_stamping.given.clear()
    if shape == "items":
        body = {"items": [{"id": row.pk, "title": "u"} for row in rows]}
    else:
        body = {"filter": {"title[eq]": "t"}, "data": {"title": "u"}}
    r = api.patch(f"/rf60/{name}/bulk/", body, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"] == {"updated": 3, "ids": [row.pk for row in rows]}
    stored = list(Article.objects.order_by("pk").values_list("title", "views"))
    assert stored == [("u", value) for value in _rf60_stamping.given]
    assert len(set(_rf60_stamping.given)) == 3
    assert AuditLog.objects.count() == 3
    assert OutboxEvent.objects.filter(type=f"{name}.updated").count() == 3
    # the update of one row, for comparison: asked once, 200
    _rf60_stamping.given.clear()
    one = api.patch(f"/rf60/{name}/{rows[0].pk}/", {"title": "v"}, format="json")
    assert one.status_code == 200, one.content
    assert one.json()["data"]["views"] == _rf60_stamping.given[-1]
    assert len(_rf60_stamping.given) == 1


@pytest.mark.parametrize("name", ["rf60-articles", "rf60-own-articles"])
def test_rf60_a_bulk_create_asks_each_items_forced_values_once(rf60_mounted, name):
    """Decided (fix-seen11b): a bulk create asks ``write_values`` once per item, as the
    create of one row asks it once: a value of its moment differs per item, each row
    holding its own, and the batch answers 201."""
    api = client_for(None)
    api.raise_request_exception = False
    _rf60_stamping.given.clear()
    items = [{"slug": f"c{i}", "title": "c"} for i in range(3)]
    r = api.post(f"/rf60/{name}/bulk/", {"items": items}, format="json")
    assert r.status_code == 201, r.content
    stored = list(Article.objects.order_by("pk").values_list("views", flat=True))
    assert stored == _rf60_stamping.given
    assert len(set(stored)) == 3


# -- a generic pair in a plain serializer nested in an action's input --------------------------


class _Rf60PairEntry(serializers.Serializer):
    """A plain serializer carrying both halves of a comment's pair."""

    content_type = serializers.PrimaryKeyRelatedField(queryset=ContentType.objects.all())
    object_id = serializers.IntegerField(min_value=1)


class _Rf60IdEntry(serializers.Serializer):
    """A plain serializer carrying only the id: the row keeps its content type."""

    object_id = serializers.IntegerField(min_value=1)


class _Rf60TypeEntry(serializers.Serializer):
    """A plain serializer carrying only the content type: the row keeps its id."""

    content_type = serializers.PrimaryKeyRelatedField(queryset=ContentType.objects.all())


class _Rf60StarInput(serializers.Serializer):
    """The pair's fields nested with ``source="*"``: DRF merges them into the input's own
    values, ``data["content_type"]``/``data["object_id"]``, the row's pair."""

    pair = _Rf60PairEntry(source="*")


class _Rf60StarIdInput(serializers.Serializer):
    pair = _Rf60IdEntry(source="*")


class _Rf60NestedInput(serializers.Serializer):
    """One nested pair under a name of its own."""

    target = _Rf60PairEntry()


class _Rf60ListInput(serializers.Serializer):
    """A list of pairs (``many=True``)."""

    targets = _Rf60PairEntry(many=True)


class _Rf60CommentSerializer(serializers.ModelSerializer):
    class Meta:
        model = RgComment
        fields = ["id", "organization", "owner", "content_type", "object_id", "text"]
        read_only_fields = ["organization", "owner"]


def _rf60_point(instance, pair):
    if "content_type" in pair:
        instance.content_type = pair["content_type"]
    instance.object_id = pair["object_id"]
    instance.save()
    return instance


@rf60_site.register
class _Rf60Comments(Resource):
    """Every member of a tenant writes its comments; actions re-point them."""

    model = RgComment
    name = "rf60-comments"
    serializer_class = _Rf60CommentSerializer
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.Audited()]
    permissions = {
        key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
    }
    action_permissions = P.require_org_membership()

    @action(input=_Rf60StarInput)
    def star(self, request, instance, data):
        return _rf60_point(instance, data)

    @action(input=_Rf60StarIdInput)
    def star_id(self, request, instance, data):
        return _rf60_point(instance, data)

    @action(input=_Rf60NestedInput)
    def nested(self, request, instance, data):
        return _rf60_point(instance, data["target"])

    @action(input=_Rf60IdEntry)
    def move(self, request, instance, data):
        return _rf60_point(instance, data)

    @action(input=_Rf60TypeEntry)
    def retype(self, request, instance, data):
        instance.content_type = data["content_type"]
        instance.save()
        return instance

    @action(input=_Rf60ListInput)
    def listed(self, request, instance, data):
        for pair in data["targets"]:
            _rf60_point(instance, pair)
        return instance


def _rf60_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False
    return api, user


def test_rf60_a_plain_serializer_nested_in_an_action_input_is_narrowed_as_a_body(rf60_mounted):
    """fix-seen11a judged a plain action input's own ``content_type``/``object_id``, not a
    plain serializer nested in it: a member of B re-pointed its comment at A's place (200)
    through the pair nested with ``source="*"`` (whose values DRF merges into the input's:
    the row's pair, the documented case), one nested under a name, or a ``many=True`` list
    of pairs. Each is now 400 naming the nested field as a missing row (the id-only entry
    read with the row's content type), the comment unchanged, no event, no audit row; the
    tenant's own place is taken."""
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    api_b, user_b = _rf60_member(org_b)
    place_b = RgPlace.objects.create(organization=org_b, name="pb")
    other_b = RgPlace.objects.create(organization=org_b, name="pb2")
    place_a = RgPlace.objects.create(organization=org_a, name="pa")
    place_type = ContentType.objects.get_for_model(RgPlace).pk
    mine = RgComment.objects.create(
        organization=org_b, owner=user_b, content_type_id=place_type, object_id=place_b.pk
    )
    url = f"/rf60/rf60-comments/{mine.pk}/action/"
    pair = {"content_type": place_type, "object_id": place_a.pk}
    message = [f'Invalid pk "{place_a.pk}" - object does not exist.']
    for name, body, details in (
        ("star", {"pair": pair}, {"pair": {"object_id": message}}),
        ("star_id", {"pair": {"object_id": place_a.pk}}, {"pair": {"object_id": message}}),
        ("nested", {"target": pair}, {"target": {"object_id": message}}),
        ("listed", {"targets": [pair]}, {"targets": {"0": {"object_id": message}}}),
    ):
        r = api_b.post(url, {"action": name, **body}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == details, name
        mine.refresh_from_db()
        assert mine.object_id == place_b.pk, name
    assert not OutboxEvent.objects.filter(type__startswith="rf60-comments.").exists()
    assert not AuditLog.objects.exists()
    mine_pair = {"content_type": place_type, "object_id": other_b.pk}
    for name, body in (
        ("star", {"pair": mine_pair}),
        ("star_id", {"pair": {"object_id": place_b.pk}}),
        ("nested", {"target": mine_pair}),
        ("listed", {"targets": [mine_pair]}),
    ):
        r = api_b.post(url, {"action": name, **body}, format="json")
        assert r.status_code == 200, (name, r.content)
    mine.refresh_from_db()
    assert (mine.content_type_id, mine.object_id) == (place_type, other_b.pk)


def test_rf60_an_action_input_override_of_the_one_argument_shape_still_runs_narrowed(
    rf60_mounted, monkeypatch
):
    """fix-seen11a made ``run_action`` call ``action_input(spec, instance)``: a ViewSet
    subclass's override of the shape it had, ``action_input(self, spec)``, made every action
    a 500 (``TypeError``), and one calling the base with ``spec`` alone handed it no row,
    so an input sending only ``object_id`` was judged against no content type (another
    tenant's place taken, 200). ``run_action`` calls it as it was (``spec``), and the base
    finds the action's row itself: 200 for the tenant's own place, 400 for another's."""
    from django.urls import resolve

    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    api_b, user_b = _rf60_member(org_b)
    place_b = RgPlace.objects.create(organization=org_b, name="pb")
    other_b = RgPlace.objects.create(organization=org_b, name="pb2")
    place_a = RgPlace.objects.create(organization=org_a, name="pa")
    place_type = ContentType.objects.get_for_model(RgPlace).pk
    mine = RgComment.objects.create(
        organization=org_b, owner=user_b, content_type_id=place_type, object_id=place_b.pk
    )
    url = f"/rf60/rf60-comments/{mine.pk}/action/"
    view_class = resolve(url).func.cls
    base = view_class.action_input
    seen = []

    def action_input(self, spec):
        seen.append(spec.name)
        return base(self, spec)

    monkeypatch.setattr(view_class, "action_input", action_input)
    r = api_b.post(url, {"action": "move", "object_id": place_a.pk}, format="json")
    assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
        "object_id": [f'Invalid pk "{place_a.pk}" - object does not exist.']
    }
    r = api_b.post(url, {"action": "move", "object_id": other_b.pk}, format="json")
    assert r.status_code == 200, r.content
    assert seen == ["move", "move"]
    mine.refresh_from_db()
    assert mine.object_id == other_b.pk


def test_rf60_an_input_sending_only_the_content_type_is_judged_with_the_rows_id(rf60_mounted):
    """Pinned (fix-seen11a, checked here): an input sending only ``content_type`` keeps the
    row's ``object_id``; re-typing B's comment on its place 9100 to a comment names A's
    comment 9100, refused as a missing row (400 naming ``content_type``, the field sent),
    nothing written; re-typed to a type whose row of that id is B's, it is taken."""
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    api_b, user_b = _rf60_member(org_b)
    place_type = ContentType.objects.get_for_model(RgPlace).pk
    comment_type = ContentType.objects.get_for_model(RgComment).pk
    place_b = RgPlace.objects.create(pk=9100, organization=org_b, name="pb")
    RgComment.objects.create(
        pk=9100, organization=org_a, content_type_id=place_type, object_id=1, text="a's"
    )
    mine = RgComment.objects.create(
        organization=org_b, owner=user_b, content_type_id=place_type, object_id=place_b.pk
    )
    url = f"/rf60/rf60-comments/{mine.pk}/action/"
    r = api_b.post(url, {"action": "retype", "content_type": comment_type}, format="json")
    assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
        "content_type": ['Invalid pk "9100" - object does not exist.']
    }
    mine.refresh_from_db()
    assert mine.content_type_id == place_type
    r = api_b.post(url, {"action": "retype", "content_type": place_type}, format="json")
    assert r.status_code == 200, r.content
