"""fix-generic2: a generic pair completed after validation is checked on what was stored.

fix-generic and rev-fixes58 check the pair (``content_type`` + ``object_id``) a write sends,
after the serializer's ``validate()``. A pair completed later was never judged: a
serializer's ``create()``/``update()`` setting either half, or the model field's
``default`` supplying the content type while the serializer leaves it out. A member of
tenant B put a note on tenant A's place by its id (201). Now the stored pair is looked up
with the same rule after the save, inside the write's transaction, and refused as a missing
row: 400 naming ``object_id``, nothing written, no event, no audit row."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.outbox.models import OutboxEvent
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Fg2Note, RgComment, RgPlace

pytestmark = pytest.mark.django_db

fg2_site = ResourceSite(name="fix-generic2")

FG2_PERMISSIONS = {
    key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
}


class Fg2CreatedOnPlaceSerializer(serializers.ModelSerializer):
    """Notes on places whose ``create()`` sets the content type: the client sends only
    ``object_id`` (rev-fixes58's repro, with ``create()`` in place of ``validate()``)."""

    class Meta:
        model = RgComment
        fields = ["id", "object_id", "text"]

    def create(self, validated_data):
        validated_data["content_type"] = ContentType.objects.get_for_model(RgPlace)
        return super().create(validated_data)


class Fg2PlacedSerializer(serializers.ModelSerializer):
    """Notes put on a place by its number (``place``): ``create()`` and ``update()`` set
    both halves of the pair, which the serializer does not write itself."""

    place = serializers.IntegerField(write_only=True, required=False)

    class Meta:
        model = RgComment
        fields = ["id", "text", "place"]

    def _placed(self, validated_data):
        place = validated_data.pop("place", None)
        if place is not None:
            validated_data["content_type"] = ContentType.objects.get_for_model(RgPlace)
            validated_data["object_id"] = place
        return validated_data

    def create(self, validated_data):
        return super().create(self._placed(validated_data))

    def update(self, instance, validated_data):
        return super().update(instance, self._placed(validated_data))


class Fg2DefaultNoteSerializer(serializers.ModelSerializer):
    """A note whose content type the model's default supplies (left out here)."""

    class Meta:
        model = Fg2Note
        fields = ["id", "object_id", "text"]


@fg2_site.register
class Fg2CreatedNoteResource(Resource):
    model = RgComment
    name = "fg2-created-notes"
    serializer_class = Fg2CreatedOnPlaceSerializer
    filter_fields = {"text": ["eq"]}
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.Bulk(), presets.Audited()]
    permissions = FG2_PERMISSIONS


@fg2_site.register
class Fg2PlacedNoteResource(Resource):
    model = RgComment
    name = "fg2-placed-notes"
    serializer_class = Fg2PlacedSerializer
    filter_fields = {"text": ["eq"]}
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.Bulk(), presets.Audited()]
    permissions = FG2_PERMISSIONS


@fg2_site.register
class Fg2DefaultNoteResource(Resource):
    model = Fg2Note
    name = "fg2-default-notes"
    serializer_class = Fg2DefaultNoteSerializer
    filter_fields = {"text": ["eq"]}
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.Bulk(), presets.Audited()]
    permissions = FG2_PERMISSIONS


@fg2_site.register
class Fg2PlainDefaultNoteResource(Resource):
    """Arc's own serializer, no hook, no preset writing on its own: with the outbox off its
    create was a single statement, written without a transaction of its own."""

    model = Fg2Note
    name = "fg2-plain-default-notes"
    presets = [presets.MultiTenant(), presets.OwnedBy()]
    permissions = FG2_PERMISSIONS


def _fg2_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False  # a 500 is an answer to assert on
    return api, user


def _fg2_missing(response, pk, under=None):
    """The answer to a pair naming no row: 400 naming ``object_id`` only (under the bulk
    body's ``items``/``data`` key when ``under`` says so)."""
    body = assert_error(response, 400, "VALIDATION_ERROR")
    errors = {"object_id": [f'Invalid pk "{pk}" - object does not exist.']}
    if isinstance(under, tuple):
        errors = {under[0]: {str(under[1]): errors}}
    elif under is not None:
        errors = {under: errors}
    assert body["details"] == errors, body
    return body


