"""fix-seen12b: what the last stop left of numbers, dates and deletes: a project's own
``DecimalField`` nested in a serializer or a list/dict child reading a JSON number through
its float, a stored ``infinity`` of a related row (or under a ``source=``) not named in the
500, and the cascade-delete count comparison's fast deletes and own ``delete()``."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers

from django_arc import Resource, ResourceSite, action, presets
from django_arc import permissions as P
from django_arc.exceptions import INFINITE_VALUE
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Fs12bNode, Fs12bNote, Fs12bPin, PagedRow, RevNumTally

pytestmark = pytest.mark.django_db

FS12B_PUBLIC = {key: P.allow_public() for key in ("list", "get", "create", "update", "delete")}
fs12b_site = ResourceSite(name="fix-seen12b")

#: more digits than a binary float holds: its float is 12345678901234568
FS12B_WIDE = "12345678901234567.891"
FS12B_SHOWN = "12345678901234567.8910000000"


def _fs12b_wide(**kwargs):
    return serializers.DecimalField(max_digits=30, decimal_places=10, **kwargs)


class Fs12bLeg(serializers.Serializer):
    wide = _fs12b_wide()


class Fs12bLegs(serializers.Serializer):
    """Two levels down: a nested serializer holding a list of nested serializers."""

    legs = Fs12bLeg(many=True)


class Fs12bNestedTallySerializer(serializers.ModelSerializer):
    """A project's serializer writing ``wide`` from a nested serializer (``source="*"``) or
    from a decimal inside a list, a dict, a list of serializers, a list of lists."""

    money = Fs12bLeg(source="*", required=False)  # shows the row's ``wide`` too
    parts = serializers.ListField(child=_fs12b_wide(), required=False, write_only=True)
    named = serializers.DictField(child=_fs12b_wide(), required=False, write_only=True)
    legs = Fs12bLeg(many=True, required=False, write_only=True)
    deep = serializers.ListField(
        child=serializers.ListField(child=Fs12bLegs()), required=False, write_only=True
    )

    class Meta:
        model = RevNumTally
        fields = ["id", "money", "parts", "named", "legs", "deep"]

    def validate(self, attrs):
        if "parts" in attrs:
            attrs["wide"] = attrs.pop("parts")[0]
        if "named" in attrs:
            attrs["wide"] = attrs.pop("named")["a"]
        if "legs" in attrs:
            attrs["wide"] = attrs.pop("legs")[-1]["wide"]
        if "deep" in attrs:
            attrs["wide"] = attrs.pop("deep")[0][0]["legs"][0]["wide"]
        return attrs


class Fs12bNestedInput(serializers.Serializer):
    leg = Fs12bLeg(required=False)
    parts = serializers.ListField(child=_fs12b_wide(), required=False)
    named = serializers.DictField(child=_fs12b_wide(), required=False)
    deep = serializers.ListField(child=serializers.DictField(child=Fs12bLegs()), required=False)


@fs12b_site.register
class Fs12bNestedTallyResource(Resource):
    model = RevNumTally
    name = "nested-tallies"
    serializer_class = Fs12bNestedTallySerializer
    permissions = FS12B_PUBLIC

    @action(permissions=P.allow_public(), input=Fs12bNestedInput)
    def price(self, request, instance, data):
        if "leg" in data:
            value = data["leg"]["wide"]
        elif "parts" in data:
            value = data["parts"][0]
        elif "named" in data:
            value = data["named"]["a"]
        else:
            value = data["deep"][0]["k"]["legs"][0]["wide"]
        return {"wide": str(value)}


@pytest.fixture
def fs12b_api(settings):
    with site_mounted(settings, "fs12b", fs12b_site):
        yield client_for()


# -- a project's DecimalField nested or a list/dict child reads a JSON number as written ----

FS12B_NESTED_BODIES = {
    "money": '{"money": {"wide": %s}}',
    "parts": '{"parts": [%s]}',
    "named": '{"named": {"a": %s}}',
    "legs": '{"legs": [{"wide": 1}, {"wide": %s}]}',  # the second item reads as the first
    "legs-first": '{"legs": [{"wide": %s}]}',
    "deep": '{"deep": [[{"legs": [{"wide": %s}]}]]}',
}


@pytest.mark.parametrize("shape", sorted(FS12B_NESTED_BODIES))
def test_fs12b_a_nested_or_child_decimal_field_keeps_every_digit(fs12b_api, shape):
    """fix-seen11d read the number's text for the serializer's own decimal fields; one
    nested in a serializer (``source="*"`` included) or a list/dict child, at any depth,
    still read ``str()`` of the float: ``…567.891`` was written as ``…568``."""
    body = FS12B_NESTED_BODIES[shape] % FS12B_WIDE
    r = fs12b_api.post("/fs12b/nested-tallies/", body, content_type="application/json")
    assert r.status_code == 201, r.content
    assert r.json()["data"]["money"] == {"wide": FS12B_SHOWN}
    # a second request reads on its own copies of the cached fields as the first did
    r = fs12b_api.post("/fs12b/nested-tallies/", body, content_type="application/json")
    assert r.status_code == 201, r.content
    assert r.json()["data"]["money"] == {"wide": FS12B_SHOWN}


@pytest.mark.parametrize("shape", ["money", "parts", "named", "legs-first", "deep"])
def test_fs12b_a_nested_decimal_field_refuses_a_json_number_as_its_string(fs12b_api, shape):
    """The float 0.1 is ``0.100000000000000005551``: read as ``"0.1"`` it was taken, where
    its text (21 places) is refused by a 10-place field, as the same text in a string is."""
    for spelled in ("0.100000000000000005551", '"0.100000000000000005551"'):
        body = FS12B_NESTED_BODIES[shape] % spelled
        r = fs12b_api.post("/fs12b/nested-tallies/", body, content_type="application/json")
        details = assert_error(r, 400, "VALIDATION_ERROR")["details"]
        assert list(details) == [shape.split("-")[0]], (spelled, details)
        assert "no more than 10 decimal places" in str(details), spelled
    assert not RevNumTally.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        '{"action": "price", "leg": {"wide": %s}}',
        '{"action": "price", "parts": [%s]}',
        '{"action": "price", "named": {"a": %s}}',
        '{"action": "price", "deep": [{"k": {"legs": [{"wide": %s}]}}]}',
    ],
)
def test_fs12b_an_action_inputs_nested_decimal_field_reads_a_json_number_as_written(
    fs12b_api, body
):
    row = RevNumTally.objects.create()
    url = f"/fs12b/nested-tallies/{row.pk}/action/"
    r = fs12b_api.post(url, body % FS12B_WIDE, content_type="application/json")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["wide"] == FS12B_SHOWN
    r = fs12b_api.post(url, body % "0.100000000000000005551", content_type="application/json")
    assert_error(r, 400, "VALIDATION_ERROR")


# -- a stored infinity of a related row, under a source=, in a filtered list: named ----------

fs12b_needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's infinity dates"
)


class Fs12bKin(serializers.ModelSerializer):
    class Meta:
        model = PagedRow
        fields = ["id", "label", "day", "at"]


class Fs12bKinRowSerializer(serializers.ModelSerializer):
    """A row's own date under another name, its parent's through a nested serializer and a
    dotted source, its children's through a ``many=True`` one."""

    when = serializers.DateTimeField(source="at", read_only=True)
    parent = Fs12bKin(read_only=True)
    parent_day = serializers.DateField(source="parent.day", read_only=True)
    children = Fs12bKin(many=True, read_only=True)

    class Meta:
        model = PagedRow
        fields = ["id", "label", "when", "parent", "parent_day", "children"]


