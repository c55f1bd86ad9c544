"""rev-fixes59: review of the lead's generic-pair and cost commits and of fix-generic2/cost5.

fix-generic2 judges a generic pair (``content_type`` + ``object_id``) completed after
validation on what the write stored, and leaves alone a pair an update left as the row held
it. Two writes still stored a pair nobody judged: a ``before_update`` hook setting it on the
row (read as "held" after the hook ran), and an action's handler setting it on its row (an
``input`` writing only ``object_id`` is half a pair, which the validated check lets through,
and the handler's save is no ``perform_update``)."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connections
from rest_framework import serializers

from django_arc import Resource, ResourceSite, action, presets, route
from django_arc import permissions as P
from django_arc.actions import INSTANCE
from django_arc.audit.models import AuditLog
from django_arc.outbox.models import OutboxEvent
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Fg2Note, RgComment, RgPlace

pytestmark = pytest.mark.django_db

rf59_site = ResourceSite(name="rev-fixes59")

RF59_PERMISSIONS = {
    key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
}


class Rf59PlacedByHookSerializer(serializers.ModelSerializer):
    """Notes moved onto a place by a ``place`` number its resource's ``before_update`` reads."""

    place = serializers.IntegerField(write_only=True, required=False)

    class Meta:
        model = RgComment
        fields = ["id", "text", "place"]


@rf59_site.register
class Rf59PlacedByHookResource(Resource):
    """``before_update`` sets the pair on the row it is given from the body's ``place``."""

    model = RgComment
    name = "rf59-hook-notes"
    serializer_class = Rf59PlacedByHookSerializer
    filter_fields = {"text": ["eq"]}
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.Bulk(), presets.Audited()]
    permissions = RF59_PERMISSIONS

    def before_update(self, request, instance, data):
        place = data.pop("place", None)
        if place is not None:
            instance.content_type = ContentType.objects.get_for_model(RgPlace)
            instance.object_id = place
        return data


class Rf59MoveInput(serializers.ModelSerializer):
    """An action's ``input`` writing half the pair: the note keeps its content type."""

    class Meta:
        model = RgComment
        fields = ["object_id"]


class Rf59PlainMoveInput(serializers.Serializer):
    """A plain input naming the place by a number of its own."""

    place = serializers.IntegerField()


@rf59_site.register
class Rf59MovedByActionResource(Resource):
    """Notes moved by actions whose handler sets the pair on the row and saves it."""

    model = RgComment
    name = "rf59-action-notes"
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.Audited()]
    permissions = RF59_PERMISSIONS
    action_permissions = P.require_org_membership()

    @action(input=Rf59MoveInput)
    def move(self, request, instance, data):
        instance.object_id = data["object_id"]
        instance.save()
        return instance

    @action(input=Rf59PlainMoveInput)
    def place(self, request, instance, data):
        instance.content_type = ContentType.objects.get_for_model(RgPlace)
        instance.object_id = data["place"]
        instance.save()
        return instance

    @action(input=Rf59PlainMoveInput)
    def place_by_update(self, request, instance, data, view):
        """Sets the pair on its row, then writes the row as an update would."""
        instance.content_type = ContentType.objects.get_for_model(RgPlace)
        instance.object_id = data["place"]
        return view.perform_update(instance, {}).instance

    @route(
        "POST", "relocate", detail=True, permissions=P.require_org_membership(), response=INSTANCE
    )
    def relocate(self, request, instance, view):
        """Sets the pair on its row from the body's ``place``, then updates the row."""
        instance.content_type = ContentType.objects.get_for_model(RgPlace)
        instance.object_id = request.data["place"]
        return view.perform_update(instance, {}).instance

    @route(
        "POST",
        "relocate-now",
        detail=True,
        permissions=P.require_org_membership(),
        response=INSTANCE,
    )
    def relocate_now(self, request, instance):
        """Sets the pair on its row from the body's ``place`` and saves it."""
        instance.content_type = ContentType.objects.get_for_model(RgPlace)
        instance.object_id = request.data["place"]
        instance.save()
        return instance

    @route("POST", "retext", detail=True, permissions=P.require_org_membership(), response=INSTANCE)
    def retext(self, request, instance):
        instance.text = "retexted"
        instance.save()
        return instance

    @action(input=None)
    def rename(self, request, instance, data):
        instance.text = "renamed"
        instance.save()
        return instance


def _rf59_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False  # a 500 is an answer to assert on
    return api, user


def _rf59_missing(response, pk, under=None):
    """The answer to a pair naming no row: 400 naming ``object_id`` only (under the bulk
    body's ``items``/``data`` key when ``under`` says so)."""
    body = assert_error(response, 400, "VALIDATION_ERROR")
    errors = {"object_id": [f'Invalid pk "{pk}" - object does not exist.']}
    if isinstance(under, tuple):
        errors = {under[0]: {str(under[1]): errors}}
    elif under is not None:
        errors = {under: errors}
    assert body["details"] == errors, body


