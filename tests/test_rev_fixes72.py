"""rev-fixes72's review of fix-seen12b, rev-fixes68 and rev-fixes69: a ``JSONField``'s text
inside a nested ``source="*"`` serializer, and a project decimal field's unbounded
exponent."""

import json

import pytest
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from tests.factories import OrganizationFactory, member_client
from tests.helpers import assert_error, site_mounted
from tests.testapp.models import Note

pytestmark = pytest.mark.django_db

rf72_site = ResourceSite(name="rev-fixes72")


class _Rf72Bag(serializers.Serializer):
    """The row's own values (``source="*"``), one of them a bag of more of them: a
    ``JSONField(source="*")`` whose object comes as text (``binary=True``)."""

    bag = serializers.JSONField(source="*", binary=True, required=False)
    text = serializers.CharField(required=False)


class _Rf72NoteSerializer(serializers.ModelSerializer):
    meta = _Rf72Bag(source="*", required=False, write_only=True)

    class Meta:
        model = Note
        fields = ["id", "branch", "text", "organization", "owner", "internal", "meta"]


class _Rf72Base(Resource):
    model = Note
    serializer_class = _Rf72NoteSerializer
    read_only_fields = ["id", "internal"]
    presets = [presets.MultiTenant(), presets.OwnedBy()]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "create", "update")}


@rf72_site.register
class Rf72NestedBagResource(_Rf72Base):
    name = "rf72-nested-bag"


@rf72_site.register
class Rf72NestedBagStripResource(_Rf72Base):
    name = "rf72-nested-bag-strip"
    on_field_write_denied = "strip"


@pytest.fixture
def rf72_world(settings):
    editor = member_client(OrganizationFactory(), "editor")
    stranger = member_client(OrganizationFactory(), "editor").handler._force_user
    with site_mounted(settings, "rf72", rf72_site):
        yield {"editor": editor, "stranger": stranger}


def _rf72_note(client, resource):
    r = client.post(f"/rf72/{resource}/", {"branch": "x", "text": "t"}, format="json")
    assert r.status_code == 201, r.content
    return f"/rf72/{resource}/{r.json()['data']['id']}/"


def test_rf72_a_json_fields_text_inside_a_nested_serializer_on_the_row_is_judged(rf72_world):
    """rev-fixes68 parsed a ``JSONField(source="*")``'s text to judge its keys only for a
    top-level field: inside a nested ``source="*"`` serializer the text went to DRF
    unjudged, which parsed it and merged it into the row's values, and
    ``{"meta": {"bag": "{\\"owner_id\\": …}"}}`` handed the note to a user of another
    tenant (200)."""
    editor, stranger = rf72_world["editor"], rf72_world["stranger"]
    url = _rf72_note(editor, "rf72-nested-bag")
    bag = json.dumps({"owner_id": stranger.pk, "text": "moved"})
    r = editor.patch(url, {"meta": {"bag": bag}}, format="json")
    assert_error(r, 403, "FIELD_WRITE_DENIED")
    assert r.json()["details"] == {"fields": ["meta.bag.owner_id"]}
    note = Note.objects.get()
    assert (note.owner, note.text) == (editor.handler._force_user, "t")
    # what the caller may write in it is written, as text still
    r = editor.patch(url, {"meta": {"bag": json.dumps({"text": "kept"})}}, format="json")
    assert r.status_code == 200, r.content
    assert Note.objects.get().text == "kept"


def test_rf72_strip_drops_a_refused_key_from_a_nested_json_fields_text(rf72_world):
    editor, stranger = rf72_world["editor"], rf72_world["stranger"]
    url = _rf72_note(editor, "rf72-nested-bag-strip")
    bag = json.dumps({"owner_id": stranger.pk, "text": "kept"})
    r = editor.patch(url, {"meta": {"bag": bag}}, format="json")
    assert r.status_code == 200, r.content
    note = Note.objects.get()
    assert (note.owner, note.text) == (editor.handler._force_user, "kept")
