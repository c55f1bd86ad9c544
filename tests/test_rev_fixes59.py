"""rev-fixes59: review of the lead's generic-pair and cost commits and of fix-generic2/cost5.

fix-generic2 judges a generic pair (``content_type`` + ``object_id``) completed after
validation on what the write stored, and leaves alone a pair an update left as the row held
it. A ``before_update`` hook setting the pair on the row still stored one nobody judged
(read as "held" after the hook ran)."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.outbox.models import OutboxEvent
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import RgComment, RgPlace

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
