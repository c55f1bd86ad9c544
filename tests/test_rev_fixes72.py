"""rev-fixes72's review of fix-seen12b, rev-fixes68 and rev-fixes69: a ``JSONField``'s text
inside a nested ``source="*"`` serializer, and a project decimal field's unbounded
exponent."""

import json

import pytest
from rest_framework import serializers

from django_arc import Resource, ResourceSite, action, presets
from django_arc import permissions as P
from tests.factories import OrganizationFactory, member_client
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Note, RevNumTally

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
    elsewhere = OrganizationFactory()
    stranger = member_client(elsewhere, "editor").handler._force_user
    with site_mounted(settings, "rf72", rf72_site):
        yield {"editor": editor, "stranger": stranger, "elsewhere": elsewhere}


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


# -- a project's decimal field without max_digits: an exponent's text unbounded ------------


class _Rf72Leg(serializers.Serializer):
    free = serializers.DecimalField(max_digits=None, decimal_places=None, required=False)
    cents = serializers.DecimalField(max_digits=None, decimal_places=2, required=False)


class _Rf72PriceInput(serializers.Serializer):
    """Decimal fields with no ``max_digits``: at the top, nested, a list's child."""

    free = serializers.DecimalField(max_digits=None, decimal_places=None, required=False)
    leg = _Rf72Leg(required=False)
    parts = serializers.ListField(
        child=serializers.DecimalField(max_digits=None, decimal_places=None), required=False
    )


@rf72_site.register
class Rf72TallyResource(Resource):
    model = RevNumTally
    name = "rf72-tallies"
    permissions = {k: P.allow_public() for k in ("list", "get", "create", "update", "delete")}

    @action(permissions=P.allow_public(), input=_Rf72PriceInput)
    def price(self, request, instance, data):
        return {"ok": True}


RF72_SHAPES = {
    "top": ('{"action": "price", "free": %s}', "free"),
    "nested": ('{"action": "price", "leg": {"free": %s}}', "leg"),
    "child": ('{"action": "price", "parts": [%s]}', "parts"),
}


@pytest.fixture
def rf72_api(settings):
    with site_mounted(settings, "rf72", rf72_site):
        yield client_for()


@pytest.mark.parametrize("shape", sorted(RF72_SHAPES))
@pytest.mark.parametrize("number", ["1e999999999", '"1e999999999"', "1e1001", "-1e-1001"])
def test_rf72_a_decimal_whose_text_is_past_drfs_limit_is_refused(rf72_api, shape, number):
    """A decimal field without ``max_digits`` took any exponent of a JSON number's text
    (fix-seen12b hands nested fields the text too; before, the float's infinity was
    refused): ``1e999999999`` was written back as a billion digits in the action's event
    (a minute of CPU, then a 500 on SQLite). Refused with DRF's own message for text it
    will not read, named by the field; nothing stored."""
    body, name = RF72_SHAPES[shape]
    row = RevNumTally.objects.create()
    r = rf72_api.post(
        f"/rf72/rf72-tallies/{row.pk}/action/", body % number, content_type="application/json"
    )
    details = assert_error(r, 400, "VALIDATION_ERROR")["details"]
    assert list(details) == [name], details
    assert "String value too large." in str(details), details


@pytest.mark.parametrize("shape", sorted(RF72_SHAPES))
def test_rf72_a_decimal_whose_text_is_within_drfs_limit_is_taken(rf72_api, shape):
    body, _ = RF72_SHAPES[shape]
    row = RevNumTally.objects.create()
    for number in ("1e998", "-1e-997", "0e5000", "12345678901234567.891"):
        r = rf72_api.post(
            f"/rf72/rf72-tallies/{row.pk}/action/", body % number, content_type="application/json"
        )
        assert r.status_code == 200, (number, r.content[:300])


@pytest.mark.parametrize("number", ["1e30", '"1e30"'])
def test_rf72_a_decimal_drf_cannot_quantize_without_max_digits_is_a_400(rf72_api, number):
    """DRF quantizes to ``decimal_places`` under the default context's 28 digits when the
    field has no ``max_digits``: ``1e30`` for 2 places raised ``InvalidOperation`` (a 500)."""
    row = RevNumTally.objects.create()
    body = '{"action": "price", "leg": {"cents": ' + number + "}}"
    r = rf72_api.post(f"/rf72/rf72-tallies/{row.pk}/action/", body, content_type="application/json")
    details = assert_error(r, 400, "VALIDATION_ERROR")["details"]
    assert details == {"leg": {"cents": ["A valid number is required."]}}, details


# -- ``pk``, the primary key's other name, written through the row's own values ------------


class _Rf72Ref(serializers.Serializer):
    ref = serializers.IntegerField(source="pk", required=False)
    text = serializers.CharField(required=False)


class _Rf72PkSerializer(serializers.ModelSerializer):
    extra = serializers.DictField(source="*", required=False, write_only=True)
    meta = _Rf72Ref(source="*", required=False, write_only=True)
    ref = serializers.IntegerField(source="pk", required=False, write_only=True)

    class Meta:
        model = Note
        fields = [
            *("id", "branch", "text", "organization", "owner", "internal"),
            *("extra", "meta", "ref"),
        ]


@rf72_site.register
class Rf72PkResource(Resource):
    model = Note
    name = "rf72-pk"
    serializer_class = _Rf72PkSerializer
    presets = [presets.MultiTenant(), presets.OwnedBy()]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "create", "update")}


@pytest.mark.parametrize(
    "key,inner,refused",
    [("extra", "pk", "extra.pk"), ("meta", "ref", "meta.ref"), ("ref", None, "ref")],
)
def test_rf72_the_primary_key_by_its_alias_pk_is_judged_as_the_id(rf72_world, key, inner, refused):
    """A key of a ``DictField(source="*")`` (or a nested field's ``source``) was judged as the
    column it names, and ``pk`` names none: judged by its own name it was written
    (``instance.pk = …``), and the save overwrote another tenant's note with that id with
    the caller's values, moving it into the caller's tenant (200). ``pk`` is the ``id``
    column, which no body writes: 403."""
    editor, stranger = rf72_world["editor"], rf72_world["stranger"]
    url = _rf72_note(editor, "rf72-pk")
    theirs = Note.objects.create(
        branch="y", text="theirs", organization=rf72_world["elsewhere"], owner=stranger
    )
    sent = {inner: theirs.pk, "text": "taken"} if inner else theirs.pk
    r = editor.patch(url, {key: sent, "text": "taken"}, format="json")
    assert_error(r, 403, "FIELD_WRITE_DENIED")
    assert r.json()["details"] == {"fields": [refused]}
    theirs.refresh_from_db()
    assert (theirs.organization, theirs.owner, theirs.text) == (
        rf72_world["elsewhere"],
        stranger,
        "theirs",
    )
    assert Note.objects.filter(text="t").count() == 1  # the caller's own note as it was