@fs12b_site.register
class Fs12bKinRowResource(Resource):
    model = PagedRow
    name = "kin-rows"
    serializer_class = Fs12bKinRowSerializer
    filter_fields = {"label": ["eq"]}
    permissions = FS12B_PUBLIC


@fs12b_site.register
class Fs12bPlainRowResource(Resource):
    model = PagedRow
    name = "plain-rows"
    fields = ["id", "label", "day", "at"]
    filter_fields = {"label": ["eq"]}
    permissions = FS12B_PUBLIC


def _fs12b_infinity(row, column, text="infinity"):
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE testapp_pagedrow SET {column} = %s WHERE id = %s", [text, row.pk])


def _fs12b_details(api, url, params=None):
    body = assert_error(api.get(url, params or {}), 500, "INTERNAL_ERROR")
    return body.get("details")


@fs12b_needs_postgres
def test_fs12b_a_related_rows_infinity_is_named_by_its_nested_path(fs12b_api):
    """The 500 named the resource's own date fields only: a parent's ``at`` shown through a
    nested serializer, a parent's ``day`` through it and a dotted ``source``, a child's
    through a ``many=True`` one, were a 500 without a field named; and a field showing its
    own column under another name (``source=``) was not named either."""
    fs12b_api.raise_request_exception = False
    parent = PagedRow.objects.create(label="parent")
    child = PagedRow.objects.create(label="child", parent=parent)
    _fs12b_infinity(parent, "at")
    want = {"parent.at": [INFINITE_VALUE]}
    assert _fs12b_details(fs12b_api, f"/fs12b/kin-rows/{child.pk}/") == want
    assert _fs12b_details(fs12b_api, "/fs12b/kin-rows/", {"label": "child"}) == want
    # the parent's own row shows it as ``when``
    assert _fs12b_details(fs12b_api, f"/fs12b/kin-rows/{parent.pk}/") == {"when": [INFINITE_VALUE]}
    PagedRow.objects.filter(pk=parent.pk).update(at=None)
    _fs12b_infinity(parent, "day", "-infinity")
    assert _fs12b_details(fs12b_api, f"/fs12b/kin-rows/{child.pk}/") == {
        "parent.day": [INFINITE_VALUE],
        "parent_day": [INFINITE_VALUE],
    }
    # the parent shows the child through ``children``
    PagedRow.objects.filter(pk=parent.pk).update(day=None)
    _fs12b_infinity(child, "at")
    assert _fs12b_details(fs12b_api, f"/fs12b/kin-rows/{parent.pk}/") == {
        "children.at": [INFINITE_VALUE]
    }