def _fg2_places():
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    place_a = RgPlace.objects.create(organization=org_a, name="pa")
    place_b = RgPlace.objects.create(organization=org_b, name="pb")
    other_b = RgPlace.objects.create(organization=org_b, name="pb2")
    missing = RgPlace.objects.order_by("-pk").first().pk + 1000
    return org_a, org_b, place_a, place_b, other_b, missing


def _fg2_place_reads(queries):
    return [q for q in queries.captured_queries if "testapp_rgplace" in q["sql"]]


def _fg2_nothing_recorded(name):
    """No event and no audit row of ``name``'s writes."""
    assert not OutboxEvent.objects.filter(type__startswith=f"{name}.").exists()
    assert not AuditLog.objects.filter(resource=name).exists()


def test_fg2_a_content_type_set_by_create_is_checked(settings):
    """The serializer's ``create()`` sets the content type: B's note on A's place was 201.
    Now 400 naming ``object_id`` as for a missing place, on a single create and on a
    row-by-row bulk create (the item indexed); nothing written, no event, no audit row.
    B's own places are named, one read per place named."""
    org_a, org_b, place_a, place_b, other_b, missing = _fg2_places()
    api_b, _ = _fg2_member(org_b)
    name = "fg2-created-notes"
    with site_mounted(settings, "fg2", fg2_site):
        for target in (place_a.pk, missing):
            r = api_b.post(f"/fg2/{name}/", {"object_id": target, "text": "planted"})
            _fg2_missing(r, target)
            items = [{"object_id": place_b.pk, "text": "ok"}, {"object_id": target, "text": "x"}]
            r = api_b.post(f"/fg2/{name}/bulk/", {"items": items}, format="json")
            _fg2_missing(r, target, ("items", 1))
        # under an Idempotency-Key the write joins the request's transaction: rolled back too
        r = api_b.post(
            f"/fg2/{name}/",
            {"object_id": place_a.pk, "text": "planted"},
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
        _fg2_missing(r, place_a.pk)
        _fg2_nothing_recorded(name)
        assert not RgComment.objects.exists()
        with CaptureQueriesContext(connection) as queries:
            r = api_b.post(f"/fg2/{name}/", {"object_id": place_b.pk, "text": "mine"})
        assert r.status_code == 201, r.content
        assert len(_fg2_place_reads(queries)) == 1, _fg2_place_reads(queries)
        # one read per place named: a pair judged already in the request is not read again
        items = [{"object_id": pk, "text": "bulk"} for pk in (place_b.pk, other_b.pk, place_b.pk)]
        with CaptureQueriesContext(connection) as queries:
            r = api_b.post(f"/fg2/{name}/bulk/", {"items": items}, format="json")
        assert r.status_code == 201, r.content
        assert len(_fg2_place_reads(queries)) == 2, _fg2_place_reads(queries)
    notes = RgComment.objects.all()
    assert sorted(n.text for n in notes) == ["bulk", "bulk", "bulk", "mine"]
    assert {(n.content_type.model_class(), n.object_id) for n in notes} == {
        (RgPlace, place_b.pk),
        (RgPlace, other_b.pk),
    }
    assert OutboxEvent.objects.filter(type=f"{name}.created").count() == 4
    assert AuditLog.objects.filter(resource=name).count() == 4


def test_fg2_a_pair_set_by_update_is_checked(settings):
    """``create()``/``update()`` set both halves from a ``place`` number the serializer
    writes instead of the pair: B moved its note onto A's place (200). Now 400 naming
    ``object_id`` on a create, an update, a bulk update by items (indexed) and by filter
    (under ``data``); the note is unchanged, no event, no audit row. Another place of B's
    is named; an update leaving the pair as it is is not judged again (no place read)."""
    org_a, org_b, place_a, place_b, other_b, missing = _fg2_places()
    api_b, user_b = _fg2_member(org_b)
    name = "fg2-placed-notes"
    place_type = ContentType.objects.get_for_model(RgPlace)
    mine = RgComment.objects.create(
        organization=org_b, owner=user_b, content_type=place_type, object_id=place_b.pk, text="b"
    )
    # planted outside the API: a pair no write of this request sets
    odd = RgComment.objects.create(
        organization=org_b, owner=user_b, content_type=place_type, object_id=place_a.pk, text="o"
    )
    with site_mounted(settings, "fg2", fg2_site):
        for target in (place_a.pk, missing):
            r = api_b.post(f"/fg2/{name}/", {"place": target, "text": "planted"}, format="json")
            _fg2_missing(r, target)
            r = api_b.patch(f"/fg2/{name}/{mine.pk}/", {"place": target}, format="json")
            _fg2_missing(r, target)
            items = [{"id": odd.pk, "text": "o2"}, {"id": mine.pk, "place": target}]
            r = api_b.patch(f"/fg2/{name}/bulk/", {"items": items}, format="json")
            _fg2_missing(r, target, ("items", 1))
            body = {"filter": {"text": "b"}, "data": {"place": target}}
            r = api_b.patch(f"/fg2/{name}/bulk/", body, format="json")
            _fg2_missing(r, target, "data")
        _fg2_nothing_recorded(name)
        mine.refresh_from_db()
        odd.refresh_from_db()
        assert (mine.object_id, mine.text, odd.text) == (place_b.pk, "b", "o")
        assert not RgComment.objects.filter(text="planted").exists()
        # the pair it holds is not this write's: left alone, not read
        with CaptureQueriesContext(connection) as queries:
            r = api_b.patch(f"/fg2/{name}/{odd.pk}/", {"text": "o3"}, format="json")
        assert r.status_code == 200, r.content
        assert _fg2_place_reads(queries) == []
        r = api_b.patch(f"/fg2/{name}/{mine.pk}/", {"place": other_b.pk}, format="json")
        assert r.status_code == 200, r.content
    mine.refresh_from_db()
    assert mine.object_id == other_b.pk


def test_fg2_a_content_type_the_models_default_supplies_is_checked(settings):
    """The model's ``default`` supplies the content type the serializer leaves out: B's
    note on A's place was 201, single and batched bulk. Now 400 naming ``object_id``;
    nothing written, no event, no audit row. B's own place is named."""
    org_a, org_b, place_a, place_b, _, missing = _fg2_places()
    api_b, _ = _fg2_member(org_b)
    name = "fg2-default-notes"
    with site_mounted(settings, "fg2", fg2_site):
        for target in (place_a.pk, missing):
            r = api_b.post(f"/fg2/{name}/", {"object_id": target, "text": "planted"})
            _fg2_missing(r, target)
            items = [{"object_id": target, "text": "x"}, {"object_id": place_b.pk, "text": "y"}]
            r = api_b.post(f"/fg2/{name}/bulk/", {"items": items}, format="json")
            _fg2_missing(r, target, ("items", 0))
        _fg2_nothing_recorded(name)
        assert not Fg2Note.objects.exists()
        r = api_b.post(f"/fg2/{name}/", {"object_id": place_b.pk, "text": "mine"})
        assert r.status_code == 201, r.content
        items = [{"object_id": place_b.pk, "text": "bulk"}] * 2
        with CaptureQueriesContext(connection) as queries:
            r = api_b.post(f"/fg2/{name}/bulk/", {"items": items}, format="json")
        assert r.status_code == 201, r.content
        # the batched path: one INSERT for the batch
        inserts = [q for q in queries.captured_queries if q["sql"].startswith("INSERT")]
        assert sum("testapp_fg2note" in q["sql"] for q in inserts) == 1, inserts
    notes = Fg2Note.objects.all()
    assert sorted(n.text for n in notes) == ["bulk", "bulk", "mine"]
    assert {(n.content_type.model_class(), n.object_id) for n in notes} == {(RgPlace, place_b.pk)}


def test_fg2_the_default_pair_is_refused_with_the_outbox_off(settings):
    """Arc's own serializer with nothing else to write: with ``EVENTS.OUTBOX`` off its
    create ran in autocommit, so a refusal after the save would leave the row. A model
    with a generic pair writes in a transaction: the refused note is not stored."""
    settings.ARC = {**settings.ARC, "EVENTS": {**settings.ARC.get("EVENTS", {}), "OUTBOX": False}}
    org_a, org_b, place_a, place_b, _, _ = _fg2_places()
    api_b, _ = _fg2_member(org_b)
    url = "/fg2/fg2-plain-default-notes/"
    with site_mounted(settings, "fg2", fg2_site):
        _fg2_missing(api_b.post(url, {"object_id": place_a.pk, "text": "planted"}), place_a.pk)
        assert not Fg2Note.objects.exists()
        r = api_b.post(url, {"object_id": place_b.pk, "text": "mine"})
        assert r.status_code == 201, r.content
    assert Fg2Note.objects.get().object_id == place_b.pk