def _rf59_places():
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    place_a = RgPlace.objects.create(organization=org_a, name="pa")
    place_b = RgPlace.objects.create(organization=org_b, name="pb")
    other_b = RgPlace.objects.create(organization=org_b, name="pb2")
    missing = RgPlace.objects.order_by("-pk").first().pk + 1000
    return org_a, org_b, place_a, place_b, other_b, missing


def _rf59_note(org, owner, place, text):
    return RgComment.objects.create(
        organization=org,
        owner=owner,
        content_type=ContentType.objects.get_for_model(RgPlace),
        object_id=place.pk,
        text=text,
    )


def _rf59_nothing_recorded(name):
    assert not OutboxEvent.objects.filter(type__startswith=f"{name}.").exists()
    assert not AuditLog.objects.filter(resource=name).exists()


def test_rf59_a_pair_a_before_update_hook_sets_on_the_row_is_checked(settings):
    """``before_update`` sets the pair on the row it is given: fix-generic2 read the pair
    the row "held" after the hook, so the hook's pair was taken as the row's own and never
    judged: B moved its note onto A's place (200), single, bulk by items and by filter. Now
    400 naming ``object_id`` as for a missing place; the note unchanged, no event, no audit
    row. Another of B's places is named."""
    org_a, org_b, place_a, place_b, other_b, missing = _rf59_places()
    api_b, user_b = _rf59_member(org_b)
    name = "rf59-hook-notes"
    mine = _rf59_note(org_b, user_b, place_b, "b")
    with site_mounted(settings, "rf59", rf59_site):
        for target in (place_a.pk, missing):
            r = api_b.patch(f"/rf59/{name}/{mine.pk}/", {"place": target}, format="json")
            _rf59_missing(r, target)
            items = [{"id": mine.pk, "place": target}]
            r = api_b.patch(f"/rf59/{name}/bulk/", {"items": items}, format="json")
            _rf59_missing(r, target, ("items", 0))
            body = {"filter": {"text": "b"}, "data": {"place": target}}
            r = api_b.patch(f"/rf59/{name}/bulk/", body, format="json")
            _rf59_missing(r, target, "data")
        _rf59_nothing_recorded(name)
        mine.refresh_from_db()
        assert (mine.object_id, mine.text) == (place_b.pk, "b")
        r = api_b.patch(f"/rf59/{name}/{mine.pk}/", {"place": other_b.pk}, format="json")
        assert r.status_code == 200, r.content
    mine.refresh_from_db()
    assert mine.object_id == other_b.pk


def test_rf59_a_pair_an_actions_handler_sets_on_its_row_is_checked(settings):
    """An action's handler sets the pair on its row and saves it: with an ``input`` writing
    only ``object_id`` (half a pair: the validated check lets it through) or a plain input
    of its own, B moved its note onto A's place (200), and a handler setting the pair
    before ``perform_update`` had it taken as the row's own. Now the pair the action's row
    holds after its handler is judged as a write's stored pair: 400 naming ``object_id``,
    the note unchanged, no event, no audit row. B's own place is named; an action leaving
    the pair alone is not judged."""
    org_a, org_b, place_a, place_b, other_b, missing = _rf59_places()
    api_b, user_b = _rf59_member(org_b)
    name = "rf59-action-notes"
    mine = _rf59_note(org_b, user_b, place_b, "b")
    url = f"/rf59/{name}/{mine.pk}/action/"
    with site_mounted(settings, "rf59", rf59_site):
        for target in (place_a.pk, missing):
            r = api_b.post(url, {"action": "move", "object_id": target}, format="json")
            _rf59_missing(r, target)
            r = api_b.post(url, {"action": "place", "place": target}, format="json")
            _rf59_missing(r, target)
            r = api_b.post(url, {"action": "place_by_update", "place": target}, format="json")
            _rf59_missing(r, target)
        _rf59_nothing_recorded(name)
        mine.refresh_from_db()
        assert (mine.object_id, mine.text) == (place_b.pk, "b")
        r = api_b.post(url, {"action": "move", "object_id": other_b.pk}, format="json")
        assert r.status_code == 200, r.content
        r = api_b.post(url, {"action": "place", "place": place_b.pk}, format="json")
        assert r.status_code == 200, r.content
    # a row stored pointing elsewhere (outside the API): an action not moving it is no new
    # pointer, and is not refused for it
    odd = _rf59_note(org_b, user_b, place_a, "odd")
    with site_mounted(settings, "rf59", rf59_site):
        r = api_b.post(f"/rf59/{name}/{odd.pk}/action/", {"action": "rename"}, format="json")
        assert r.status_code == 200, r.content
    mine.refresh_from_db()
    odd.refresh_from_db()
    assert mine.object_id == place_b.pk
    assert (odd.object_id, odd.text) == (place_a.pk, "renamed")


# -- checked and found sound: pinned -------------------------------------------------------


class Rf59RenamedPairSerializer(serializers.ModelSerializer):
    """The pair written under names of its own (``source`` is the model's field)."""

    target_type = serializers.PrimaryKeyRelatedField(
        source="content_type", queryset=ContentType.objects.all()
    )
    target_id = serializers.IntegerField(source="object_id")

    class Meta:
        model = RgComment
        fields = ["id", "target_type", "target_id", "text"]