@fs12b_needs_postgres
def test_fs12b_a_lists_infinity_search_reads_the_filtered_rows_only(fs12b_api):
    """A list's search read every row the caller may read, not the rows its filters chose:
    ``?label=bad`` (``at`` held as infinity) named ``day`` too, which only a row the list
    did not read holds as infinity."""
    fs12b_api.raise_request_exception = False
    bad, other = PagedRow.objects.create(label="bad"), PagedRow.objects.create(label="other")
    _fs12b_infinity(bad, "at")
    _fs12b_infinity(other, "day")
    assert _fs12b_details(fs12b_api, "/fs12b/plain-rows/", {"label": "bad"}) == {
        "at": [INFINITE_VALUE]
    }
    assert _fs12b_details(fs12b_api, "/fs12b/plain-rows/", {"label": "other"}) == {
        "day": [INFINITE_VALUE]
    }
    # the whole list reads both
    assert _fs12b_details(fs12b_api, "/fs12b/plain-rows/") == {
        "day": [INFINITE_VALUE],
        "at": [INFINITE_VALUE],
    }


@fs12b_needs_postgres
def test_fs12b_a_list_that_reads_no_infinity_asks_nothing_of_it(fs12b_api):
    """The search runs only after psycopg refused a load: a list and a get that answer send
    no ``isfinite`` query."""
    parent = PagedRow.objects.create(label="parent")
    PagedRow.objects.create(label="child", parent=parent)
    with CaptureQueriesContext(connection) as queries:
        assert fs12b_api.get("/fs12b/kin-rows/").status_code == 200
        assert fs12b_api.get(f"/fs12b/kin-rows/{parent.pk}/").status_code == 200
    assert queries.captured_queries
    assert not [q for q in queries.captured_queries if "isfinite" in q["sql"]]


