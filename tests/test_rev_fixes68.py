"""rev-fixes68's review of rev-fixes65, rev-fixes66, rev-fixes67 and the lead's refactors
after them (``FieldAccess.body_verdict``, ``fields.write_denied``)."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import fields as F
from django_arc import permissions as P
from shop.models import Organization
from tests.factories import OrganizationFactory, member_client
from tests.helpers import site_mounted
from tests.testapp.models import Note

pytestmark = pytest.mark.django_db

rf68_site = ResourceSite(name="rev-fixes68")


class _Rf68OnRowSerializer(serializers.Serializer):
    """Values of the row's own (``source="*"``): ``owner`` is the owner column a preset
    manages, ``org`` the tenant column."""

    owner = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.all(), required=False
    )
    org = serializers.PrimaryKeyRelatedField(
        source="organization", queryset=Organization.objects.all(), required=False
    )
    text = serializers.CharField(required=False)


class _Rf68NoteSerializer(serializers.ModelSerializer):
    meta = _Rf68OnRowSerializer(source="*", required=False)

    class Meta:
        model = Note
        fields = ["id", "branch", "text", "organization", "owner", "internal", "meta"]


class _Rf68Base(Resource):
    model = Note
    serializer_class = _Rf68NoteSerializer
    read_only_fields = ["id", "internal"]
    presets = [presets.MultiTenant(), presets.OwnedBy()]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "create", "update")}


@rf68_site.register
class Rf68OnRowResource(_Rf68Base):
    name = "rf68-on-row"


@rf68_site.register
class Rf68OnRowStripResource(_Rf68Base):
    name = "rf68-on-row-strip"
    on_field_write_denied = "strip"


@rf68_site.register
class Rf68MetaHiddenResource(_Rf68Base):
    name = "rf68-meta-hidden"
    field_permissions = {"meta": F.hidden()}


@pytest.fixture
def rf68_world(settings):
    org = OrganizationFactory()
    editor = member_client(org, "editor")
    stranger = member_client(OrganizationFactory(), "editor").handler._force_user
    with site_mounted(settings, "rf68", rf68_site):
        yield {"org": org, "editor": editor, "stranger": stranger}


def _note(client, resource):
    r = client.post(f"/rf68/{resource}/", {"branch": "x", "text": "t"}, format="json")
    assert r.status_code == 201, r.content
    return f"/rf68/{resource}/{r.json()['data']['id']}/"


def test_rf68_a_refusal_names_the_top_level_and_the_nested_keys_together(rf68_world):
    """The spec's 403 lists *all* the fields the caller may not write. rev-fixes66 judged a
    nested ``source="*"`` serializer's keys only once the body's top-level keys had passed:
    ``{"internal": …, "meta": {"owner": …}}`` was refused naming ``internal`` alone, and the
    caller, fixing that, was refused again for ``meta.owner``."""
    editor, stranger = rf68_world["editor"], rf68_world["stranger"]
    url = _note(editor, "rf68-on-row")
    r = editor.patch(url, {"internal": "x", "meta": {"owner": stranger.pk}}, format="json")
    assert r.status_code == 403, r.content
    assert r.json()["details"] == {"fields": ["internal", "meta.owner"]}
    assert r.json()["error"] == "Not permitted to write fields: internal, meta.owner"
    note = Note.objects.get()
    assert (note.owner, note.internal) == (editor.handler._force_user, "")


def test_rf68_strip_drops_the_top_level_and_the_nested_keys_refused(rf68_world):
    """Under ``strip`` both are dropped and the rest written."""
    editor, stranger = rf68_world["editor"], rf68_world["stranger"]
    url = _note(editor, "rf68-on-row-strip")
    r = editor.patch(
        url,
        {"internal": "x", "text": "top", "meta": {"owner": stranger.pk}},
        format="json",
    )
    assert r.status_code == 200, r.content
    note = Note.objects.get()
    assert (note.owner, note.internal, note.text) == (editor.handler._force_user, "", "top")


def test_rf68_a_hidden_nested_serializer_is_not_judged_key_by_key(rf68_world):
    """A ``hidden()`` ``meta`` is dropped as if it did not exist: no 403 naming
    ``meta.owner`` confirms it does, and nothing of it is written."""
    editor, stranger = rf68_world["editor"], rf68_world["stranger"]
    url = _note(editor, "rf68-meta-hidden")
    r = editor.patch(url, {"text": "top", "meta": {"owner": stranger.pk}}, format="json")
    assert r.status_code == 200, r.content
    note = Note.objects.get()
    assert (note.owner, note.text) == (editor.handler._force_user, "top")