@rf59_site.register
class Rf59RenamedPairResource(Resource):
    model = RgComment
    name = "rf59-renamed-notes"
    serializer_class = Rf59RenamedPairSerializer
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.Bulk()]
    permissions = RF59_PERMISSIONS


@rf59_site.register
class Rf59PlainDefaultNoteResource(Resource):
    """Arc's own serializer, the content type the model's default: a single statement but
    for the pair's check, which needs the write's transaction."""

    model = Fg2Note
    name = "rf59-plain-default-notes"
    presets = [presets.MultiTenant(), presets.OwnedBy()]
    permissions = RF59_PERMISSIONS


def test_rf59_a_pair_a_detail_routes_handler_sets_on_its_row_is_checked(settings):
    """A detail ``@route`` sets the pair on its row from the body, then saves it or calls
    ``perform_update`` (which took the pair as the row's own): B moved its note onto A's
    place (200). Now the pair each row the route read holds after its handler is judged as
    a write's stored pair: 400 naming ``object_id``, the note unchanged, no event, no audit
    row. B's own place is named; a route leaving the pair alone is not judged."""
    org_a, org_b, place_a, place_b, other_b, missing = _rf59_places()
    api_b, user_b = _rf59_member(org_b)
    name = "rf59-action-notes"
    mine = _rf59_note(org_b, user_b, place_b, "b")
    with site_mounted(settings, "rf59", rf59_site):
        for path in ("relocate", "relocate-now"):
            url = f"/rf59/{name}/{mine.pk}/{path}/"
            for target in (place_a.pk, missing):
                _rf59_missing(api_b.post(url, {"place": target}, format="json"), target)
        _rf59_nothing_recorded(name)
        mine.refresh_from_db()
        assert (mine.object_id, mine.text) == (place_b.pk, "b")
        for path, target in (("relocate", other_b.pk), ("relocate-now", place_b.pk)):
            url = f"/rf59/{name}/{mine.pk}/{path}/"
            r = api_b.post(url, {"place": target}, format="json")
            assert r.status_code == 200, r.content
        odd = _rf59_note(org_b, user_b, place_a, "odd")
        r = api_b.post(f"/rf59/{name}/{odd.pk}/retext/", {}, format="json")
        assert r.status_code == 200, r.content
    mine.refresh_from_db()
    odd.refresh_from_db()
    assert mine.object_id == place_b.pk
    assert (odd.object_id, odd.text) == (place_a.pk, "retexted")


def test_rf59_a_pair_under_names_of_its_own_is_matched_by_source(settings):
    """71e04fc asks the model for its pairs first: a serializer writing them under other
    names (``source`` the model's fields) is still checked, the 400 naming its own field,
    single and bulk; B's own place is named."""
    org_a, org_b, place_a, place_b, _, _ = _rf59_places()
    api_b, _ = _rf59_member(org_b)
    place_type = ContentType.objects.get_for_model(RgPlace).pk
    name = "rf59-renamed-notes"
    message = [f'Invalid pk "{place_a.pk}" - object does not exist.']
    with site_mounted(settings, "rf59", rf59_site):
        body = {"target_type": place_type, "target_id": place_a.pk, "text": "x"}
        r = api_b.post(f"/rf59/{name}/", body, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {"target_id": message}
        r = api_b.post(f"/rf59/{name}/bulk/", {"items": [body]}, format="json")
        details = assert_error(r, 400, "VALIDATION_ERROR")["details"]
        assert details == {"items": {"0": {"target_id": message}}}, details
        body["target_id"] = place_b.pk
        assert api_b.post(f"/rf59/{name}/", body, format="json").status_code == 201
    assert list(RgComment.objects.values_list("object_id", flat=True)) == [place_b.pk]


@pytest.mark.parametrize("atomic_requests", [False, True])
def test_rf59_the_stored_pair_refused_leaves_no_row_under_atomic_requests(
    settings, monkeypatch, atomic_requests
):
    """fix-generic2's ``write_needs_transaction`` for a model with a pair, with the outbox
    off: the refused create leaves no row with ``ATOMIC_REQUESTS`` off and on (the write's
    own savepoint then), keyed or not; B's own place is named."""
    monkeypatch.setitem(connections["default"].settings_dict, "ATOMIC_REQUESTS", atomic_requests)
    settings.ARC = {**settings.ARC, "EVENTS": {**settings.ARC.get("EVENTS", {}), "OUTBOX": False}}
    org_a, org_b, place_a, place_b, _, _ = _rf59_places()
    api_b, _ = _rf59_member(org_b)
    url = "/rf59/rf59-plain-default-notes/"
    with site_mounted(settings, "rf59", rf59_site):
        for extra in ({}, {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}):
            body = {"object_id": place_a.pk, "text": "planted"}
            _rf59_missing(api_b.post(url, body, format="json", **extra), place_a.pk)
            assert not Fg2Note.objects.exists()
        r = api_b.post(url, {"object_id": place_b.pk, "text": "mine"}, format="json")
        assert r.status_code == 201, r.content
    assert list(Fg2Note.objects.values_list("object_id", flat=True)) == [place_b.pk]