# -- the cascade-delete count comparison: fast deletes, an own delete()'s other statements ----


@fs12b_site.register
class Fs12bNodeResource(Resource):
    model = Fs12bNode
    name = "nodes"
    fields = ["id", "name", "parent"]
    presets = [presets.Bulk()]
    permissions = FS12B_PUBLIC


def _fs12b_own_delete(monkeypatch, also=None):
    original = Fs12bNode.delete

    def fs12b_own_delete(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if also is not None:
            also()
        return result

    monkeypatch.setattr(Fs12bNode, "delete", fs12b_own_delete)


@pytest.mark.parametrize("bulk", [False, True])
def test_fs12b_a_table_both_collected_and_fast_deleted_is_counted_whole(
    fs12b_api, monkeypatch, bulk
):
    """Deleting ``top`` reaches pins both ways: ``mine`` through its note's parent link
    (fast-deleted by one statement, no row loaded) and ``theirs`` through ``pinned_on``
    (collected). The comparison counted only the collected one as judged, so a model's
    own ``delete()``, returning Django's count of both, was refused 409 (nothing deleted)
    though every row it deleted was in the judged collection."""
    _fs12b_own_delete(monkeypatch)
    top = Fs12bNode.objects.create(name="top")
    Fs12bNode.objects.create(name="child", parent=top)
    elsewhere = Fs12bNode.objects.create(name="elsewhere")
    Fs12bPin.objects.create(node=top, pinned_on=elsewhere)  # fast-deleted with its note
    Fs12bPin.objects.create(node=elsewhere, pinned_on=top)  # collected
    Fs12bPin.objects.create(node=top, pinned_on=top)  # reached both ways
    if bulk:
        r = fs12b_api.delete("/fs12b/nodes/bulk/", {"ids": [top.pk]}, format="json")
    else:
        r = fs12b_api.delete(f"/fs12b/nodes/{top.pk}/")
    assert r.status_code == 200, r.content
    assert list(Fs12bNode.objects.values_list("name", flat=True)) == ["elsewhere"]
    assert not Fs12bPin.objects.exists() and not Fs12bNote.objects.exists()


@pytest.mark.parametrize("bulk", [False, True])
def test_fs12b_rows_an_own_delete_removes_by_other_statements_are_its_code_by_decision(
    fs12b_api, monkeypatch, bulk
):
    """Decided (decisions.md, fix-seen12b): a model's own ``delete()`` deleting other rows
    by statements of its own (``Fs12bNode.objects.filter(...).delete()``, rows of the
    resource's own table included) runs the project's code, as a hook's or an action
    handler's deletes do: what it returns from ``super().delete()`` is compared with what
    the cascade check judged, those rows are not, and are not refused."""
    _fs12b_own_delete(monkeypatch, also=lambda: Fs12bNode.objects.filter(name="swept").delete())
    top = Fs12bNode.objects.create(name="top")
    Fs12bNode.objects.create(name="child", parent=top)
    swept = Fs12bNode.objects.create(name="swept")
    Fs12bNode.objects.create(name="under swept", parent=swept)
    Fs12bNode.objects.create(name="kept")
    if bulk:
        r = fs12b_api.delete("/fs12b/nodes/bulk/", {"ids": [top.pk]}, format="json")
    else:
        r = fs12b_api.delete(f"/fs12b/nodes/{top.pk}/")
    assert r.status_code == 200, r.content
    assert list(Fs12bNode.objects.values_list("name", flat=True)) == ["kept"]
