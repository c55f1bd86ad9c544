"""rev-fixes58: review of rev-methods, fix-generic, cost4, rev-fixes56 and the choice enum."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import models
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.exceptions import InvalidQuery
from django_arc.filters import _operator_schema
from django_arc.query import FilterField
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import RgComment, RgPlace


def _rf58_priority() -> models.IntegerField:
    field = models.IntegerField(choices=[(1, "low"), (2, "high")])
    field.set_attributes_from_name("priority")
    return field


def _rf58_refused(field: models.Field, op: str, raw: str) -> bool:
    ffilter = FilterField("priority", "priority", frozenset({op}), field)
    try:
        ffilter.to_q(op, raw, "priority")
    except InvalidQuery:
        return True
    return False


def test_rf58_an_equality_on_an_integer_field_with_choices_takes_one_of_them():
    """The parser refuses ``?priority=3`` on ``IntegerField(choices=[1, 2])`` (400, not a
    valid choice) as it does a text field's, so the schema says ``enum``: an integer schema
    alone let schemathesis send 3 as a valid request and see it refused."""
    field = _rf58_priority()
    assert _rf58_refused(field, "eq", "3") and not _rf58_refused(field, "eq", "2")
    assert _operator_schema("eq", field)["enum"] == [1, 2]
    assert _operator_schema("ne", field)["enum"] == [1, 2]
    items = _operator_schema("in", field)["items"]
    assert _rf58_refused(field, "in", "1,3") and not _rf58_refused(field, "in", "1,,2")
    assert items == {"anyOf": [{**items["anyOf"][0]}, {"type": "string", "maxLength": 0}]}
    assert items["anyOf"][0]["enum"] == [1, 2]
    # a bound need not be a choice
    assert not _rf58_refused(field, "gte", "3")
    assert "enum" not in _operator_schema("gte", field)


rf58_site = ResourceSite(name="rev-fixes58")


class Rf58PlaceNoteSerializer(serializers.ModelSerializer):
    """Notes on places: the content type is the serializer's (set in ``validate()``), the
    client sends only ``object_id``."""

    class Meta:
        model = RgComment
        fields = ["id", "object_id", "text"]

    def validate(self, attrs):
        attrs["content_type"] = ContentType.objects.get_for_model(RgPlace)
        return attrs


@rf58_site.register
class Rf58PlaceNoteResource(Resource):
    model = RgComment
    name = "place-notes"
    serializer_class = Rf58PlaceNoteSerializer
    presets = [presets.MultiTenant(), presets.OwnedBy()]
    permissions = {
        key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
    }


@pytest.mark.django_db
def test_rf58_a_pair_whose_content_type_the_serializer_sets_is_checked(settings):
    """A serializer whose ``validate()`` sets the content type (notes on places: the client
    sends only ``object_id``): the pair's check ran before ``validate()``, saw no content
    type and let any id through: a member of B put a note on A's place (201), planting its
    text under A's place. Now 400 naming ``object_id``, as for a missing place; B's own
    place is named as before."""
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    user_b = MembershipFactory(organization=org_b, role="member").user
    api_b = client_for(user_b, HTTP_X_ORGANIZATION_ID=str(org_b.pk))
    api_b.raise_request_exception = False
    place_a = RgPlace.objects.create(organization=org_a, name="pa")
    place_b = RgPlace.objects.create(organization=org_b, name="pb")
    missing = RgPlace.objects.order_by("-pk").first().pk + 1000
    with site_mounted(settings, "rf58", rf58_site):
        for target in (place_a.pk, missing):
            r = api_b.post("/rf58/place-notes/", {"object_id": target, "text": "planted"})
            body = assert_error(r, 400, "VALIDATION_ERROR")
            assert body["details"] == {
                "object_id": [f'Invalid pk "{target}" - object does not exist.']
            }, body
        r = api_b.post("/rf58/place-notes/", {"object_id": place_b.pk, "text": "mine"})
        assert r.status_code == 201, r.content
        note = RgComment.objects.get(text="mine")
        r = api_b.patch(f"/rf58/place-notes/{note.pk}/", {"object_id": place_a.pk}, format="json")
        assert_error(r, 400, "VALIDATION_ERROR")
    assert not RgComment.objects.filter(text="planted").exists()
    note.refresh_from_db()
    assert note.object_id == place_b.pk
